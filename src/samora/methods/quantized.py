"""Adapter layers over a bitsandbytes base (QLoRA): ``Linear4bit`` (nf4 / fp4) and ``Linear8bitLt``.

Both subclass ``torch.nn.Linear``, so :class:`~samora.methods.base.AdapterLayer` wraps them as it
wraps any linear, the way PEFT's LoRA does: the base output is the quantized module's own forward
(it casts the input to its compute dtype and back), the adapter's parameters stay in the adapter
dtype (float32 by default) and receive the input cast to it, and the update is cast to the base
output's dtype before it is added. What differs is the weight, which is stored packed:
:func:`dequantized_weight` gives W (d_out, d_in) for what reads it (SAMoRA's S from its singular
values, MoORE's SVD, merging). bitsandbytes is imported only when such a layer is met.
"""

from __future__ import annotations

import torch
from torch import nn

QUANTIZED_WEIGHTS = {"Params4bit": "4-bit", "Int8Params": "8-bit"}  # bitsandbytes' parameter classes


def quantization_of(layer: nn.Module) -> str | None:
    """``"4-bit"`` or ``"8-bit"`` for a bitsandbytes linear layer, else None."""
    weight = getattr(layer, "weight", None)
    return QUANTIZED_WEIGHTS.get(type(weight).__name__)


def dequantized_weight(layer: nn.Module) -> torch.Tensor:
    """The weight W (d_out, d_in) of a bitsandbytes ``Linear4bit`` / ``Linear8bitLt``, dequantised with
    bitsandbytes' own functions: ``dequantize_4bit`` (blockwise absmax, double quantisation
    included), or ``int8_vectorwise_dequant`` (W = CB * SCB / 127, one scale per output row)."""
    import bitsandbytes.functional as bnb_functional

    weight = layer.weight
    if quantization_of(layer) == "4-bit":
        if getattr(weight.quant_state, "packing_format_for_cpu", False):
            raise RuntimeError(
                "this Linear4bit ran in eval mode on a CPU with AVX512-BF16 and bitsandbytes repacked its weight "
                "into an inference-only layout, which has no backward and cannot be dequantised; call "
                "samora.methods.quantized.keep_trainable_layout(model) right after loading the model"
            )
        return bnb_functional.dequantize_4bit(weight.data, weight.quant_state)
    scales = weight.SCB if getattr(weight, "SCB", None) is not None else layer.state.SCB
    return bnb_functional.int8_vectorwise_dequant(weight.data, scales)


def keep_trainable_layout(model: nn.Module) -> nn.Module:
    """Keep every bitsandbytes 4-bit layer of ``model`` in the layout that back-propagates; return ``model``.

    On a CPU with AVX512-BF16, a ``Linear4bit`` called in eval mode without gradients repacks its
    weight, once and in place, into a layout whose matmul has no backward: training after an
    evaluation would stop the gradient at every quantized layer, and the dequantised weight could not
    be read. ``support_avx512bf16_for_cpu`` is the layer's own switch for that repacking (set by its
    ``__init__``); it is turned off here. A no-op on GPUs and on models without such layers.
    """
    for module in model.modules():
        if quantization_of(module) == "4-bit" and hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    return model
