"""Run `transformers serve` on a local model dir as a subprocess: an offline OpenAI-compatible endpoint.

Usage::

    with LocalServer() as server:  # the bundled SmolLM2-135M-Instruct
        client = LLMClient(config.with_endpoint(server.base_url, server.model))

`transformers serve DIR` pins the server to DIR: the `model` field must be DIR exactly as passed (or absent),
any other name is a 400, so `model` is read back from `/v1/models` rather than guessed.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from reportgen.llm import LLMError

# Run the CLI through this interpreter, so the server uses the same venv as we do even when the
# `transformers` script is not on PATH.
_SERVE = "import sys; from transformers.cli.transformers import main; sys.argv[0] = 'transformers'; main()"
_POLL_S = 0.25
_STOP_GRACE_S = 10.0
_TAIL_LINES = 12


class LocalServer:
    """Context manager owning one `transformers serve` process; stopped on exit, exceptions included."""

    name = "transformers serve"  # in error messages

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout_s: float = 300.0,
    ) -> None:
        """Describe the server; nothing starts until `start()` or `with`.

        Args:
            model_dir: a dir `from_pretrained` can read; None means the bundled smollm2 (built on first use).
            host: listen address; loopback keeps the unauthenticated server private.
            port: listen port; None picks a free one.
            startup_timeout_s: how long to wait for the model to load and `/health` to answer.

        """
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.startup_s: float | None = None  # seconds from spawn to a healthy server
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None  # our reading end of the server's output file
        self._model: str | None = None

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, ending in /v1."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def model(self) -> str:
        """The id the server wants in the `model` field (the served dir's path, as passed)."""
        if self._model is None:
            raise LLMError("LocalServer.model is known only after start(); use `with LocalServer() as s:`")
        return self._model

    @property
    def pid(self) -> int | None:
        """Process id of the server subprocess (kept after stop, to let callers check it is gone)."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> LocalServer:
        """Spawn the server and block until it answers.

        Returns:
            self, with `base_url`, `model` and `startup_s` set.

        Raises:
            LLMError: the model dir is unusable, the server exited, or it did not answer in time; the
                message carries the tail of the server's output. The process is stopped before raising.

        """
        if self._proc is not None and self._proc.poll() is None:
            raise LLMError(f"LocalServer on {self.base_url} is already running")
        model_dir = self._resolve_model_dir()
        self.port = self.port or _free_port(self.host)
        fd, log_name = tempfile.mkstemp(prefix="lensreport-serve-", suffix=".log")
        # Open our own reader, then unlink: the file lives on through both descriptors and vanishes with
        # them, so nothing is left in /tmp even if we are SIGKILLed. A separate open gives us our own offset.
        self._log = open(log_name, "rb")  # closed by stop()
        os.unlink(log_name)
        cmd, env = self._command(model_dir), self._env()
        began = time.monotonic()
        # A file, not a pipe, takes the output: an unread pipe fills up and blocks the server.
        # A new session lets stop() signal the whole process group the server may have spawned.
        atexit.register(self.stop)
        try:
            with os.fdopen(fd, "wb") as log_file:
                self._proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                    start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                )
            self._wait_until_healthy(began)
            self._model = _pick_model(_get_json(f"{self.base_url}/models"), str(model_dir))
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after a grace period) and wait for it; idempotent."""
        atexit.unregister(self.stop)
        proc = self._proc
        if proc is not None and proc.poll() is None:
            # poll() is None means not yet reaped, so the pid (also its group id) is still ours to signal.
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def output_tail(self) -> str:
        """Last lines of the server's stdout+stderr, progress-bar redraws split into lines."""
        if self._log is None:
            return "(no output captured)"
        size = self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, size - 8000))
        text = self._log.read().decode("utf-8", errors="replace")
        lines = [ln.rstrip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
        return "\n".join(lines[-_TAIL_LINES:]) or "(no output)"

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _command(self, model_dir: Path) -> list[str]:
        """The server's argv; `host` and `port` are set by now (subclasses serve other engines)."""
        return [sys.executable, "-c", _SERVE, "serve", str(model_dir), "--host", self.host, "--port", str(self.port)]

    def _env(self) -> dict[str, str]:
        """The server's environment: the bundled model is local; offline mode stops the hub trying the network."""
        return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    def _resolve_model_dir(self) -> Path:
        """Default to the bundled smollm2 and check the dir looks loadable before spawning anything."""
        if self.model_dir is None:
            from probe.models import resolve_model  # deferred: importing probe pulls in torch

            self.model_dir = Path(resolve_model("smollm2").load_dir)
        model_dir = self.model_dir.resolve()
        if not (model_dir / "config.json").is_file():
            raise LLMError(f"LocalServer: {model_dir} has no config.json; expected a from_pretrained dir")
        return model_dir

    def _wait_until_healthy(self, began: float) -> None:
        """Poll /health until it answers 200, the process exits, or startup_timeout_s passes."""
        assert self._proc is not None
        health = f"http://{self.host}:{self.port}/health"
        while time.monotonic() - began < self.startup_timeout_s:
            if (code := self._proc.poll()) is not None:
                raise LLMError(f"{self.name} exited with status {code} before answering {health}; "
                               f"last output:\n{self.output_tail()}")
            if _get_json(health, quiet=True) is not None:
                return
            time.sleep(_POLL_S)
        raise LLMError(f"{self.name} did not answer {health} within startup_timeout_s="
                       f"{self.startup_timeout_s:g} s; last output:\n{self.output_tail()}")


def _free_port(host: str) -> int:
    """Ask the OS for a free port; the tiny race until the server binds it shows up as a clear exit."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _get_json(url: str, quiet: bool = False) -> Any:
    """GET `url` and decode JSON; with `quiet`, return None while the server is not up yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as e:
        if quiet:
            return None
        raise LLMError(f"GET {url} failed: {e}") from e


def _pick_model(listing: Any, model_dir: str) -> str:
    """Return the served model id from a /v1/models listing, preferring the dir we asked for."""
    ids = [m.get("id") for m in (listing or {}).get("data", []) if isinstance(m, dict)]
    if not ids:
        raise LLMError(f"transformers serve listed no models at /v1/models: {listing!r:.200}")
    return model_dir if model_dir in ids else str(ids[0])


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when its parent dies, since SIGKILL or SIGTERM skip atexit.

    The kernel ties this to the thread that spawned the child, so start the server from a long-lived thread.
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not fatal: stop() and atexit still cover every orderly exit


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the server's process group, tolerating a process that exited in the meantime."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
