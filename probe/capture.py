"""One forward pass that returns the residual stream after every block, pre-final-norm, in float32."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from probe.surgery import ModelParts


@dataclass
class Capture:
    """Residual stream and the model's own output for one prompt.

    resid: [n_layers + 1, seq_len, d_model] float32; index 0 = embedding output (after any embedding scale),
        index i = output of block i-1. The last entry is the last block's raw output, captured by a hook,
        because HF's `hidden_states[-1]` is already final-normed (pitfall P1).
    logits: [seq_len, vocab] the model's own logits, cast to float32 (computed in the model's dtype).
    """

    input_ids: list[int]
    resid: torch.Tensor
    logits: torch.Tensor


def _block_output(output: object) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output  # type: ignore[index,return-value]


@torch.no_grad()
def capture(model: torch.nn.Module, parts: ModelParts, input_ids: list[int], device: torch.device) -> Capture:
    """Run the model once with hidden states and a hook on the last block.

    Args:
        input_ids: token ids including any BOS the tokenizer adds.
        device: where to put the float32 residuals (the lens device).
    """
    grabbed: list[torch.Tensor] = []
    handle = parts.blocks[-1].register_forward_hook(lambda _m, _i, out: grabbed.append(_block_output(out)))
    try:
        ids = torch.tensor([input_ids], device=model.get_input_embeddings().weight.device)
        out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    finally:
        handle.remove()
    hs = out.hidden_states
    n = parts.n_layers
    if hs is None or len(hs) != n + 1:
        got = None if hs is None else len(hs)
        raise RuntimeError(f"expected {n + 1} hidden states (embeddings + {n} blocks), got {got}")
    if len(grabbed) != 1:
        raise RuntimeError(f"last-block hook fired {len(grabbed)} times, expected once")
    layers = [h[0].to(device=device, dtype=torch.float32) for h in hs[:n]]
    layers.append(grabbed[0][0].to(device=device, dtype=torch.float32))
    return Capture(list(input_ids), torch.stack(layers), out.logits[0].to(device=device, dtype=torch.float32))
