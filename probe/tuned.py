"""Tuned lens (Belrose et al. 2023): a learned affine translator per layer, decoded through the model's own head.

T_l(h) = h + W_l h + b_l, then the model's final norm and unembedding in float32. The last decoded layer (the last
block's raw output) uses the identity, so the tuned lens agrees with the model there.

File format (the public tuned-lens format, readable by ``tuned_lens.TunedLens.from_unembed_and_pretrained``): a
directory with

- ``config.json``: ``base_model_name_or_path``, ``d_model``, ``num_hidden_layers``, ``bias``,
  ``base_model_revision``, ``unembed_hash``, ``lens_type`` ("linear_tuned_lens"); nothing else.
- ``params.pt``: a torch state dict with ``{i}.weight`` [d_model, d_model] and (when ``bias``) ``{i}.bias``
  [d_model] for i = 0 .. num_hidden_layers - 1 (the ``nn.Linear`` convention: W_l h = h @ weight.T). Translator i
  reads hidden state i (0 = embeddings). Written in float32.

Unembedding hash (``unembed_hash``, written by us): hex sha256 over the tag ``lensreport-unembed-v1``, then for each
of the unembedding weight [vocab, d_model], unembedding bias, final-norm weight and final-norm bias its name, shape
and its values rounded to bfloat16 (raw little-endian bytes; absent tensors hash as ``name:none``), then the
final-logit soft-cap. Rounding to bfloat16 makes the hash the same for a float32 and a bfloat16 load of the same
checkpoint. A config written by the tuned-lens library carries that library's hash (sha256 of numpy's
``array_str(W_U, precision=1)``); it is accepted too, and covers W_U only. Anything else is a ProbeError.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from probe.errors import ProbeError
from probe.lenses import FinalSpaceLens, Lens, Unembed
from probe.surgery import ModelParts, NormInfo, fp32_copy

HASH_TAG = b"lensreport-unembed-v1"
CONFIG_FILE, PARAMS_FILE = "config.json", "params.pt"
CONFIG_KEYS = ("base_model_name_or_path", "d_model", "num_hidden_layers", "bias", "base_model_revision",
               "unembed_hash", "lens_type")


def _hash_tensor(h: Any, name: str, t: torch.Tensor | None) -> None:
    if t is None:
        h.update(f"{name}:none".encode())
        return
    h.update(f"{name}:{list(t.shape)}".encode())
    h.update(t.detach().to("cpu", torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes())


def unembed_hash(parts: ModelParts) -> str:
    """Hash of the decoding head: unembedding, final norm and soft-cap (see the module docstring)."""
    h = hashlib.sha256(HASH_TAG)
    _hash_tensor(h, "unembed.weight", parts.unembed_weight)
    _hash_tensor(h, "unembed.bias", parts.unembed_bias)
    _hash_tensor(h, "final_norm.weight", getattr(parts.final_norm, "weight", None))
    _hash_tensor(h, "final_norm.bias", getattr(parts.final_norm, "bias", None))
    h.update(f"softcap:{parts.softcap}".encode())
    return h.hexdigest()


def library_unembed_hash(weight: torch.Tensor) -> str:
    """The tuned-lens library's hash of W_U: sha256 of numpy's summarized print of it at one decimal."""
    arr = weight.detach().float().cpu().numpy()
    return hashlib.sha256(np.array2string(arr, precision=1, threshold=1000, edgeitems=3,
                                          max_line_width=75).encode()).hexdigest()


def check_hash(parts: ModelParts, stored: str | None, path: Path) -> None:
    """Compare a lens file's hash with the model's head.

    Raises:
        ProbeError: the hash is missing or matches neither scheme (names both hashes and the file).
    """
    ours = unembed_hash(parts)
    if stored == ours:
        return
    if stored and stored == library_unembed_hash(parts.unembed_weight):
        return
    raise ProbeError(f"{path}: unembed_hash {stored!r} does not match this model's head ({ours}); the lens was fitted "
                     "for another model's unembedding or final norm: refit it for this model")


class TunedLens(FinalSpaceLens):
    """Affine translators for layers 0 .. n-1, identity at layer n; final norm + head in float32.

    Attributes:
        weight: [n_layers, d_model, d_model] float32 (nn.Linear convention).
        bias: [n_layers, d_model] float32 (zeros when the config has no bias).
        config: the tuned-lens config dict (CONFIG_KEYS).
    """

    name = "tuned"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, final_norm: nn.Module, final_info: NormInfo,
                 unembed: Unembed, config: dict[str, Any]):
        n, d, d2 = weight.shape
        if d != d2 or bias.shape != (n, d):
            raise ValueError(f"translators: weight {tuple(weight.shape)} and bias {tuple(bias.shape)} are not "
                             f"[n, d, d] and [n, d]")
        self.weight, self.bias = weight.float(), bias.float()
        self.final_norm = final_norm.requires_grad_(False)  # a frozen fp32 copy: no grads accumulate in it
        self.final_info, self.unembed, self.config = final_info, unembed, config
        self.fit_info: dict[str, Any] = {}

    @property
    def n_layers(self) -> int:
        """Number of blocks (translators); decoded layers are 0 .. n_layers."""
        return int(self.weight.shape[0])

    @classmethod
    def identity(cls, parts: ModelParts, unembed: Unembed, device: torch.device, model_name: str,
                 revision: str | None = None, bias: bool = True) -> TunedLens:
        """Zero translators (decodes exactly like the final-norm lens), ready to be fitted."""
        n, d = parts.n_layers, int(parts.unembed_weight.shape[1])
        w = torch.zeros(n, d, d, device=device)
        b = torch.zeros(n, d, device=device)
        cfg = {"base_model_name_or_path": model_name, "d_model": d, "num_hidden_layers": n, "bias": bias,
               "base_model_revision": revision, "unembed_hash": unembed_hash(parts), "lens_type": "linear_tuned_lens"}
        return cls(w, b, fp32_copy(parts.final_norm, device), parts.final_norm_info, unembed, cfg)

    def to_final(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """T_l(h) = h + h @ W_l.T + b_l; h [..., d_model] -> [..., d_model] float32 (identity at layer n)."""
        if not 0 <= layer <= self.n_layers:
            raise ValueError(f"layer {layer} outside 0..{self.n_layers}")
        h = h.float()
        if layer == self.n_layers:
            return h
        return h + nn.functional.linear(h, self.weight[layer], self.bias[layer])



    def save(self, out: Path) -> Path:
        """Write ``config.json`` and ``params.pt`` into `out` (created); returns `out`."""
        out.mkdir(parents=True, exist_ok=True)
        state: dict[str, torch.Tensor] = {}
        for i in range(self.n_layers):
            state[f"{i}.weight"] = self.weight[i].detach().cpu().clone()
            if self.config.get("bias", True):
                state[f"{i}.bias"] = self.bias[i].detach().cpu().clone()
        torch.save(state, out / PARAMS_FILE)
        (out / CONFIG_FILE).write_text(json.dumps({k: self.config.get(k) for k in CONFIG_KEYS}, indent=2) + "\n")
        return out


def read_config(path: Path) -> dict[str, Any]:
    """Read and check a tuned-lens ``config.json``.

    Raises:
        ProbeError: unreadable, not an object, or missing d_model / num_hidden_layers.
    """
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ProbeError(f"{path}: cannot read the lens config ({e}); expected the tuned-lens config.json") from e
    if not isinstance(cfg, dict) or not all(isinstance(cfg.get(k), int) for k in ("d_model", "num_hidden_layers")):
        raise ProbeError(f"{path}: expected a JSON object with integer d_model and num_hidden_layers")
    return cfg


def load_tuned(path: Path, parts: ModelParts, unembed: Unembed, device: torch.device) -> TunedLens:
    """Read a tuned-lens directory for this model.

    Raises:
        ProbeError: missing files, shapes that do not fit the model, missing or unexpected keys, hash mismatch.
    """
    path = Path(path)
    cfg_path, params_path = path / CONFIG_FILE, path / PARAMS_FILE
    if not cfg_path.is_file() or not params_path.is_file():
        raise ProbeError(f"{path}: expected a tuned-lens directory with {CONFIG_FILE} and {PARAMS_FILE}")
    cfg = read_config(cfg_path)
    n, d = parts.n_layers, int(parts.unembed_weight.shape[1])
    if (cfg["num_hidden_layers"], cfg["d_model"]) != (n, d):
        raise ProbeError(f"{cfg_path}: lens for num_hidden_layers={cfg['num_hidden_layers']}, "
                         f"d_model={cfg['d_model']}; this model has {n} layers, d_model={d}")
    check_hash(parts, cfg.get("unembed_hash"), cfg_path)
    try:
        state = torch.load(params_path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad pickle
        raise ProbeError(f"{params_path}: cannot load the translator state dict ({e})") from e
    has_bias = bool(cfg.get("bias", True))
    want = {f"{i}.weight" for i in range(n)} | ({f"{i}.bias" for i in range(n)} if has_bias else set())
    if not isinstance(state, dict) or set(state) != want:
        got = sorted(state)[:6] if isinstance(state, dict) else type(state).__name__
        raise ProbeError(f"{params_path}: expected keys 0.weight..{n - 1}.weight"
                         f"{' and 0.bias..' + str(n - 1) + '.bias' if has_bias else ''}; got {got}")
    w = torch.stack([state[f"{i}.weight"] for i in range(n)]).to(device=device, dtype=torch.float32)
    b = (torch.stack([state[f"{i}.bias"] for i in range(n)]).to(device=device, dtype=torch.float32) if has_bias
         else torch.zeros(n, d, device=device))
    if w.shape != (n, d, d):
        raise ProbeError(f"{params_path}: translator weights are {tuple(w.shape)[1:]}, expected ({d}, {d})")
    cfg = {k: cfg.get(k) for k in CONFIG_KEYS} | {"unembed_hash": unembed_hash(parts)}
    return TunedLens(w, b, fp32_copy(parts.final_norm, device), parts.final_norm_info, unembed, cfg)


def tuned_factory(parts: ModelParts, unembed: Unembed, device: torch.device, strategy: str = "final_norm", *,
                  path: Path | None = None) -> TunedLens:
    """Registry factory (same signature as ``probe.lenses.LENSES`` plus `path`); `strategy` is ignored.

    Raises:
        ProbeError: no `path` (a tuned lens must be fitted first) or a bad file.
    """
    if path is None:
        raise ProbeError("the tuned lens needs a fitted lens directory (config.json + params.pt): "
                         "run `probe fit tuned --model M --corpus wiki --out DIR` and pass DIR")
    return load_tuned(Path(path), parts, unembed, device)


LENS_FACTORIES: dict[str, Callable[..., Lens]] = {"tuned": tuned_factory}
