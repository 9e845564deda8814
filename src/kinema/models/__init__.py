"""Causal 3D VAE, diffusion transformer and checkpoint formats.

    from kinema.models import build_dit, build_vae, load_dit, load_vae
    dit = build_dit("toy")                      # named sizes: toy, small, hunyuan-13b
    vae = load_vae("path/to/any/checkpoint")    # official, diffusers or kinema format

Names are imported on first use (PEP 562), so `kinema --help` does not load torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CheckpointError": "kinema.models.checkpoints",
    "load_dit": "kinema.models.checkpoints",
    "load_vae": "kinema.models.checkpoints",
    "save_model": "kinema.models.checkpoints",
    "DiT": "kinema.models.dit",
    "DiTConfig": "kinema.models.dit",
    "DIT_SIZES": "kinema.models.sizes",
    "build_dit": "kinema.models.sizes",
    "VAE_SIZES": "kinema.models.vae",
    "CausalVAE": "kinema.models.vae",
    "VAEConfig": "kinema.models.vae",
    "build_vae": "kinema.models.vae",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kinema.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
