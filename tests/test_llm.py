"""reportgen.llm and reportgen.localserver: scripted faults on a real socket, then a real local server."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reportgen.errors import ReportError
from reportgen.llm import (
    OPENAI_DEFAULT_BASE_URL,
    ChatResult,
    LLMClient,
    LLMConfig,
    LLMError,
    ResponseCache,
    strip_think,
)
from reportgen.localserver import LocalServer

SENTINEL_KEY = "sk-test-SENTINEL-7f3a9c51e2"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name one colour."}]


# --- a real HTTP server that plays back scripted replies -------------------------------------------------


@dataclass
class Reply:
    """One scripted HTTP response: a dict body is sent as JSON, a str body as-is."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def completion(text: str | None = "Blue.", **overrides: Any) -> dict[str, Any]:
    """An OpenAI-shaped chat.completion body."""
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "scripted-model",
        "system_fingerprint": "fp_test",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
    }
    return {**body, **overrides}


def api_error(message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """An OpenAI-shaped error body."""
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


class ScriptedServer:
    """HTTP server on 127.0.0.1 answering the n-th POST with script[n] (the last reply repeats)."""

    def __init__(self, script: list[Reply]) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "json"} per POST received
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False  # a handler still sleeping (timeout test) must not block close
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append({"path": self.path, "headers": headers, "json": json.loads(raw)})
                reply = server.script[min(len(server.requests), len(server.script)) - 1]
                time.sleep(reply.delay_s)
                body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(body.encode())))
                    self.end_headers()
                    self.wfile.write(body.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def scripted():
    servers: list[ScriptedServer] = []

    def start(*replies: Reply) -> ScriptedServer:
        servers.append(ScriptedServer(list(replies)))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def make_client(base_url: str, cache: ResponseCache | None = None, **overrides: Any) -> LLMClient:
    """A client with tiny backoff so retry tests take milliseconds."""
    cfg = LLMConfig(provider="openai", model="scripted-model", base_url=base_url, api_key=SENTINEL_KEY,
                    timeout_s=5.0, max_retries=3, backoff_base_s=0.01, backoff_max_s=0.02)
    return LLMClient(replace(cfg, **overrides), cache)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- configuration --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "llm, model, base_url, env, expected, expected_error",
    [
        (None, None, None, {}, {"provider": "none", "base_url": None}, None),
        ("openai", "gpt-x", None, {"OPENAI_API_KEY": "k1"},
         {"base_url": OPENAI_DEFAULT_BASE_URL, "api_key": "k1", "model": "gpt-x"}, None),
        ("openai", "gpt-x", None, {"OPENAI_API_KEY": "k1", "OPENAI_BASE_URL": "http://env:1/v1"},
         {"base_url": "http://env:1/v1"}, None),
        ("openai", "gpt-x", "http://flag:2/v1", {"OPENAI_API_KEY": "k1", "OPENAI_BASE_URL": "http://env:1/v1"},
         {"base_url": "http://flag:2/v1"}, None),
        ("openai", "m", "http://127.0.0.1:9/v1", {}, {"api_key": None}, None),
        ("openai", None, None, {"OPENAI_API_KEY": "k1"}, None, "needs --llm-model"),
        ("openai", "gpt-x", None, {}, None, "needs OPENAI_API_KEY"),
        ("local", None, None, {"OPENAI_API_KEY": "k1"}, {"provider": "local", "api_key": None}, None),
        ("local", None, "http://x:1/v1", {}, None, "--base-url does not apply to --llm local"),
        ("bogus", None, None, {}, None, "unknown LLM provider 'bogus'; expected none|openai|local"),
    ],
)
def test_from_env_and_flags(llm, model, base_url, env, expected, expected_error):
    if expected_error:
        with pytest.raises(ReportError, match=expected_error):
            LLMConfig.from_env_and_flags(llm, model, base_url, env=env)
        return
    cfg = LLMConfig.from_env_and_flags(llm, model, base_url, env=env)
    assert {k: getattr(cfg, k) for k in expected} == expected


def test_config_hides_key_and_round_trips():
    cfg = LLMConfig(provider="openai", model="m", base_url="http://h/v1", api_key=SENTINEL_KEY)
    assert SENTINEL_KEY not in repr(cfg)
    assert SENTINEL_KEY not in json.dumps(cfg.to_dict())
    assert LLMConfig.from_dict(cfg.to_dict(), api_key=SENTINEL_KEY) == cfg
    with pytest.raises(ReportError, match=r"unknown keys \['api_token'\]"):
        LLMConfig.from_dict({**cfg.to_dict(), "api_token": "x"})


def test_client_needs_an_endpoint():
    with pytest.raises(LLMError, match="no LLM endpoint.*with_endpoint"):
        LLMClient(LLMConfig(provider="local"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Answer.", "Answer."),
        ("<think>hmm\nlet me see</think>\n\nAnswer.", "Answer."),
        ("<think>a</think>A <think>b</think>B", "A B"),
        ("<think>cut off by max_tokens", ""),
    ],
)
def test_strip_think(text, expected):
    assert strip_think(text) == expected


# --- faults against the scripted server ------------------------------------------------------------------


def test_request_body_carries_sampling_params_and_key(scripted):
    server = scripted(Reply(body=completion()))
    result = make_client(server.base_url, max_tokens=7).chat(MESSAGES, extra={"top_p": 0.5})
    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["json"] == {"model": "scripted-model", "messages": MESSAGES, "temperature": 0.0, "seed": 0,
                            "max_tokens": 7, "top_p": 0.5}
    assert sent["headers"]["authorization"] == f"Bearer {SENTINEL_KEY}"  # the sentinel really is in play
    assert result == ChatResult("Blue.", "scripted-model", 11, 2, cached=False, response_id="chatcmpl-1",
                                system_fingerprint="fp_test", finish_reason="stop")


@pytest.mark.parametrize(
    "script, expected_requests",
    [
        pytest.param([Reply(429, api_error("Rate limit reached", "rate_limit_exceeded")),
                      Reply(body=completion())], 2, id="429-then-200"),
        pytest.param([Reply(500, api_error("boom")), Reply(502, "Bad Gateway"), Reply(body=completion())],
                     3, id="500-502-200"),
        pytest.param([Reply(body=completion(choices=[])), Reply(body=completion())], 2, id="empty-then-200"),
        pytest.param([Reply(body=completion("<think>only thoughts")), Reply(body=completion())], 2,
                     id="all-think-then-200"),
    ],
)
def test_recovers_after_retryable_failures(scripted, script, expected_requests):
    server = scripted(*script)
    client = make_client(server.base_url)
    assert client.chat(MESSAGES).text == "Blue."
    assert len(server.requests) == expected_requests
    assert client.stats.requests == expected_requests
    assert client.stats.completions == 1


@pytest.mark.parametrize(
    "script, overrides, expected_requests, expected_error",
    [
        pytest.param([Reply(429, api_error("You exceeded your current quota", "insufficient_quota"))], {}, 1,
                     r"failed after 1 attempt: HTTP 429: .*insufficient_quota.*not retried", id="quota-429"),
        pytest.param([Reply(500, api_error("boom"))], {"max_retries": 2}, 3,
                     r"failed after 3 attempts: HTTP 500: .*boom", id="500-forever"),
        pytest.param([Reply(body=completion(choices=[]))], {}, 2,
                     r"failed after 2 attempts: empty reply: 'choices' is empty", id="empty-choices"),
        pytest.param([Reply(body=completion(""))], {}, 2,
                     r"empty reply: no text \(finish_reason=stop\)", id="empty-content"),
        pytest.param([Reply(body="<html>502 proxy</html>")], {}, 1,
                     r"failed after 1 attempt: malformed reply: body is not JSON: '<html>502 proxy",
                     id="non-json"),
        pytest.param([Reply(body={"id": "x", "object": "chat.completion"})], {}, 1,
                     r"malformed reply: no 'choices' list", id="no-choices"),
        pytest.param([Reply(body=completion(choices=[{"index": 0, "message": {"role": "assistant"}}]))], {},
                     1, r"malformed reply: choices\[0\]\.message\.content is missing", id="no-content"),
        pytest.param([Reply(400, api_error("'messages' is too long"))], {}, 1,
                     r"failed after 1 attempt: HTTP 400: .*'messages' is too long", id="400-other"),
    ],
)
def test_fails_with_clear_error(scripted, script, overrides, expected_requests, expected_error):
    server = scripted(*script)
    with pytest.raises(LLMError, match=expected_error) as info:
        make_client(server.base_url, **overrides).chat(MESSAGES)
    assert str(info.value).startswith(f"LLM request to {server.base_url} failed after")
    assert len(server.requests) == expected_requests


def test_server_down_fails_after_retries():
    url = f"http://127.0.0.1:{free_port()}/v1"  # bound and released: nothing listens there
    client = make_client(url, max_retries=2)
    with pytest.raises(LLMError, match=rf"^LLM request to {url} failed after 3 attempts: cannot connect \("):
        client.chat(MESSAGES)
    assert client.stats.requests == 3


def test_timeout_fails_after_retries(scripted):
    server = scripted(Reply(body=completion(), delay_s=1.5))
    started = time.monotonic()
    with pytest.raises(LLMError, match=r"failed after 2 attempts: no reply within timeout_s=0.3 s"):
        make_client(server.base_url, timeout_s=0.3, max_retries=1).chat(MESSAGES)
    assert time.monotonic() - started < 1.5  # gave up on its own timeout, not the server's delay
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "retry_after, cap_s, expected_min_s, expected_max_s",
    [("0.4", 60.0, 0.4, 3.0), ("3600", 0.05, 0.0, 1.0)],
    ids=["honoured", "capped"],
)
def test_retry_after(scripted, retry_after, cap_s, expected_min_s, expected_max_s):
    server = scripted(Reply(429, api_error("slow down"), headers={"Retry-After": retry_after}),
                      Reply(body=completion()))
    started = time.monotonic()
    make_client(server.base_url, retry_after_cap_s=cap_s).chat(MESSAGES)
    assert expected_min_s <= time.monotonic() - started < expected_max_s
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "param, error_body",
    [
        ("seed", api_error("Unrecognized request argument supplied: seed")),
        ("temperature", api_error("Unsupported value: 'temperature' does not support 0 with this model. Only "
                                  "the default (1) value is supported.", "unsupported_value", "temperature")),
    ],
)
def test_rejected_param_is_dropped_and_remembered(scripted, param, error_body):
    server = scripted(Reply(400, error_body), Reply(body=completion()))
    client = make_client(server.base_url)
    assert client.chat(MESSAGES).text == "Blue."
    client.chat([{"role": "user", "content": "Another question."}])
    assert [param in r["json"] for r in server.requests] == [True, False, False]
    assert client.dropped_params == {param}


# --- cache ------------------------------------------------------------------------------------------------


def test_cache_hit_makes_no_request_and_parameters_are_keyed(scripted, tmp_path):
    server = scripted(Reply(body=completion()))
    cache = ResponseCache(tmp_path)
    client = make_client(server.base_url, cache)
    first = client.chat(MESSAGES)
    second = client.chat(MESSAGES)
    assert len(server.requests) == 1  # counted by the server itself, not by the client
    assert (first.cached, second.cached) == (False, True)
    assert replace(second, cached=False) == first
    client.chat(MESSAGES, extra={"top_p": 0.5})
    make_client(server.base_url, cache, max_tokens=5).chat(MESSAGES)
    make_client(server.base_url, cache, model="other-model").chat(MESSAGES)
    assert len(server.requests) == 4
    # The key is not keyed on the API key: a client with another key reuses the entry.
    other_key = make_client(server.base_url, cache, api_key="sk-other")
    assert other_key.chat(MESSAGES).cached and other_key.stats.requests == 0
    assert client.stats.to_dict() == {"requests": 2, "completions": 2, "cache_hits": 1, "prompt_tokens": 22,
                                      "completion_tokens": 4}
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temp files


def test_cache_key_is_sha256_of_canonical_request(tmp_path):
    a = {"model": "m", "messages": [{"role": "user", "content": "é"}], "params": {"seed": 0, "temp": 0}}
    b = {"params": {"temp": 0, "seed": 0}, "messages": [{"content": "é", "role": "user"}], "model": "m"}
    canonical = '{"messages":[{"content":"é","role":"user"}],"model":"m","params":{"seed":0,"temp":0}}'
    assert ResponseCache.key(a) == ResponseCache.key(b) == hashlib.sha256(canonical.encode()).hexdigest()


def test_unreadable_cache_entry_is_a_miss_and_rewritten(scripted, tmp_path, caplog):
    server = scripted(Reply(body=completion()))
    cache = ResponseCache(tmp_path)
    make_client(server.base_url, cache).chat(MESSAGES)
    (entry,) = tmp_path.rglob("*.json")
    entry.write_text('{"result": {"text": "torn', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="reportgen.llm"):
        assert not make_client(server.base_url, cache).chat(MESSAGES).cached
    assert "ignoring unreadable LLM cache entry" in caplog.text
    assert json.loads(entry.read_text(encoding="utf-8"))["result"]["text"] == "Blue."


def test_api_key_never_in_cache_logs_or_errors(scripted, tmp_path, caplog):
    echo = api_error(f"Incorrect API key provided: {SENTINEL_KEY}.", "invalid_api_key")
    good = scripted(Reply(500, api_error(f"upstream rejected {SENTINEL_KEY}")), Reply(body=completion()))
    bad = scripted(Reply(401, echo))
    cache = ResponseCache(tmp_path)
    with caplog.at_level(logging.DEBUG):
        make_client(good.base_url, cache).chat(MESSAGES)
        make_client(good.base_url, cache).chat(MESSAGES)
        with pytest.raises(LLMError, match=r"HTTP 401: .*<redacted api key>") as info:
            make_client(bad.base_url, cache).chat(MESSAGES)
    assert bad.requests[0]["headers"]["authorization"] == f"Bearer {SENTINEL_KEY}"
    cache_files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert cache_files and not [p for p in cache_files if SENTINEL_KEY.encode() in p.read_bytes()]
    assert "Retry" in caplog.text or "retry" in caplog.text
    assert SENTINEL_KEY not in caplog.text
    assert SENTINEL_KEY not in "".join(traceback.format_exception(info.value))


# --- LocalServer failures (run before the module's real server starts, so one server runs at a time) ---


def test_local_server_rejects_dir_without_config(tmp_path):
    with pytest.raises(LLMError, match=r"has no config.json; expected a from_pretrained dir"):
        LocalServer(tmp_path).start()


def test_local_server_model_before_start():
    with pytest.raises(LLMError, match=r"known only after start\(\)"):
        _ = LocalServer("unused").model


@pytest.mark.slow
def test_local_server_broken_model_reports_output_tail(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}')
    server = LocalServer(tmp_path, startup_timeout_s=120)
    with pytest.raises(LLMError, match=r"(?s)exited with status \d+ before answering.*last output:\n.*\S"):
        server.start()
    assert_gone(server.pid)


@pytest.mark.slow
def test_local_server_startup_timeout_kills_process():
    server = LocalServer(startup_timeout_s=0.5)
    expected = r"did not answer http://127\.0\.0\.1:\d+/health within startup_timeout_s=0\.5 s; last output"
    with pytest.raises(LLMError, match=expected):
        server.start()
    assert_gone(server.pid)


@pytest.mark.slow
def test_local_server_dies_with_a_killed_parent():
    # SIGKILL skips atexit and __exit__; the server must still go (PR_SET_PDEATHSIG).
    code = "from reportgen.localserver import LocalServer; import time; s = LocalServer().start(); " \
           "print(s.pid, flush=True); time.sleep(120)"
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        server_pid = int(parent.stdout.readline())
        assert is_alive(server_pid)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 20
    while is_alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert_gone(server_pid)


def is_alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (a container's pid 1 may never reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def assert_gone(pid: int | None) -> None:
    assert pid is not None
    assert not is_alive(pid), f"server process {pid} is still running"


# --- a real transformers serve with the bundled SmolLM2 --------------------------------------------------


@pytest.fixture(scope="module")
def local_server():
    with LocalServer() as server:
        yield server
    assert_gone(server.pid)


@pytest.mark.slow
def test_local_server_model_name_is_the_served_dir(local_server):
    from probe.models import resolve_model

    assert local_server.model == str(Path(resolve_model("smollm2").load_dir).resolve())
    assert local_server.base_url.startswith("http://127.0.0.1:")
    assert 0 < local_server.startup_s < 300


@pytest.mark.slow
def test_real_chat_then_cache_hit_then_miss(local_server, tmp_path):
    cfg = LLMConfig(provider="local", max_tokens=8, timeout_s=120).with_endpoint(local_server.base_url,
                                                                                 local_server.model)
    cache = ResponseCache(tmp_path)
    client = LLMClient(cfg, cache)
    first = client.chat(MESSAGES)
    assert first.text.strip() and not first.cached
    assert first.prompt_tokens > 0 and 0 < first.completion_tokens <= 8
    assert first.model == local_server.model
    second = client.chat(MESSAGES)
    assert second.cached and replace(second, cached=False) == first
    assert client.stats.requests == 1 and client.stats.cache_hits == 1
    other = LLMClient(replace(cfg, max_tokens=4), cache)
    third = other.chat(MESSAGES)
    assert not third.cached and other.stats.requests == 1 and third.completion_tokens <= 4


@pytest.mark.slow
def test_real_server_refuses_another_model_name(local_server):
    cfg = LLMConfig(provider="local", max_tokens=4).with_endpoint(local_server.base_url, "smollm2")
    client = LLMClient(cfg)
    with pytest.raises(LLMError, match=r"failed after 1 attempt: HTTP 400: .*Server is pinned to"):
        client.chat(MESSAGES)
