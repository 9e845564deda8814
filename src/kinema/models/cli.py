"""`kinema convert`: any supported checkpoint -> kinema's format."""

from __future__ import annotations

import argparse


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
    p.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kinema.models.checkpoints import CheckpointError, convert, locate

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
    for kind in kinds:
        dst = Path(args.dst) / kind if len(kinds) > 1 else Path(args.dst)
        print(f"{kind}: {args.src} -> {convert(args.src, dst, kind)}")
    return 0
