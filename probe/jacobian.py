"""Jacobian lens: decode the residual after block l through the corpus-averaged Jacobian of the model's output.

lens_l(h) = unembed(final_norm(J_l h)), where J_l [d_model, d_model] is the average first-order effect of the
residual at probe layer l (0 = embeddings, i.e. the input of block 0; l = the residual after l blocks, the input
of block l) on the last block's output (the final residual stream, before the final norm). At the last layer
(l = n_layers) J is the identity, so the lens is the model's own head there.

Estimator (the reference Jacobian lens of Gurnee et al. 2026, `anthropics/jacobian-lens`): for one prompt of T
tokens, with V = {skip_first, ..., T - 2} the valid positions (the first positions are attention sinks and the
last position has no later target),

    J_l(prompt) = mean_{s in V} sum_{t in V, t >= s} d out_t / d h_l[s]        (out_t, h_l[s] in R^d)

i.e. a one-hot cotangent on output dimension i at every valid target position t, the gradient read at every valid
source position s (causality makes the t < s terms zero) and averaged over s. J_l is the mean of J_l(prompt)
over prompts (each prompt weighs the same). Rows are computed by vector-Jacobian products: one forward per prompt
with the prompt replicated `dim_batch` times along the batch axis, the graph retained, then ceil(d / dim_batch)
backward passes whose batch element b carries the cotangent of output dimension p * dim_batch + b. One backward
pass serves every source layer at once (`torch.autograd.grad` w.r.t. all captured residuals), and the model's
weights never get gradients.

File format (`torch.save`): {"J": {layer: fp16 [d, d]}, "n_prompts": int, "source_layers": [layer, ...],
"d_model": int, "layer_index": "probe", "meta": {...}}. Keys are probe layers (see above). A file without
"layer_index" is read in the reference convention, where key k is the output of block k (probe layer k + 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from probe.errors import ProbeError
from probe.lenses import FinalSpaceLens, Lens, Unembed
from probe.surgery import ModelParts, NormInfo, fp32_copy

LAYER_INDEX = "probe"  # marks files whose keys are probe layers, not reference block indices
DEFAULT_SKIP_FIRST = 1  # the reference skips 16 on 128-token passages; the bundled prompts are one sentence
DEFAULT_DIM_BATCH = 32  # 2 CPU cores: 32 was ~3x faster per row than 8 (per-pass overhead); memory grows with it
POSITIONS = "mean over valid sources s of sum over valid targets t >= s of d out_t / d h_s"


@dataclass
class Jacobians:
    """Fitted transport matrices.

    J: probe layer -> [d_model, d_model] float32, applied as J @ h (rows index the output dimension).
    """

    J: dict[int, torch.Tensor]
    n_prompts: int
    d_model: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def source_layers(self) -> list[int]:
        """Fitted probe layers, ascending."""
        return sorted(self.J)


def d_model_of(parts: ModelParts) -> int:
    """Residual width, from the unembedding [vocab, d_model]."""
    return int(parts.unembed_weight.shape[1])


def save_jacobians(path: Path, jac: Jacobians) -> Path:
    """Write the reference format with fp16 matrices (entries are O(1), so fp16 keeps ~3 significant digits).

    The file is written next to its target and renamed, so a crash never leaves half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"J": {int(k): v.detach().to("cpu", torch.float16).contiguous() for k, v in sorted(jac.J.items())},
           "n_prompts": int(jac.n_prompts), "source_layers": jac.source_layers, "d_model": int(jac.d_model),
           "layer_index": LAYER_INDEX, "meta": dict(jac.meta)}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(doc, tmp)
    tmp.replace(path)
    return path


def load_jacobians(path: Path, parts: ModelParts) -> Jacobians:
    """Read a fitted file and check it against the model.

    Raises:
        ProbeError: the file is missing or unreadable, not the reference format, or its d_model, layers or
            matrix shapes do not fit this model (the message names the file and what was expected).
    """
    path = Path(path)
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ProbeError(f"{path}: no such Jacobian-lens file; fit one with `probe fit jacobian`") from None
    except Exception as e:  # noqa: BLE001 - pickle/zip errors of all kinds mean the same thing here
        raise ProbeError(f"{path}: not a readable torch.save file ({type(e).__name__}: {e})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("J"), dict) or "d_model" not in doc:
        raise ProbeError(f"{path}: expected a dict with 'J' {{layer: [d, d] tensor}}, 'd_model', 'n_prompts' and "
                         "'source_layers' (the Jacobian-lens format)")
    d, n = d_model_of(parts), parts.n_layers
    if int(doc["d_model"]) != d:
        raise ProbeError(f"{path}: d_model {doc['d_model']} but this model ({parts.arch_class}) has d_model {d}")
    shift = 0 if doc.get("layer_index") == LAYER_INDEX else 1  # reference files key the output of block k
    mats: dict[int, torch.Tensor] = {}
    for key, m in doc["J"].items():
        layer = int(key) + shift
        if not 0 <= layer <= n:
            raise ProbeError(f"{path}: layer {key} is outside this model's layers 0..{n} "
                             f"({n} blocks; keys are {'probe layers' if not shift else 'block indices'})")
        if not torch.is_tensor(m) or tuple(m.shape) != (d, d):
            got = tuple(m.shape) if torch.is_tensor(m) else type(m).__name__
            raise ProbeError(f"{path}: J[{key}] has shape {got}, expected ({d}, {d})")
        mats[layer] = m.to(torch.float32)
    listed = doc.get("source_layers")
    if listed is not None and sorted(int(k) for k in listed) != sorted(int(k) for k in doc["J"]):
        raise ProbeError(f"{path}: source_layers {list(listed)} do not match the keys of J {sorted(doc['J'])}")
    meta = dict(doc.get("meta") or {})
    meta["file"] = str(path)
    return Jacobians(mats, int(doc.get("n_prompts", 0)), d, meta)


class JacobianLens(FinalSpaceLens):
    """lens_l(h) = unembed(final_norm(J_l h)) in float32; the identity at the last layer."""

    name = "jacobian"

    def __init__(self, jac: Jacobians, final_norm: nn.Module, final_norm_info: NormInfo, unembed: Unembed,
                 n_layers: int, device: torch.device):
        self.jac, self.final_norm, self.final_info, self.unembed = jac, final_norm, final_norm_info, unembed
        self.n_layers = n_layers
        self.J = {k: v.to(device=device, dtype=torch.float32) for k, v in jac.J.items()}

    @classmethod
    def from_parts(cls, parts: ModelParts, unembed: Unembed, device: torch.device, strategy: str = "final_norm",
                   *, path: Path | None = None) -> JacobianLens:
        """Registry factory: load the fitted file at `path` (the strategy is ignored: always the final norm).

        Raises:
            ProbeError: no path given, or the file does not fit the model (see `load_jacobians`).
        """
        if path is None:
            raise ProbeError("the jacobian lens needs a fitted file: run `probe fit jacobian --model M --out FILE` "
                             "and pass that FILE")
        jac = load_jacobians(path, parts)
        norm = fp32_copy(parts.final_norm, device).requires_grad_(False)
        return cls(jac, norm, parts.final_norm_info, unembed, parts.n_layers, device)

    def has_layer(self, layer: int) -> bool:
        """Whether this layer can be decoded (fitted, or the last layer)."""
        return layer == self.n_layers or layer in self.J

    def to_final(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """H [..., d_model] -> J_l h [..., d_model], float32.

        Raises:
            ProbeError: the layer was not fitted (names the file and the fitted layers).
        """
        if layer == self.n_layers:
            return h.float()
        if layer not in self.J:
            raise ProbeError(f"{self.jac.meta.get('file', 'jacobian lens')}: layer {layer} was not fitted; fitted "
                             f"layers {self.jac.source_layers} (and {self.n_layers}, the identity)")
        return h.float() @ self.J[layer].T




def _first(x: Any) -> torch.Tensor:
    return x[0] if isinstance(x, tuple) else x


class _Stop(Exception):
    """Raised by the last block's hook: the final norm and head are not needed."""


def check_layers(layers: Sequence[int] | None, n: int) -> list[int]:
    """Sorted, deduplicated fit source layers (None: all of 0 .. n - 1).

    Raises:
        ProbeError: a layer outside 0 .. n - 1, or none.
    """
    out = sorted(set(range(n) if layers is None else (int(x) for x in layers)))
    bad = [x for x in out if not 0 <= x < n]
    if bad or not out:
        raise ProbeError(f"layers {bad or out}: fit source layers must lie in 0..{n - 1} (probe layers: 0 = "
                         f"embeddings, l = residual after l blocks; layer {n} is the identity)")
    return out


def valid_positions(seq_len: int, skip_first: int) -> range:
    """Source and target positions of one prompt: skip_first .. seq_len - 2."""
    return range(skip_first, seq_len - 1)


def prompt_jacobians(model: nn.Module, parts: ModelParts, ids: Sequence[int], layers: Sequence[int],
                     device: torch.device, skip_first: int = DEFAULT_SKIP_FIRST, dim_batch: int = DEFAULT_DIM_BATCH,
                     progress: Callable[[int], Any] | None = None) -> torch.Tensor:
    """J_l of one prompt for every source layer (see the module docstring for which positions).

    Args:
        ids: token ids [T] of one prompt (with any BOS).
        layers: probe layers (0 .. n_layers - 1).
        progress: called with 1 after every backward pass (e.g. `tqdm.update`).

    Returns:
        [len(layers), d_model, d_model] float32 on `device`, in ascending layer order.
    """
    layers = check_layers(layers, parts.n_layers)
    pos = valid_positions(len(ids), skip_first)
    if len(pos) == 0:
        raise ProbeError(f"a prompt of {len(ids)} tokens has no positions to average with skip_first={skip_first} "
                         f"(needs at least {skip_first + 2} tokens)")
    d = d_model_of(parts)
    batch = max(1, min(dim_batch, d))
    grabbed: dict[int, torch.Tensor] = {}

    def pre_hook(layer: int, seed: bool) -> Callable[..., Any]:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            h = args[0] if args else kwargs["hidden_states"]
            if seed:  # the graph starts here: blocks below the lowest source run without autograd state
                h = h.detach().clone().requires_grad_(True)
            grabbed[layer] = h
            if not seed:
                return None
            return ((h, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": h})
        return hook

    def out_hook(_m: nn.Module, _i: Any, out: Any) -> None:
        grabbed[-1] = _first(out)
        raise _Stop

    handles = [parts.blocks[layer].register_forward_pre_hook(pre_hook(layer, layer == layers[0]), with_kwargs=True)
               for layer in layers]
    handles.append(parts.blocks[-1].register_forward_hook(out_hook))
    x = torch.tensor([list(ids)], device=device).expand(batch, -1)
    try:
        with torch.enable_grad():
            try:
                model(input_ids=x, use_cache=False)
            except _Stop:
                pass
            final, sources = grabbed[-1], [grabbed[layer] for layer in layers]
            if not all(s.requires_grad for s in sources) or not final.requires_grad:
                raise RuntimeError("the residual stream carries no gradient: the block call shape is unsupported")
            rows = torch.zeros(len(layers), d, d, dtype=torch.float32, device=device)
            cot = torch.zeros_like(final)  # [batch, T, d]
            idx = torch.tensor(list(pos), device=device)
            n_pass = math.ceil(d / batch)
            for p in range(n_pass):
                lo, k = p * batch, min(batch, d - p * batch)
                cot.zero_()
                b = torch.arange(k, device=device)
                cot[b[:, None], idx[None, :], (lo + b)[:, None]] = 1.0
                grads = torch.autograd.grad(final, sources, grad_outputs=cot, retain_graph=p < n_pass - 1)
                for i, g in enumerate(grads):
                    rows[i, lo:lo + k] = g[:k, pos.start:pos.stop].float().mean(dim=1)
                if progress:
                    progress(1)
    finally:
        for h in handles:
            h.remove()
        grabbed.clear()
    return rows


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration (both restored), so backward passes stay input-only."""
    params = list(model.parameters())
    flags, training = [p.requires_grad for p in params], model.training
    try:
        for p in params:
            p.requires_grad_(False)
        model.eval()
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        model.train(training)


def fit_jacobians(model: nn.Module, parts: ModelParts, prompts: Sequence[Sequence[int]],
                  layers: Sequence[int] | None, device: torch.device,
                  progress: Callable[[int], Any] | None = None, *, skip_first: int = DEFAULT_SKIP_FIRST,
                  dim_batch: int = DEFAULT_DIM_BATCH, meta: dict[str, Any] | None = None) -> Jacobians:
    """Average the per-prompt Jacobians over a corpus, in float32.

    Args:
        model: a float32 causal LM in eval mode (its parameters' requires_grad is restored afterwards).
        prompts: token ids of each prompt.
        layers: probe layers to fit (None: 0 .. n_layers - 1; n_layers is the identity and never fitted).
        device: the model's device; the matrices are accumulated there.
        progress: called with 1 after every backward pass; there are len(prompts) * ceil(d / dim_batch).
        skip_first: leading positions left out of sources and targets (attention sinks).
        dim_batch: output dimensions per backward pass (the batch of one-hot cotangents).

    Raises:
        ProbeError: bad layers, a non-float32 model, no prompts, or a prompt too short for skip_first.
    """
    n = parts.n_layers
    src = check_layers(layers, n)
    dtype = next(parts.blocks[0].parameters()).dtype
    if dtype != torch.float32:
        raise ProbeError(f"fit the Jacobian lens in float32 (the model is {dtype}); load it with --dtype float32")
    if not prompts:
        raise ProbeError("no prompts to fit the Jacobian lens on")
    short = [len(ids) for ids in prompts if len(valid_positions(len(ids), skip_first)) == 0]
    if short:
        raise ProbeError(f"{len(short)} prompt(s) of {min(short)} tokens have no positions to average with "
                         f"skip_first={skip_first}: each needs at least {skip_first + 2} tokens")
    d = d_model_of(parts)
    acc = torch.zeros(len(src), d, d, dtype=torch.float32, device=device)
    with frozen(model):
        for ids in prompts:
            acc += prompt_jacobians(model, parts, ids, src, device, skip_first, dim_batch, progress)
    acc /= len(prompts)
    info = {"positions": POSITIONS, "skip_first": skip_first, "dim_batch": dim_batch, "target": "last block output",
            "tokens": [len(p) for p in prompts], **(meta or {})}
    return Jacobians({layer: acc[i].cpu() for i, layer in enumerate(src)}, len(prompts), d, info)


def jacobian_factory(parts: ModelParts, unembed: Unembed, device: torch.device, strategy: str = "final_norm",
                     *, path: Path | None = None) -> Lens:
    """Factory with the `probe.lenses.LENSES` signature plus the fitted file's `path`."""
    return JacobianLens.from_parts(parts, unembed, device, strategy, path=path)


LENS_FACTORIES: dict[str, Callable[..., Lens]] = {"jacobian": jacobian_factory}
