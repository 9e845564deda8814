"""VAE configs and state dicts between kinema, the official HunyuanVideo files and diffusers.

The three share parameter names: kinema names its modules as the official `AutoencoderKLCausal3D`
does, and diffusers' `AutoencoderKLHunyuanVideo` kept them (its conversion script renames nothing).
What differs is packaging: official `pytorch_model.pt` files may prefix every key with `vae.`
(training checkpoints also hold loss/discriminator weights beside them), and the three configs
spell the same architecture differently.
"""

from __future__ import annotations

from torch import Tensor

from kinema.models.vae import VAEConfig

_DIFFUSERS_DOWN, _DIFFUSERS_UP = "HunyuanVideoDownBlock3D", "HunyuanVideoUpBlock3D"
_OFFICIAL_DOWN, _OFFICIAL_UP = "DownEncoderBlockCausal3D", "UpDecoderBlockCausal3D"


def _check_blocks(cfg: dict, key: str, expected: str, n: int, source: str) -> None:
    kinds = cfg.get(key)
    if kinds is not None and (len(kinds) != n or any(k != expected for k in kinds)):
        raise ValueError(f"{source} VAE config has {key}={kinds}; kinema supports {n} × {expected!r} only")


def _check_activation(cfg: dict, source: str) -> None:
    if cfg.get("act_fn", "silu") not in ("silu", "swish"):
        raise ValueError(f"{source} VAE config uses act_fn={cfg['act_fn']!r}; kinema supports 'silu' only")


def vae_config_from_diffusers(cfg: dict) -> VAEConfig:
    """Read a diffusers `AutoencoderKLHunyuanVideo` config.json (missing keys take diffusers' defaults)."""
    _check_activation(cfg, "diffusers")
    default = VAEConfig()
    widths = tuple(cfg.get("block_out_channels", default.block_out_channels))
    _check_blocks(cfg, "down_block_types", _DIFFUSERS_DOWN, len(widths), "diffusers")
    _check_blocks(cfg, "up_block_types", _DIFFUSERS_UP, len(widths), "diffusers")
    return VAEConfig(
        in_channels=cfg.get("in_channels", default.in_channels),
        out_channels=cfg.get("out_channels", default.out_channels),
        latent_channels=cfg.get("latent_channels", default.latent_channels),
        block_out_channels=widths,
        layers_per_block=cfg.get("layers_per_block", default.layers_per_block),
        norm_num_groups=cfg.get("norm_num_groups", default.norm_num_groups),
        spatial_compression_ratio=cfg.get("spatial_compression_ratio", default.spatial_compression_ratio),
        temporal_compression_ratio=cfg.get("temporal_compression_ratio", default.temporal_compression_ratio),
        mid_block_add_attention=cfg.get("mid_block_add_attention", default.mid_block_add_attention),
        scaling_factor=cfg.get("scaling_factor", default.scaling_factor),
    )


def vae_config_to_diffusers(cfg: VAEConfig) -> dict:
    """The `AutoencoderKLHunyuanVideo(**kwargs)` arguments of the same architecture."""
    n = len(cfg.block_out_channels)
    return {
        "in_channels": cfg.in_channels,
        "out_channels": cfg.out_channels,
        "latent_channels": cfg.latent_channels,
        "down_block_types": (_DIFFUSERS_DOWN,) * n,
        "up_block_types": (_DIFFUSERS_UP,) * n,
        "block_out_channels": cfg.block_out_channels,
        "layers_per_block": cfg.layers_per_block,
        "act_fn": "silu",
        "norm_num_groups": cfg.norm_num_groups,
        "scaling_factor": cfg.scaling_factor,
        "spatial_compression_ratio": cfg.spatial_compression_ratio,
        "temporal_compression_ratio": cfg.temporal_compression_ratio,
        "mid_block_add_attention": cfg.mid_block_add_attention,
    }


def vae_config_from_official(cfg: dict) -> VAEConfig:
    """Read the official `AutoencoderKLCausal3D` config.json that sits beside `pytorch_model.pt`.

    The official class's own defaults (one 64-wide block, 4 latent channels) describe no released
    model, so the width, depth and latent keys must be present; the rest default as the official
    class does. Its `sample_size` / `sample_tsize` (256, 64) are tile sizes for tiled inference, not
    architecture; kinema's `TilingConfig` defaults carry the same values.
    """
    missing = [k for k in ("block_out_channels", "layers_per_block", "latent_channels") if k not in cfg]
    if missing:
        raise ValueError(f"official VAE config lacks {missing}; is it the config.json beside pytorch_model.pt?")
    _check_activation(cfg, "official")
    widths = tuple(cfg["block_out_channels"])
    _check_blocks(cfg, "down_block_types", _OFFICIAL_DOWN, len(widths), "official")
    _check_blocks(cfg, "up_block_types", _OFFICIAL_UP, len(widths), "official")
    return VAEConfig(
        in_channels=cfg.get("in_channels", 3),
        out_channels=cfg.get("out_channels", 3),
        latent_channels=cfg["latent_channels"],
        block_out_channels=widths,
        layers_per_block=cfg["layers_per_block"],
        norm_num_groups=cfg.get("norm_num_groups", 32),
        spatial_compression_ratio=cfg.get("spatial_compression_ratio", 8),
        temporal_compression_ratio=cfg.get("time_compression_ratio", 4),
        mid_block_add_attention=cfg.get("mid_block_add_attention", True),
        scaling_factor=cfg.get("scaling_factor", 0.18215),  # the official class's default
    )


def vae_state_from_diffusers(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """A diffusers VAE state dict in kinema's names: the same names, so the same tensors (a new dict)."""
    return dict(sd)


def vae_state_to_diffusers(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """A kinema VAE state dict in diffusers' names (the same names; a new dict)."""
    return dict(sd)


def vae_state_from_official(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """An official `pytorch_model.pt` state dict (already unwrapped from `state_dict`/`module`) in kinema's names.

    When keys carry the `vae.` prefix, only those are the VAE (the official loader keeps just them);
    otherwise the names are used as they are.
    """
    if any(k.startswith("vae.") for k in sd):
        return {k.removeprefix("vae."): v for k, v in sd.items() if k.startswith("vae.")}
    return dict(sd)
