"""`kinema toyworld render N OUT`, and the world options (`--size`, `--frames`, the vocabulary) that
`kinema eval` (kinema.toyworld.eval_cli) shares."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kinema.errors import UsageError

if TYPE_CHECKING:
    from kinema.toyworld.scene import WorldConfig


def register(sub: argparse._SubParsersAction) -> None:
    toy = sub.add_parser(
        "toyworld", help="render the synthetic toy world (moving shapes with ground truth)",
        description="The toy world: procedural videos of colored shapes with known ground truth and captions.",
    )
    toy_sub = toy.add_subparsers(dest="toyworld_command", required=True, metavar="ACTION")
    r = toy_sub.add_parser(
        "render", help="render N clips into a dataset folder (mp4 + manifest.parquet)",
        description="Render N toy-world clips as H.264 mp4 files (PNG for 1-frame images) into OUT/videos and "
        "write OUT/manifest.parquet with captions and ground truth. Deterministic for a seed.",
    )
    r.add_argument("n", type=int, metavar="N", help="number of clips")
    r.add_argument("out", metavar="OUT", help="dataset folder (created)")
    add_world_options(r)
    r.add_argument("--split", choices=("train", "heldout", "all"), default="train",
                   help="train: no held-out combination (default); heldout: only held-out ones; all: anything")
    r.add_argument("--multi-fraction", type=float, default=0.2, help="share of multi-object scenes (default 0.2)")
    r.add_argument("--stage", type=int, default=0, help="value of the manifest's stage column (default 0)")
    r.add_argument("--append", action="store_true",
                   help="add to OUT's existing manifest instead of replacing it (e.g. another size or frame count)")
    r.set_defaults(run=run_render)


def add_world_options(p: argparse.ArgumentParser) -> None:
    """The options that describe a toy world: frame size and count, frame rate, seed, vocabulary."""
    p.add_argument("--size", default="64", help="frame size: N (square) or WxH, e.g. 96x64 (default 64)")
    p.add_argument("--frames", type=int, default=17, help="frames per clip, 4k+1 (default 17; 1 = images)")
    p.add_argument("--fps", type=float, default=8.0, help="frame rate (default 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--colors", help="comma-separated subset of the colors (default: all)")
    p.add_argument("--shapes", help="comma-separated subset of the shapes (default: all)")
    p.add_argument("--motions", help="comma-separated subset of the object motions (default: all)")
    p.add_argument("--cameras", help='comma-separated subset of the camera motions, e.g. "static shot,pan left"')


def parse_size(text: str) -> tuple[int, int]:
    """'64' -> (64, 64); '96x64' -> (height 64, width 96). Returns (height, width)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 16:
        raise UsageError(f"--size must be N or WxH with sides of at least 16 pixels, got {text!r}")
    return (values[0], values[0]) if len(values) == 1 else (values[1], values[0])


def world_config(args: argparse.Namespace, multi_fraction: float = 0.2) -> WorldConfig:
    """The world `add_world_options`' flags describe."""
    from kinema.toyworld.scene import WorldConfig

    height, width = parse_size(args.size)
    vocabulary = {
        name: tuple(v.strip() for v in getattr(args, name).split(",") if v.strip())
        for name in ("colors", "shapes", "motions", "cameras")
        if getattr(args, name)
    }
    return WorldConfig(
        height=height, width=width, frames=args.frames, fps=args.fps, multi_object_fraction=multi_fraction,
        **vocabulary,
    )


def run_render(args: argparse.Namespace) -> int:
    import time

    from kinema.toyworld.dataset import render_dataset

    if args.n < 1:
        raise UsageError(f"N must be at least 1, got {args.n}")
    config = world_config(args, args.multi_fraction)
    start = time.perf_counter()
    manifest = render_dataset(
        args.out, args.n, config, seed=args.seed, split=args.split, stage=args.stage, append=args.append
    )
    print(f"wrote {args.n} clips and {manifest} in {time.perf_counter() - start:.1f} s")
    return 0
