"""Chat with any OpenAI-compatible server: our own bounded retries, a disk cache keyed by request, counters.

The `openai` SDK runs with `max_retries=0` so the retry policy is ours (a quota 429 is fatal, Retry-After is
capped, empty or malformed replies become one-line `LLMError`s). The API key stays out of `to_dict`, repr,
cache files, logs and error messages.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import openai

from reportgen.errors import ReportError

log = logging.getLogger(__name__)

PROVIDERS = ("none", "openai", "local", "narrator")
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
CACHE_SCHEMA_VERSION = 1
# Sent when no key is configured: given api_key=None the SDK reads OPENAI_API_KEY itself and would hand the
# real key to whatever server base_url names, a local one included.
_NO_KEY = "no-key"
# GPT-5 and o-series models answer 400 to temperature != 1; some servers reject seed. We drop such a param.
_DROPPABLE_PARAMS = ("seed", "temperature")
# Reasoning models write a scratchpad into the content; an unclosed tag means max_tokens cut it short.
_THINK_RE = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL)


class LLMError(ReportError):
    """The LLM server gave no usable reply; the message names the server, the status and the attempts."""


@dataclass(frozen=True)
class LLMConfig:
    """Which server and model draft the narrative, with sampling and retry settings.

    `timeout_s` bounds each HTTP request; `max_retries` counts retries after the first attempt. The wait
    before retry n is `min(backoff_base_s * 2**(n-1), backoff_max_s)` times a jitter in [0.5, 1], unless
    the server sent Retry-After, which is waited out up to `retry_after_cap_s`.
    """

    provider: str = "none"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 120.0
    max_retries: int = 4
    temperature: float = 0.0
    seed: int = 0
    max_tokens: int = 1024
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    retry_after_cap_s: float = 60.0

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ReportError(f"unknown LLM provider {self.provider!r}; expected {'|'.join(PROVIDERS)}")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.max_tokens <= 0:
            raise ReportError(f"LLM config needs timeout_s > 0, max_retries >= 0 and max_tokens > 0; got "
                              f"{self.timeout_s}, {self.max_retries} and {self.max_tokens}")

    @classmethod
    def from_env_and_flags(cls, llm: str | None, llm_model: str | None, base_url: str | None,
                           env: Mapping[str, str] | None = None) -> LLMConfig:
        """Build the config from CLI flags, falling back to the openai SDK's environment variables.

        Args:
            llm: `--llm` (none|openai|local|narrator); None means none.
            llm_model: `--llm-model`; required for openai. For local, the model dir to serve (optional).
            base_url: `--base-url`; overrides `OPENAI_BASE_URL`. Refused for local and narrator, which run their
                own server.
            env: environment to read (default `os.environ`); uses `OPENAI_API_KEY` and `OPENAI_BASE_URL`.

        Returns:
            The config. For local, `with_endpoint` fills `base_url` and `model` once the server is up.

        Raises:
            ReportError: unknown provider, missing model, or no key for api.openai.com.

        """
        env = os.environ if env is None else env
        provider = llm or "none"
        if provider == "openai":
            url = base_url or env.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL
            key = env.get("OPENAI_API_KEY") or None
            if not llm_model:
                raise ReportError("--llm openai needs --llm-model NAME (the model id the server expects)")
            if key is None and url.rstrip("/") == OPENAI_DEFAULT_BASE_URL:
                raise ReportError(f"--llm openai with {url} needs OPENAI_API_KEY set in the environment")
            return cls(provider="openai", model=llm_model, base_url=url, api_key=key)
        if provider in ("local", "narrator") and base_url:
            raise ReportError(f"--base-url does not apply to --llm {provider}, which starts its own server; for a "
                              "server that is already running use --llm openai --base-url URL")
        return cls(provider=provider, model=llm_model if provider == "local" else None)

    def with_endpoint(self, base_url: str, model: str) -> LLMConfig:
        """Return a copy aimed at a started server (e.g. `LocalServer.base_url`, `LocalServer.model`)."""
        return replace(self, base_url=base_url, model=model)

    def cache_endpoint(self) -> str:
        """Name the server in the cache key: its URL, or "local" for a LocalServer (narrator included)."""
        # A local server gets a fresh port each run, so its URL would make every run a miss; the model name
        # (the served directory, whose name carries the weights hash) identifies it instead.
        return "local" if self.provider in ("local", "narrator") else (self.base_url or "").rstrip("/")

    def to_dict(self) -> dict[str, Any]:
        """Serialize everything except the API key."""
        data = asdict(self)
        del data["api_key"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], api_key: str | None = None) -> LLMConfig:
        """Inverse of `to_dict`; the key comes separately because it is never stored."""
        known = {f.name for f in fields(cls)} - {"api_key"}
        if unknown := sorted(set(data) - known):
            raise ReportError(f"LLM config: unknown keys {unknown}; expected some of {sorted(known)}")
        return cls(**dict(data), api_key=api_key)


@dataclass(frozen=True)
class ChatResult:
    """One chat reply and its provenance; token counts are None when the server reports no usage."""

    text: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cached: bool = False
    response_id: str | None = None
    system_fingerprint: str | None = None
    finish_reason: str | None = None


@dataclass
class LLMStats:
    """Running totals for one client; tokens count real calls only, not cache hits."""

    requests: int = 0  # HTTP requests sent, retries included
    completions: int = 0  # usable replies from the server: the real (billed) calls
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        """Serialize for the report's provenance."""
        return asdict(self)


class ResponseCache:
    """A directory of JSON files, one per request, named by the sha256 of the canonical request."""

    def __init__(self, directory: str | Path) -> None:
        """Use `directory`, created on the first write."""
        self.directory = Path(directory)

    @staticmethod
    def key(request: Mapping[str, Any]) -> str:
        """Hash the canonical JSON (sorted keys, no spaces) of a request that holds no secrets."""
        canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        """Where the entry for `key` lives; two-character shards keep directories small."""
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> ChatResult | None:
        """Return the stored reply marked `cached=True`, or None on a miss or an unreadable entry."""
        path = self.path(key)
        try:
            result = ChatResult(**json.loads(path.read_text(encoding="utf-8"))["result"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            # A torn or hand-edited entry is a miss; the fresh reply then overwrites it.
            log.warning("ignoring unreadable LLM cache entry %s: %s", path, e)
            return None
        return replace(result, cached=True)

    def put(self, key: str, request: Mapping[str, Any], result: ChatResult) -> Path:
        """Store `result` via a temp file and os.replace, so a crash never leaves half an entry."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"key": key, "request": request, "result": asdict(replace(result, cached=False))}
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entry, f, indent=1, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


@dataclass
class _Failure(Exception):
    """Why one attempt failed and what the retry loop should do; raised as-is for an unusable 2xx reply."""

    detail: str
    retryable: bool = False
    retry_after_s: float | None = None
    drop_param: str | None = None
    empty: bool = False  # an empty reply gets one more try, whatever max_retries says


class LLMClient:
    """Send chat requests with retries, consult the cache first, and keep `stats`."""

    def __init__(self, config: LLMConfig, cache: ResponseCache | None = None,
                 connect: Callable[[], str] | None = None) -> None:
        """Create the SDK client with its retries off: the loop in `chat` is the only one.

        Args:
            connect: called on the first cache miss to start a server and return its base URL (for a local
                server: a build whose replies are all cached never starts one).

        Raises:
            LLMError: the provider is none, or base_url/model are not set yet.

        """
        if config.provider == "none" or not config.model or not (config.base_url or connect):
            raise LLMError(f"no LLM endpoint in {config!r}; use --llm openai --llm-model NAME, or start a "
                           "LocalServer and call config.with_endpoint(server.base_url, server.model)")
        self.config, self.cache, self.stats = config, cache, LLMStats()
        self.dropped_params: set[str] = set()
        self._connect = connect
        self._client: openai.OpenAI | None = None
        if config.base_url:
            self._open(config.base_url)

    def _open(self, base_url: str) -> None:
        key, timeout = self.config.api_key or _NO_KEY, self.config.timeout_s
        self._client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=0)

    def chat(self, messages: list[dict[str, Any]], *, extra: dict[str, Any] | None = None) -> ChatResult:
        """Return the reply to `messages`, from the cache when this exact request was answered before.

        Args:
            messages: OpenAI chat messages, each with "role" and "content".
            extra: further request-body fields (e.g. response_format); part of the cache key.

        Returns:
            The reply with `<think>` blocks stripped; `cached=True` when no HTTP request was made.

        Raises:
            LLMError: retries exhausted, a fatal status, or an empty or malformed reply.

        """
        _check_messages(messages)
        cfg = self.config
        params = {"temperature": cfg.temperature, "seed": cfg.seed, "max_tokens": cfg.max_tokens}
        params.update(extra or {})
        # Keyed on what was asked, not on what a server made us drop, so the key is the same every run.
        request = {"schema": CACHE_SCHEMA_VERSION, "endpoint": cfg.cache_endpoint(), "model": cfg.model,
                   "messages": messages, "params": params}
        key = ResponseCache.key(request)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.stats.cache_hits += 1
            return hit
        if self._client is None and self._connect is not None:
            self._open(self._connect())
        result = self._complete(messages, params)
        self.stats.completions += 1
        self.stats.prompt_tokens += result.prompt_tokens or 0
        self.stats.completion_tokens += result.completion_tokens or 0
        if self.cache is not None:
            try:
                self.cache.put(key, request, result)
            except OSError as e:  # a full disk or read-only cache dir costs a repeat call later, not this reply
                log.warning("LLM cache %s is not writable (%s); the reply is used but not cached",
                            self.cache.directory, e.strerror or e)
        return result

    def _complete(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> ChatResult:
        """Run the retry loop; each attempt re-reads `dropped_params`, which a 400 may have just grown."""
        attempts = failures = empties = 0
        while True:
            sent = {k: v for k, v in params.items() if k not in self.dropped_params}
            attempts += 1
            self.stats.requests += 1
            try:
                return self._send_once(messages, sent)
            except _Failure as exc:
                failure, cause = exc, None
            except openai.APIError as exc:
                failure, cause = _diagnose(exc, sent, self.config.timeout_s), exc
            if failure.drop_param:
                # Not a transport failure, so no backoff; bounded by len(_DROPPABLE_PARAMS) per client.
                log.warning("%s rejected %r; retrying without it", self.config.base_url, failure.drop_param)
                self.dropped_params.add(failure.drop_param)
                continue
            empties += failure.empty
            failures += not failure.empty
            if not failure.retryable or failures > self.config.max_retries or empties > 1:
                # Chain for the traceback, unless the SDK's message carries a key the server echoed.
                leaks = _redact(str(cause), self.config.api_key) != str(cause)
                raise self._error(failure.detail, attempts) from (None if leaks else cause)
            delay = self._delay(max(failures, 1), failure.retry_after_s)
            detail = _redact(failure.detail, self.config.api_key)
            log.warning("LLM request to %s: %s; retry in %.2f s", self.config.base_url, detail, delay)
            time.sleep(delay)

    def _send_once(self, messages: list[dict[str, Any]], sent: dict[str, Any]) -> ChatResult:
        """POST one request and parse the body ourselves, so a malformed reply gets a precise message."""
        known = {k: sent[k] for k in ("temperature", "seed", "max_tokens") if k in sent}
        others = {k: v for k, v in sent.items() if k not in known}
        assert self._client is not None
        create = self._client.chat.completions.with_raw_response.create
        raw = create(model=self.config.model, messages=messages, extra_body=others or None, **known)
        return _parse_reply(raw.http_response.text, self.config.model or "")

    def _delay(self, retry: int, retry_after_s: float | None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        cfg = self.config
        if retry_after_s is not None:
            return max(0.0, min(retry_after_s, cfg.retry_after_cap_s))
        # Jitter spreads out clients that failed together, so they do not retry in lockstep.
        return min(cfg.backoff_base_s * 2 ** (retry - 1), cfg.backoff_max_s) * random.uniform(0.5, 1.0)

    def _error(self, detail: str, attempts: int) -> LLMError:
        """Build the one-line error, scrubbing the key in case the server echoed it."""
        noun = "attempt" if attempts == 1 else "attempts"
        message = f"LLM request to {self.config.base_url} failed after {attempts} {noun}: {detail}"
        return LLMError(_redact(message, self.config.api_key))


def strip_think(text: str) -> str:
    """Remove `<think>...</think>` blocks (and an unclosed trailing one), then surrounding whitespace."""
    return _THINK_RE.sub("", text).strip()


def _check_messages(messages: list[dict[str, Any]]) -> None:
    """Reject malformed messages before they cost a request."""
    for m in messages if isinstance(messages, list) and messages else [messages]:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or "content" not in m:
            raise LLMError(f"messages must be a non-empty list of {{role, content}} dicts; got {m!r:.80}")


def _parse_reply(body_text: str, requested_model: str) -> ChatResult:
    """Turn a chat.completion JSON body into a ChatResult, or raise _Failure naming what is wrong."""
    try:
        body = json.loads(body_text)
    except ValueError:
        raise _Failure(f"malformed reply: body is not JSON: {body_text[:120]!r}") from None
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise _Failure(f"malformed reply: no 'choices' list in {body_text[:120]!r}")
    if not body["choices"]:
        raise _Failure("empty reply: 'choices' is empty", retryable=True, empty=True)
    choice = body["choices"][0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict) or "content" not in message:
        raise _Failure("malformed reply: choices[0].message.content is missing")
    content = message["content"]
    if content is not None and not isinstance(content, str):
        raise _Failure(f"malformed reply: choices[0].message.content is a {type(content).__name__}")
    finish = choice.get("finish_reason")
    text = strip_think(content or "")
    if not text:
        raise _Failure(f"empty reply: no text (finish_reason={finish})", retryable=True, empty=True)
    usage = body["usage"] if isinstance(body.get("usage"), dict) else {}
    tokens = _int_or_none(usage.get("prompt_tokens")), _int_or_none(usage.get("completion_tokens"))
    return ChatResult(text, str(body.get("model") or requested_model), *tokens, response_id=body.get("id"),
                      system_fingerprint=body.get("system_fingerprint"), finish_reason=finish)


def _diagnose(exc: openai.APIError, sent: Mapping[str, Any], timeout_s: float) -> _Failure:
    """Classify a failed request: retryable or not, the wait the server asked for, a param to drop."""
    if isinstance(exc, openai.APITimeoutError):  # a subclass of APIConnectionError: test it first
        return _Failure(f"no reply within timeout_s={timeout_s:g} s", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return _Failure(f"cannot connect ({type(cause).__name__}: {cause})", retryable=True)
    if not isinstance(exc, openai.APIStatusError):
        return _Failure(f"{type(exc).__name__}: {exc}", retryable=False)
    status, text = exc.status_code, exc.response.text
    detail = f"HTTP {status}: {' '.join(text.split())[:200]}"
    if status in (400, 422):
        for name in _DROPPABLE_PARAMS:
            if name in sent and (exc.param == name or re.search(rf"\b{name}\b", text)):
                return _Failure(detail, retryable=False, drop_param=name)
    if status == 429 and "insufficient_quota" in text:
        return _Failure(f"{detail} (not retried: waiting does not restore quota)", retryable=False)
    retryable = status in (408, 409, 429) or status >= 500
    return _Failure(detail, retryable, retry_after_s=_retry_after_s(exc.response.headers))


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Read retry-after-ms, then retry-after as seconds or an HTTP date; None if absent or unreadable."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers[name]) / scale
        except (KeyError, ValueError):
            pass
    date = email.utils.parsedate_tz(headers.get("retry-after") or "")
    return None if date is None else email.utils.mktime_tz(date) - time.time()


def _int_or_none(value: object) -> int | None:
    """Token counts from servers that omit or garble usage become None rather than a crash."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _redact(text: str, secret: str | None) -> str:
    """Replace the secret with a marker: servers echo the key in some 401 bodies."""
    return text.replace(secret, "<redacted api key>") if secret else text
