"""Lenses: decode a residual stream vector into next-token logits. One interface, a small registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from probe.errors import ProbeError
from probe.surgery import ModelParts, NormInfo, fp32_copy


class Unembed:
    """The model's head in float32: W_U h (+ b_U), then the config's final soft-cap when there is one."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, softcap: float | None, device: torch.device):
        self.weight = weight.detach().to(device=device, dtype=torch.float32)  # [vocab, d_model]
        self.bias = None if bias is None else bias.detach().to(device=device, dtype=torch.float32)
        self.softcap = softcap

    @classmethod
    def from_parts(cls, parts: ModelParts, device: torch.device) -> Unembed:
        """Build from discovered model parts."""
        return cls(parts.unembed_weight, parts.unembed_bias, parts.softcap, device)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        """H [..., d_model] -> logits [..., vocab], float32."""
        if h.shape[-1] != self.weight.shape[1]:
            raise ValueError(f"residual width {h.shape[-1]} != unembedding d_model {self.weight.shape[1]}")
        logits = torch.nn.functional.linear(h.float(), self.weight, self.bias)
        if self.softcap:
            # Gemma-2 style: tanh(z / c) * c. Monotone, so ranks are unchanged but probabilities are not.
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


class Lens(ABC):
    """Decodes the residual after block `layer` (layer 0 = embeddings) into logits."""

    name: str

    @abstractmethod
    def decode(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """H [..., d_model] float32 -> logits [..., vocab] float32."""

    @abstractmethod
    def normalizer(self, layer: int) -> NormInfo | None:
        """The normalizer applied before the unembedding at `layer` (None for no normalization)."""


class NormLens(Lens):
    """Logit lens: a normalizer (the final norm by default) then the model's head, all in float32."""

    name = "norm"

    def __init__(self, norms: list[nn.Module], infos: list[NormInfo], unembed: Unembed, strategy: str):
        if len(norms) != len(infos):
            raise ValueError(f"{len(norms)} norms but {len(infos)} descriptions")
        self.norms, self.infos, self.unembed, self.strategy = norms, infos, unembed, strategy

    @classmethod
    def from_parts(cls, parts: ModelParts, unembed: Unembed, device: torch.device,
                   strategy: str = "final_norm") -> NormLens:
        """Build for n_layers + 1 decoded layers, sharing one float32 head with other lenses.

        Args:
            strategy: "final_norm" applies the model's own final norm everywhere (the standard logit lens);
                "next_ln1" applies the next block's input norm (the seed system's choice), and the final norm
                after the last block.
        """
        n = parts.n_layers
        final = fp32_copy(parts.final_norm, device)
        if strategy == "final_norm":
            return cls([final] * (n + 1), [parts.final_norm_info] * (n + 1), unembed, strategy)
        if strategy == "next_ln1":
            norms = [fp32_copy(m, device) for m in parts.input_norms] + [final]
            return cls(norms, list(parts.input_norm_infos) + [parts.final_norm_info], unembed, strategy)
        raise ValueError(f"unknown norm-lens strategy {strategy!r}; expected final_norm or next_ln1")

    def normalize(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """Apply this layer's normalizer in float32."""
        return self.norms[layer](h.float())

    def decode(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """Normalize, then unembed."""
        return self.unembed(self.normalize(h, layer))

    def normalizer(self, layer: int) -> NormInfo | None:
        """The norm used at this layer."""
        return self.infos[layer]


class RawLens(Lens):
    """The residual straight through the unembedding, without normalization."""

    name = "raw"

    def __init__(self, unembed: Unembed):
        self.unembed = unembed

    @classmethod
    def from_parts(cls, parts: ModelParts, unembed: Unembed, device: torch.device, strategy: str = "") -> RawLens:
        """Build from model parts (strategy is ignored)."""
        return cls(unembed)

    def decode(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """Unembed directly."""
        return self.unembed(h)

    def normalizer(self, layer: int) -> NormInfo | None:
        """No normalization."""
        return None


class FinalSpaceLens(Lens):
    """A fitted lens that maps a layer's residual into the final residual space, then applies the model's own
    final norm and head (tuned lens, Prism, Jacobian lens). Subclasses set ``final_norm`` (a frozen fp32 copy),
    ``final_info`` and ``unembed``, and implement `to_final`."""

    final_norm: nn.Module
    final_info: NormInfo
    unembed: Unembed

    @abstractmethod
    def to_final(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """H [..., d_model] at `layer` -> the final residual space [..., d_model], float32."""

    def decode(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """H [..., d_model] -> logits [..., vocab] float32: map, final norm, unembed."""
        return self.unembed(self.final_norm(self.to_final(h, layer)))

    def normalizer(self, layer: int) -> NormInfo | None:
        """The final norm, at every layer."""
        return self.final_info


# Built-in lenses register here the same way the fitted ones do (tuned, Prism, Jacobian: their modules export
# LENS_FACTORIES, merged by `registry()` on first use so importing this module stays light).
LENSES: dict[str, Callable[..., Lens]] = {"norm": NormLens.from_parts, "raw": RawLens.from_parts}
FITTED_LENS_MODULES = ("probe.tuned", "probe.prism", "probe.jacobian")


def registry() -> dict[str, Callable[..., Lens]]:
    """All registered lenses: the built-in ones and every fitted lens module that is installed."""
    import importlib

    out = dict(LENSES)
    for module in FITTED_LENS_MODULES:
        try:
            out.update(getattr(importlib.import_module(module), "LENS_FACTORIES", {}))
        except ImportError:
            continue
    return out


def build_lens(name: str, parts: ModelParts, unembed: Unembed, device: torch.device,
               strategy: str = "final_norm", path: Path | None = None) -> Lens:
    """Construct a registered lens by name; a fitted lens (tuned, prism, jacobian) needs its file.

    Raises:
        ProbeError: Unknown lens, or a fitted lens without its file.
    """
    lenses = registry()
    if name not in lenses:
        raise ProbeError(f"unknown lens {name!r}; registered: {', '.join(lenses)}")
    if name in LENSES:
        return lenses[name](parts, unembed, device, strategy)
    if path is None:
        raise ProbeError(f"lens {name!r} is fitted: pass its file with --lens-file {name}=PATH "
                         f"(make one with `probe fit {name} --model M --out PATH`)")
    return lenses[name](parts, unembed, device, strategy, path=path)
