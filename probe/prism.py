"""Prism lens: per-layer diagonal whitening plus an orthogonal map into the final residual space.

For layer l, with per-dimension mean/std (mu_l, s_l) of the layer's raw residual and (mu_f, s_f) of the final
pre-norm residual (the last block's raw output), both over the same N corpus positions:

    z = (h - mu_l) / s_l,   y = (h_f - mu_f) / s_f,   R_l = argmin_{R orthogonal} ||Z R - Y||_F = U V^T
    where Z^T Y = U S V^T (orthogonal Procrustes, SVD of the cross-covariance), and
    decode_l(h) = head(final_norm(((h - mu_l) / s_l) @ R_l * s_f + mu_f)).

R_l is fitted on the same representation it is applied to (the raw residual h_l, not a normalized copy), from
N >= 4 * d_model distinct positions (`fit_prism` refuses fewer). The last layer decodes with the identity.

File format (ours): a directory with ``prism.pt`` (a dict of float32 tensors: ``mean`` and ``std``
[n_layers, d_model], ``rotation`` [n_layers, d_model, d_model], ``final_mean`` and ``final_std`` [d_model]) and
``prism.json`` (``lens_type`` "prism_diag_procrustes", ``format_version`` 1, ``base_model_name_or_path``,
``d_model``, ``num_hidden_layers``, ``n_positions``, ``eps``, ``unembed_hash`` as in `probe.tuned.unembed_hash`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from probe.errors import ProbeError
from probe.lenses import FinalSpaceLens, Lens, Unembed
from probe.surgery import ModelParts, NormInfo, fp32_copy
from probe.tuned import check_hash, unembed_hash

CONFIG_FILE, PARAMS_FILE = "prism.json", "prism.pt"
LENS_TYPE, FORMAT_VERSION = "prism_diag_procrustes", 1
MIN_POSITIONS_PER_DIM = 4
TENSORS = ("mean", "std", "rotation", "final_mean", "final_std")


def procrustes(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Orthogonal R minimizing ||z R - y||_F; z, y [n_pos, d] -> R [d, d] (computed in float64)."""
    u, _, vh = torch.linalg.svd(z.double().T @ y.double())
    return (u @ vh).float()


def standardize_stats(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std (population, + eps) of x [n_pos, d] -> ([d], [d]) float32."""
    xd = x.double()
    mean = xd.mean(0)
    std = (xd.var(0, unbiased=False) + eps).sqrt()
    return mean.float(), std.float()


class PrismLens(FinalSpaceLens):
    """Diagonal whitening + orthogonal map per layer, then the final norm and head in float32.

    Attributes:
        mean, std: [n_layers, d_model]; rotation: [n_layers, d_model, d_model]; final_mean, final_std: [d_model].
    """

    name = "prism"

    def __init__(self, tensors: dict[str, torch.Tensor], final_norm: nn.Module, final_info: NormInfo,
                 unembed: Unembed, config: dict[str, Any]):
        self.mean, self.std, self.rotation = tensors["mean"], tensors["std"], tensors["rotation"]
        self.final_mean, self.final_std = tensors["final_mean"], tensors["final_std"]
        self.final_norm = final_norm.requires_grad_(False)  # a frozen fp32 copy: no grads accumulate in it
        self.final_info, self.unembed, self.config = final_info, unembed, config

    @property
    def n_layers(self) -> int:
        """Number of blocks; decoded layers are 0 .. n_layers."""
        return int(self.rotation.shape[0])

    def tensors(self) -> dict[str, torch.Tensor]:
        """The fitted tensors by name (TENSORS)."""
        return {k: getattr(self, k) for k in TENSORS}

    def to_final(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """Map h [..., d_model] at `layer` into the final residual space, float32 (identity at layer n)."""
        if not 0 <= layer <= self.n_layers:
            raise ValueError(f"layer {layer} outside 0..{self.n_layers}")
        h = h.float()
        if layer == self.n_layers:
            return h
        z = (h - self.mean[layer]) / self.std[layer]
        return (z @ self.rotation[layer]) * self.final_std + self.final_mean



    def save(self, out: Path) -> Path:
        """Write ``prism.pt`` and ``prism.json`` into `out` (created); returns `out`."""
        out.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu().clone() for k, v in self.tensors().items()}, out / PARAMS_FILE)
        (out / CONFIG_FILE).write_text(json.dumps(self.config, indent=2) + "\n")
        return out


def fit_prism(resid: torch.Tensor, parts: ModelParts, unembed: Unembed, device: torch.device, model_name: str,
              eps: float = 1e-6) -> PrismLens:
    """Fit from residuals resid [n_layers + 1, n_pos, d_model] (index n = the final pre-norm state).

    Raises:
        ProbeError: fewer than MIN_POSITIONS_PER_DIM * d_model positions (the rotation would be underdetermined).
    """
    n1, n_pos, d = resid.shape
    if n1 != parts.n_layers + 1:
        raise ValueError(f"resid has {n1} layers, expected {parts.n_layers + 1}")
    if n_pos < MIN_POSITIONS_PER_DIM * d:
        raise ProbeError(f"Prism needs at least {MIN_POSITIONS_PER_DIM} * d_model = {MIN_POSITIONS_PER_DIM * d} "
                         f"distinct corpus positions to fit a {d}x{d} rotation; got {n_pos}: raise --tokens")
    fm, fs = standardize_stats(resid[-1], eps)
    y = (resid[-1].float() - fm) / fs
    means, stds, rots = [], [], []
    for layer in range(n1 - 1):
        m, s = standardize_stats(resid[layer], eps)
        rots.append(procrustes((resid[layer].float() - m) / s, y))
        means.append(m)
        stds.append(s)
    tensors = {"mean": torch.stack(means), "std": torch.stack(stds), "rotation": torch.stack(rots),
               "final_mean": fm, "final_std": fs}
    cfg = {"lens_type": LENS_TYPE, "format_version": FORMAT_VERSION, "base_model_name_or_path": model_name,
           "d_model": d, "num_hidden_layers": n1 - 1, "n_positions": n_pos, "eps": eps,
           "unembed_hash": unembed_hash(parts)}
    tensors = {k: v.to(device) for k, v in tensors.items()}
    return PrismLens(tensors, fp32_copy(parts.final_norm, device), parts.final_norm_info, unembed, cfg)


def load_prism(path: Path, parts: ModelParts, unembed: Unembed, device: torch.device) -> PrismLens:
    """Read a Prism directory for this model.

    Raises:
        ProbeError: missing files, wrong lens type or format version, shapes, or a hash mismatch.
    """
    path = Path(path)
    cfg_path, params_path = path / CONFIG_FILE, path / PARAMS_FILE
    if not cfg_path.is_file() or not params_path.is_file():
        raise ProbeError(f"{path}: expected a Prism lens directory with {CONFIG_FILE} and {PARAMS_FILE}")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as e:
        raise ProbeError(f"{cfg_path}: cannot read the Prism config ({e})") from e
    if not isinstance(cfg, dict) or cfg.get("lens_type") != LENS_TYPE or cfg.get("format_version") != FORMAT_VERSION:
        raise ProbeError(f"{cfg_path}: expected lens_type {LENS_TYPE!r} format_version {FORMAT_VERSION}")
    n, d = parts.n_layers, int(parts.unembed_weight.shape[1])
    if (cfg.get("num_hidden_layers"), cfg.get("d_model")) != (n, d):
        raise ProbeError(f"{cfg_path}: lens for num_hidden_layers={cfg.get('num_hidden_layers')}, "
                         f"d_model={cfg.get('d_model')}; this model has {n} layers, d_model={d}")
    check_hash(parts, cfg.get("unembed_hash"), cfg_path)
    try:
        state = torch.load(params_path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad pickle
        raise ProbeError(f"{params_path}: cannot load the Prism tensors ({e})") from e
    shapes = {"mean": (n, d), "std": (n, d), "rotation": (n, d, d), "final_mean": (d,), "final_std": (d,)}
    if not isinstance(state, dict) or set(state) != set(TENSORS):
        raise ProbeError(f"{params_path}: expected exactly the tensors {', '.join(TENSORS)}")
    for k, shape in shapes.items():
        if tuple(state[k].shape) != shape:
            raise ProbeError(f"{params_path}: {k} is {tuple(state[k].shape)}, expected {shape}")
    tensors = {k: state[k].to(device=device, dtype=torch.float32) for k in TENSORS}
    return PrismLens(tensors, fp32_copy(parts.final_norm, device), parts.final_norm_info, unembed, cfg)


def prism_factory(parts: ModelParts, unembed: Unembed, device: torch.device, strategy: str = "final_norm", *,
                  path: Path | None = None) -> PrismLens:
    """Registry factory (same signature as ``probe.lenses.LENSES`` plus `path`); `strategy` is ignored.

    Raises:
        ProbeError: no `path` (Prism must be fitted first) or a bad file.
    """
    if path is None:
        raise ProbeError("the Prism lens needs a fitted lens directory (prism.json + prism.pt): "
                         "run `probe fit prism --model M --corpus wiki --out DIR` and pass DIR")
    return load_prism(Path(path), parts, unembed, device)


LENS_FACTORIES: dict[str, Callable[..., Lens]] = {"prism": prism_factory}
