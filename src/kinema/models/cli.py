"""`kinema convert`: any supported checkpoint -> kinema's format."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kinema.errors import UsageError

if TYPE_CHECKING:
    from kinema.models.dit import DiTConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert an official, diffusers or kinema checkpoint to kinema's format",
        description="Read a DiT and/or VAE checkpoint in any supported format (official HunyuanVideo, "
        "diffusers, kinema) and write kinema's format (config.json + model.safetensors). A folder holding "
        "both models (a diffusers pipeline, a kinema pipeline) is written as DST/dit and DST/vae.",
    )
    p.add_argument("src", help="checkpoint file or folder")
    p.add_argument("dst", help="output folder")
    p.add_argument("--model", choices=["auto", "dit", "vae"], default="auto", help="which model to convert")
    p.add_argument(
        "--config", metavar="FILE|SIZE",
        help="the DiT's architecture, used instead of what the checkpoint says or implies (official checkpoints "
        "with heads not 128 wide need it): a JSON or YAML file of DiTConfig fields, or a size name "
        "(toy, small, hunyuan-13b)",
    )
    p.set_defaults(run=run_convert)


def read_dit_config(value: str) -> DiTConfig:
    """A `--config` value: a named DiT size, or a JSON/YAML file of `DiTConfig` fields."""
    from pathlib import Path

    from kinema.config import load_yaml
    from kinema.models.dit import DiTConfig
    from kinema.models.sizes import DIT_SIZES, dit_config

    if value in DIT_SIZES:
        return dit_config(value)
    path = Path(value)
    if not path.is_file():
        raise UsageError(f"--config {value} is neither a DiT size ({', '.join(DIT_SIZES)}) nor a file")
    return load_yaml(DiTConfig, path, "DiT config")  # YAML, or JSON by its suffix


def run_convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kinema.models.checkpoints import CheckpointError, convert, locate

    config = None if args.config is None else read_dit_config(args.config)
    if config is not None and args.model == "vae":
        raise UsageError("--config describes the DiT's architecture; it does not apply to --model vae")
    kinds = [args.model] if args.model != "auto" else []
    if not kinds:
        for kind in ("dit", "vae"):
            try:
                locate(args.src, kind)
                kinds.append(kind)
            except CheckpointError:
                pass
        if not kinds:
            raise CheckpointError(f"{args.src} holds neither a HunyuanVideo DiT nor a VAE checkpoint kinema can read")
        if config is not None and "dit" not in kinds:
            raise UsageError(f"--config describes a DiT, and {args.src} holds only a VAE")
    for kind in kinds:
        dst = Path(args.dst) / kind if len(kinds) > 1 else Path(args.dst)
        print(f"{kind}: {args.src} -> {convert(args.src, dst, kind, config if kind == 'dit' else None)}")
    return 0
