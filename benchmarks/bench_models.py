"""DiT speed, side by side with diffusers' HunyuanVideoTransformer3DModel on the same weights and inputs.

    .venv/bin/python benchmarks/bench_models.py [--device cuda] [--dtype bf16]

Cases: forward and forward+backward, with text padded to the reference's 256 positions (the usual
case: prompts are short) and with unpadded text. Reports medians and the diffusers/kinema ratio and
appends them to benchmarks/RESULTS.md. (The VAE is benchmarked by benchmarks/bench_vae.py.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results, median_time  # noqa: E402

from kinema.models.dit import DiT, DiTConfig  # noqa: E402
from kinema.models.dit_convert import dit_config_to_diffusers, dit_state_to_diffusers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", choices=["cpu", "gpu"], default=None,
                        help="problem size (default: cpu on CPU, gpu on CUDA)")
    args = parser.parse_args()
    from diffusers import HunyuanVideoTransformer3DModel

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    gpu = (args.size or ("gpu" if args.device.startswith("cuda") else "cpu")) == "gpu"
    if gpu:  # 8 × 128-wide heads, 2 + 4 blocks; 33×(480/16)×(848/16)/4 ≈ 13k video tokens
        cfg = DiTConfig(heads=8, depth_double=2, depth_single=4)
        latent_shape, real_text = (1, 16, 9, 30, 52), 24
    else:  # toy-like CPU size: 320 video tokens
        cfg = DiTConfig(heads=4, head_dim=64, depth_double=2, depth_single=2, text_dim=384, pooled_dim=384,
                        rope_dims=(16, 24, 24), guidance_embed=True)
        latent_shape, real_text = (2, 16, 5, 16, 16), 20
    torch.manual_seed(0)
    ours = DiT(cfg).to(args.device, dtype)
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.randn_like(p) * 0.02)
    ref = HunyuanVideoTransformer3DModel(**dit_config_to_diffusers(cfg)).to(args.device, dtype)
    ref.load_state_dict(dit_state_to_diffusers(ours.state_dict(), cfg))

    b = latent_shape[0]
    x = torch.randn(latent_shape, device=args.device, dtype=dtype)
    t = torch.full((b,), 500.0, device=args.device)
    pooled = torch.randn(b, cfg.pooled_dim, device=args.device, dtype=dtype)
    guidance = torch.full((b,), 6000.0, device=args.device)
    table = ["| case | kinema (ms) | diffusers (ms) | diffusers / kinema |", "|---|---|---|---|"]
    for text_len, label in [(256, f"text padded to 256 ({real_text} real)"), (real_text, "text unpadded")]:
        text = torch.randn(b, text_len, cfg.text_dim, device=args.device, dtype=dtype)
        mask = torch.zeros(b, text_len, dtype=torch.bool, device=args.device)
        mask[:, :real_text] = True
        # Check once that both compute the same thing before timing.
        with torch.no_grad():
            a = ours(x, t, text, mask, pooled, guidance)
            r = ref(x, t, text, mask, pooled, guidance, return_dict=False)[0]
        err = ((a - r).abs().max() / r.abs().max()).item()
        for mode in ("forward", "forward+backward"):
            def run(model, diffusers_call):
                def go():
                    if mode == "forward":
                        with torch.no_grad():
                            diffusers_call(model)
                    else:
                        model.zero_grad(set_to_none=True)
                        diffusers_call(model).float().square().mean().backward()
                return go

            k = median_time(run(ours, lambda m: m(x, t, text, mask, pooled, guidance)), args.repeats)
            d = median_time(run(ref, lambda m: m(x, t, text, mask, pooled, guidance, return_dict=False)[0]), args.repeats)
            table.append(f"| {mode}, {label} | {k * 1e3:.1f} | {d * 1e3:.1f} | {d / k:.2f}× |")
        print(f"{label}: relative max diff kinema vs diffusers {err:.2e}")
    tokens = latent_shape[2] * latent_shape[3] * latent_shape[4] // 4
    append_results(
        f"DiT vs diffusers ({args.device}, {args.dtype})",
        " ".join(["python", *sys.argv]),
        table,
        f"Model: hidden {cfg.hidden} ({cfg.heads}×{cfg.head_dim}), {cfg.depth_double} dual + {cfg.depth_single} single "
        f"blocks; batch {b}, {tokens} video tokens; medians of {args.repeats} runs.",
    )


if __name__ == "__main__":
    main()
