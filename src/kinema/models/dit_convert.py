"""DiT state dicts and configs between kinema's (= the official checkpoint's) names and diffusers'.

kinema names its parameters exactly as the official HunyuanVideo checkpoint does, fused projections
included, so official weights load with no renaming. diffusers splits the fused q/k/v (and the single
blocks' q/k/v/mlp) projections and stores the final layer's (shift, scale) as (scale, shift).
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from kinema.models.dit import DiTConfig

# (kinema module, diffusers module(s)) per parameter group; "{i}" is a block index.
# Several diffusers modules are concatenated along the output dimension into one kinema module.
_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("img_in.proj", ("x_embedder.proj",)),
    ("time_in.mlp.0", ("time_text_embed.timestep_embedder.linear_1",)),
    ("time_in.mlp.2", ("time_text_embed.timestep_embedder.linear_2",)),
    ("guidance_in.mlp.0", ("time_text_embed.guidance_embedder.linear_1",)),
    ("guidance_in.mlp.2", ("time_text_embed.guidance_embedder.linear_2",)),
    ("vector_in.in_layer", ("time_text_embed.text_embedder.linear_1",)),
    ("vector_in.out_layer", ("time_text_embed.text_embedder.linear_2",)),
    ("txt_in.input_embedder", ("context_embedder.proj_in",)),
    ("txt_in.t_embedder.mlp.0", ("context_embedder.time_text_embed.timestep_embedder.linear_1",)),
    ("txt_in.t_embedder.mlp.2", ("context_embedder.time_text_embed.timestep_embedder.linear_2",)),
    ("txt_in.c_embedder.linear_1", ("context_embedder.time_text_embed.text_embedder.linear_1",)),
    ("txt_in.c_embedder.linear_2", ("context_embedder.time_text_embed.text_embedder.linear_2",)),
    ("txt_in.individual_token_refiner.blocks.{i}.norm1", ("context_embedder.token_refiner.refiner_blocks.{i}.norm1",)),
    ("txt_in.individual_token_refiner.blocks.{i}.norm2", ("context_embedder.token_refiner.refiner_blocks.{i}.norm2",)),
    (
        "txt_in.individual_token_refiner.blocks.{i}.self_attn_qkv",
        tuple(f"context_embedder.token_refiner.refiner_blocks.{{i}}.attn.to_{x}" for x in "qkv"),
    ),
    ("txt_in.individual_token_refiner.blocks.{i}.self_attn_proj", ("context_embedder.token_refiner.refiner_blocks.{i}.attn.to_out.0",)),
    ("txt_in.individual_token_refiner.blocks.{i}.mlp.fc1", ("context_embedder.token_refiner.refiner_blocks.{i}.ff.net.0.proj",)),
    ("txt_in.individual_token_refiner.blocks.{i}.mlp.fc2", ("context_embedder.token_refiner.refiner_blocks.{i}.ff.net.2",)),
    ("txt_in.individual_token_refiner.blocks.{i}.adaLN_modulation.1", ("context_embedder.token_refiner.refiner_blocks.{i}.norm_out.linear",)),
    ("double_blocks.{i}.img_mod.linear", ("transformer_blocks.{i}.norm1.linear",)),
    ("double_blocks.{i}.img_attn_qkv", tuple(f"transformer_blocks.{{i}}.attn.to_{x}" for x in "qkv")),
    ("double_blocks.{i}.img_attn_q_norm", ("transformer_blocks.{i}.attn.norm_q",)),
    ("double_blocks.{i}.img_attn_k_norm", ("transformer_blocks.{i}.attn.norm_k",)),
    ("double_blocks.{i}.img_attn_proj", ("transformer_blocks.{i}.attn.to_out.0",)),
    ("double_blocks.{i}.img_mlp.fc1", ("transformer_blocks.{i}.ff.net.0.proj",)),
    ("double_blocks.{i}.img_mlp.fc2", ("transformer_blocks.{i}.ff.net.2",)),
    ("double_blocks.{i}.txt_mod.linear", ("transformer_blocks.{i}.norm1_context.linear",)),
    ("double_blocks.{i}.txt_attn_qkv", tuple(f"transformer_blocks.{{i}}.attn.add_{x}_proj" for x in "qkv")),
    ("double_blocks.{i}.txt_attn_q_norm", ("transformer_blocks.{i}.attn.norm_added_q",)),
    ("double_blocks.{i}.txt_attn_k_norm", ("transformer_blocks.{i}.attn.norm_added_k",)),
    ("double_blocks.{i}.txt_attn_proj", ("transformer_blocks.{i}.attn.to_add_out",)),
    ("double_blocks.{i}.txt_mlp.fc1", ("transformer_blocks.{i}.ff_context.net.0.proj",)),
    ("double_blocks.{i}.txt_mlp.fc2", ("transformer_blocks.{i}.ff_context.net.2",)),
    (
        "single_blocks.{i}.linear1",
        tuple(f"single_transformer_blocks.{{i}}.attn.to_{x}" for x in "qkv") + ("single_transformer_blocks.{i}.proj_mlp",),
    ),
    ("single_blocks.{i}.linear2", ("single_transformer_blocks.{i}.proj_out",)),
    ("single_blocks.{i}.q_norm", ("single_transformer_blocks.{i}.attn.norm_q",)),
    ("single_blocks.{i}.k_norm", ("single_transformer_blocks.{i}.attn.norm_k",)),
    ("single_blocks.{i}.modulation.linear", ("single_transformer_blocks.{i}.norm.linear",)),
    ("final_layer.linear", ("proj_out",)),
    ("final_layer.adaLN_modulation.1", ("norm_out.linear",)),  # halves swapped, see _SWAPPED
]
_SWAPPED = "final_layer.adaLN_modulation.1"  # kinema (shift, scale) <-> diffusers (scale, shift)


def _expanded_rules(cfg: DiTConfig) -> list[tuple[str, tuple[str, ...]]]:
    depth = {"txt_in.": cfg.depth_refiner, "double_blocks.": cfg.depth_double, "single_blocks.": cfg.depth_single}
    rules = []
    for ours, theirs in _RULES:
        if "{i}" not in ours:
            rules.append((ours, theirs))
            continue
        n = next(d for prefix, d in depth.items() if ours.startswith(prefix))
        rules += [(ours.format(i=i), tuple(t.format(i=i) for t in theirs)) for i in range(n)]
    return rules


def _swap_halves(t: Tensor) -> Tensor:
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def dit_state_from_diffusers(sd: dict[str, Tensor], cfg: DiTConfig) -> dict[str, Tensor]:
    """diffusers `HunyuanVideoTransformer3DModel` state dict -> kinema/official names.

    Keys that match no rule are passed through unchanged, so a strict load names them as unexpected.
    """
    sd = dict(sd)
    out: dict[str, Tensor] = {}
    for ours, theirs in _expanded_rules(cfg):
        for param in ("weight", "bias"):
            keys = [f"{t}.{param}" for t in theirs]
            if not all(k in sd for k in keys):
                continue  # reported as missing by the strict loader
            t = torch.cat([sd.pop(k) for k in keys], dim=0) if len(keys) > 1 else sd.pop(keys[0])
            out[f"{ours}.{param}"] = _swap_halves(t) if ours == _SWAPPED else t
    out.update(sd)
    return out


def dit_state_to_diffusers(sd: dict[str, Tensor], cfg: DiTConfig) -> dict[str, Tensor]:
    """kinema/official names -> diffusers `HunyuanVideoTransformer3DModel` names."""
    sd = dict(sd)
    out: dict[str, Tensor] = {}
    d = cfg.hidden
    for ours, theirs in _expanded_rules(cfg):
        for param in ("weight", "bias"):
            key = f"{ours}.{param}"
            if key not in sd:
                continue
            t = sd.pop(key)
            if ours == _SWAPPED:
                t = _swap_halves(t)
            sizes = [d] * len(theirs) if len(theirs) <= 3 else [d, d, d, cfg.mlp_hidden]
            for name, part in zip(theirs, t.split(sizes, dim=0) if len(theirs) > 1 else [t]):
                out[f"{name}.{param}"] = part.contiguous()
    out.update(sd)
    return out


def dit_config_from_diffusers(config: dict) -> DiTConfig:
    """A diffusers `HunyuanVideoTransformer3DModel` config.json -> DiTConfig."""
    if config.get("image_condition_type") is not None:
        raise ValueError(
            f"image-conditioned HunyuanVideo (image_condition_type={config['image_condition_type']!r}) "
            "is not supported; kinema loads the text-to-video transformer"
        )
    if config.get("qk_norm", "rms_norm") != "rms_norm":
        raise ValueError(f"only qk_norm='rms_norm' is supported, got {config['qk_norm']!r}")
    return DiTConfig(
        in_channels=config.get("in_channels", 16),
        out_channels=config.get("out_channels") or config.get("in_channels", 16),
        heads=config.get("num_attention_heads", 24),
        head_dim=config.get("attention_head_dim", 128),
        depth_double=config.get("num_layers", 20),
        depth_single=config.get("num_single_layers", 40),
        depth_refiner=config.get("num_refiner_layers", 2),
        mlp_ratio=float(config.get("mlp_ratio", 4.0)),
        patch=(config.get("patch_size_t", 1), config.get("patch_size", 2), config.get("patch_size", 2)),
        text_dim=config.get("text_embed_dim", 4096),
        pooled_dim=config.get("pooled_projection_dim", 768),
        rope_dims=tuple(config.get("rope_axes_dim", (16, 56, 56))),
        rope_theta=float(config.get("rope_theta", 256.0)),
        guidance_embed=config.get("guidance_embeds", True),
    )


def dit_config_to_diffusers(cfg: DiTConfig) -> dict:
    """DiTConfig -> keyword arguments of diffusers' `HunyuanVideoTransformer3DModel`."""
    if cfg.patch[1] != cfg.patch[2]:
        raise ValueError(f"diffusers needs a square spatial patch, got {cfg.patch}")
    if cfg.absolute_positions:
        raise ValueError("this DiT adds absolute positions to its video tokens, which diffusers' HunyuanVideo cannot")
    return dict(
        in_channels=cfg.in_channels, out_channels=cfg.out_channels, num_attention_heads=cfg.heads,
        attention_head_dim=cfg.head_dim, num_layers=cfg.depth_double, num_single_layers=cfg.depth_single,
        num_refiner_layers=cfg.depth_refiner, mlp_ratio=cfg.mlp_ratio, patch_size=cfg.patch[1],
        patch_size_t=cfg.patch[0], qk_norm="rms_norm", guidance_embeds=cfg.guidance_embed,
        text_embed_dim=cfg.text_dim, pooled_projection_dim=cfg.pooled_dim, rope_theta=cfg.rope_theta,
        rope_axes_dim=tuple(cfg.rope_dims),
    )


def _count_blocks(sd: dict[str, Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.")
    indices = {int(m.group(1)) for k in sd if (m := pattern.match(k))}
    return max(indices) + 1 if indices else 0


def dit_config_from_official(sd: dict[str, Tensor]) -> DiTConfig:
    """Infer the architecture of an official checkpoint (which has no config file) from its tensor shapes.

    Every field is read off a shape except the RoPE split, which is the reference's (16, 56, 56)
    for 128-wide heads; for other widths the caller gives the whole config (`load_dit(config=...)`).
    """
    try:
        hidden, in_ch, pt, ph, pw = sd["img_in.proj.weight"].shape
        head_dim = sd["double_blocks.0.img_attn_q_norm.weight"].shape[0]
        mlp_hidden = sd["double_blocks.0.img_mlp.fc1.weight"].shape[0]
        text_dim = sd["txt_in.input_embedder.weight"].shape[1]
        pooled_dim = sd["vector_in.in_layer.weight"].shape[1]
        out_ch = sd["final_layer.linear.weight"].shape[0] // (pt * ph * pw)
    except KeyError as e:
        raise ValueError(f"not an official HunyuanVideo transformer checkpoint: no tensor {e.args[0]!r}") from None
    if head_dim != 128:
        raise ValueError(
            f"cannot infer the RoPE split for {head_dim}-wide heads from an official checkpoint; give the "
            "architecture: `kinema convert SRC DST --config FILE` (a JSON or YAML of DiTConfig fields, "
            "or a size name) or `load_dit(path, config=DiTConfig(...))`"
        )
    return DiTConfig(
        in_channels=in_ch, out_channels=out_ch, heads=hidden // head_dim, head_dim=head_dim,
        depth_double=_count_blocks(sd, "double_blocks."), depth_single=_count_blocks(sd, "single_blocks."),
        depth_refiner=_count_blocks(sd, "txt_in.individual_token_refiner.blocks."),
        mlp_ratio=mlp_hidden / hidden, patch=(pt, ph, pw), text_dim=text_dim, pooled_dim=pooled_dim,
        guidance_embed="guidance_in.mlp.0.weight" in sd,
    )
