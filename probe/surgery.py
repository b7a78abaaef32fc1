"""Architecture quirks in one place: where the blocks, norms and unembedding live, soft-cap, tying, scaling."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from probe.errors import ProbeError

# model_type -> (blocks path, final norm path, name of each block's input (pre-attention) norm)
ARCHITECTURES: dict[str, tuple[str, str, str]] = {
    "llama": ("model.layers", "model.norm", "input_layernorm"),
    "mistral": ("model.layers", "model.norm", "input_layernorm"),
    "qwen2": ("model.layers", "model.norm", "input_layernorm"),
    "qwen3": ("model.layers", "model.norm", "input_layernorm"),
    "gemma": ("model.layers", "model.norm", "input_layernorm"),
    "gemma2": ("model.layers", "model.norm", "input_layernorm"),
    "gemma3_text": ("model.layers", "model.norm", "input_layernorm"),
    "phi3": ("model.layers", "model.norm", "input_layernorm"),
    "olmo2": ("model.layers", "model.norm", "post_attention_layernorm"),
    "gpt2": ("transformer.h", "transformer.ln_f", "ln_1"),
    "gpt_neox": ("gpt_neox.layers", "gpt_neox.final_layer_norm", "input_layernorm"),
}


@dataclass(frozen=True)
class NormInfo:
    """What a normalizer module does, recorded per decoded layer (normalization provenance)."""

    module: str  # dotted module name, e.g. "model.norm"
    kind: str  # "RMSNorm" | "LayerNorm"
    eps: float | None
    gamma_offset: float  # 1.0 for Gemma's (1 + w) RMSNorm
    has_bias: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"module": self.module, "kind": self.kind, "eps": self.eps, "gamma_offset": self.gamma_offset,
                "has_bias": self.has_bias}


@dataclass
class ModelParts:
    """The pieces a lens needs, found by architecture. Tensors here are the model's own (not copies)."""

    model_type: str
    arch_class: str
    blocks: list[nn.Module]
    final_norm: nn.Module
    final_norm_info: NormInfo
    input_norms: list[nn.Module]
    input_norm_infos: list[NormInfo]
    unembed_weight: torch.Tensor  # [vocab, d_model]
    unembed_bias: torch.Tensor | None  # [vocab]
    softcap: float | None
    tied: bool
    embed_scale: float | None

    @property
    def n_layers(self) -> int:
        """Number of transformer blocks."""
        return len(self.blocks)


def _get(root: Any, path: str) -> Any:
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def describe_norm(module: nn.Module, name: str) -> NormInfo:
    """Classify a normalizer: RMS vs Layer norm, its epsilon and Gemma's (1 + w) offset."""
    cls = type(module).__name__
    kind = "LayerNorm" if isinstance(module, nn.LayerNorm) or ("LayerNorm" in cls and "RMS" not in cls) else "RMSNorm"
    eps = next((float(getattr(module, a)) for a in ("eps", "variance_epsilon", "epsilon") if hasattr(module, a)), None)
    bias = getattr(module, "bias", None)
    # Gemma RMSNorm multiplies by (1 + weight) with weight initialised at 0 (HF GemmaRMSNorm).
    offset = 1.0 if cls.startswith("Gemma") and "RMSNorm" in cls else 0.0
    return NormInfo(name, kind, eps, offset, bias is not None)


def text_config(config: Any) -> Any:
    """The language-model config (multimodal configs nest it under text_config)."""
    return getattr(config, "text_config", None) or config


def find_softcap(config: Any) -> float | None:
    """Final-logit soft-cap from the config (HF name `final_logit_softcapping`; Gemma-2 has 30.0, Gemma-3 null)."""
    cap = getattr(text_config(config), "final_logit_softcapping", None)
    return float(cap) if cap else None


def discover(model: nn.Module) -> ModelParts:
    """Locate blocks, norms and unembedding of a supported causal LM.

    Raises:
        ProbeError: for an architecture without an entry in ARCHITECTURES (names the class and lists them).
    """
    cfg = model.config
    mtype = getattr(text_config(cfg), "model_type", None) or cfg.model_type
    if mtype not in ARCHITECTURES:
        raise ProbeError(
            f"unsupported architecture {type(model).__name__} (model_type={mtype!r}); "
            f"supported model types: {', '.join(sorted(ARCHITECTURES))}"
        )
    blocks_path, norm_path, ln1_name = ARCHITECTURES[mtype]
    try:
        blocks = list(_get(model, blocks_path))
        final_norm = _get(model, norm_path)
        input_norms = [getattr(b, ln1_name) for b in blocks]
    except AttributeError as e:
        raise ProbeError(f"{type(model).__name__}: expected {blocks_path}/{norm_path}/{ln1_name}: {e}") from e
    head = model.get_output_embeddings()
    emb = model.get_input_embeddings()
    if head is None:
        raise ProbeError(f"{type(model).__name__} has no output embedding (lm_head); not a causal LM head")
    tied = head.weight is emb.weight or head.weight.data_ptr() == emb.weight.data_ptr()
    scale = getattr(emb, "embed_scale", None)
    return ModelParts(
        model_type=mtype, arch_class=type(model).__name__, blocks=blocks, final_norm=final_norm,
        final_norm_info=describe_norm(final_norm, norm_path),
        input_norms=input_norms,
        input_norm_infos=[describe_norm(m, f"{blocks_path}.{i}.{ln1_name}") for i, m in enumerate(input_norms)],
        unembed_weight=head.weight, unembed_bias=getattr(head, "bias", None), softcap=find_softcap(cfg),
        tied=bool(tied), embed_scale=float(scale) if scale is not None else None,
    )


def fp32_copy(module: nn.Module, device: torch.device) -> nn.Module:
    """A float32 copy of a norm module on `device`, so the lens never runs in bf16/fp16 (pitfall P7)."""
    return copy.deepcopy(module).to(device=device, dtype=torch.float32).eval()
