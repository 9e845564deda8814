"""Named model sizes: one dict of factories per model, feeding `build_dit` and the CLI choices."""

from __future__ import annotations

from typing import Callable

import torch

from kinema.models.dit import DiT, DiTConfig


def _toy() -> DiTConfig:
    # Sized for 2 CPU cores: 64×64×17 video -> 16×16×5 latents (the toy VAE, 4× spatial) -> 1×2×2
    # patches -> 8×8×5 = 320 tokens of 8×8 pixels. 1×4×4 patches (80 tokens of 16×16 pixels) cost a
    # third as much per sample but plateau at twice the loss: one token then holds a whole object,
    # drawn by the output layer alone (benchmarks/RESULTS.md, "Toy DiT: patch size").
    # Absolute positions (a departure from the reference) do not change the loss but, with 2×2 patches,
    # raise right colors from 50% to 71% of images after 500 steps (benchmarks/bench_toy_dit.py).
    # Text: all-MiniLM-L6-v2 token states (384) and its pooled sentence embedding (384).
    return DiTConfig(
        in_channels=16, out_channels=16, heads=4, head_dim=32, depth_double=2, depth_single=4,
        depth_refiner=1, patch=(1, 2, 2), text_dim=384, pooled_dim=384, rope_dims=(8, 12, 12),
        guidance_embed=False, absolute_positions=True,
    )


def _small() -> DiTConfig:
    # The reference's shapes at ~1/40 of the compute: for single-GPU experiments with the real text encoders.
    return DiTConfig(heads=8, head_dim=128, depth_double=4, depth_single=8)


def _hunyuan_13b() -> DiTConfig:
    # HYVideo-T/2-cfgdistill: 12,821,012,544 parameters.
    return DiTConfig()


DIT_SIZES: dict[str, Callable[[], DiTConfig]] = {
    "toy": _toy,
    "small": _small,
    "hunyuan-13b": _hunyuan_13b,
}


def dit_config(name: str) -> DiTConfig:
    """The config of a named DiT size."""
    if name not in DIT_SIZES:
        raise ValueError(f"unknown DiT size {name!r}; choose one of {sorted(DIT_SIZES)}")
    return DIT_SIZES[name]()


def build_dit(name_or_config: str | DiTConfig, dtype: torch.dtype | None = None) -> DiT:
    """Build a freshly initialised DiT from a size name or a config.

    Works under `with torch.device("meta"):` for parameter counting without memory.
    """
    cfg = dit_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    model = DiT(cfg)
    return model if dtype is None else model.to(dtype)
