"""Write a randomly initialised Llama whose layers have Llama-3-8B's shapes, for `samora bench`.

Every layer is shaped as in Llama-3-8B (hidden 4096, MLP 14336, 32 query heads, 8 key-value heads,
so q/o are 4096 x 4096 and k/v 1024 x 4096), but there are only ``--layers`` of them and a
``--vocab`` of 32000, so the folder is small (about 1.4 GB in bf16 at 2 layers) and the benchmark
measures the adapted layers at 8B shapes. Nothing is downloaded.

    python benchmarks/eight_b_like.py OUT_DIR [--layers 2] [--dtype bfloat16]
    samora bench --model OUT_DIR --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="folder to write (config.json + model.safetensors)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--intermediate", type=int, default=14336)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=2048,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    model = LlamaForCausalLM(config).to(getattr(torch, args.dtype))
    model.save_pretrained(args.output)
    print(f"wrote {args.output}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f} M parameters, {args.dtype}")


if __name__ == "__main__":
    main()
