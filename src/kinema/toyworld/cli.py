"""`kinema toyworld render N OUT`, `kinema eval adherence`, `kinema eval sweep` and `kinema eval sensitivity`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kinema.toyworld.adherence import Generator
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
    _world_options(r)
    r.add_argument("--split", choices=("train", "heldout", "all"), default="train",
                   help="train: no held-out combination (default); heldout: only held-out ones; all: anything")
    r.add_argument("--multi-fraction", type=float, default=0.2, help="share of multi-object scenes (default 0.2)")
    r.add_argument("--stage", type=int, default=0, help="value of the manifest's stage column (default 0)")
    r.add_argument("--append", action="store_true",
                   help="add to OUT's existing manifest instead of replacing it (e.g. another size or frame count)")
    r.set_defaults(run=run_render)

    ev = sub.add_parser("eval", help="evaluate a model", description="Evaluate a model or a folder of videos.")
    ev_sub = ev.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    a = ev_sub.add_parser(
        "adherence", help="per-attribute prompt adherence (color, shape, motion, camera) on toy-world prompts",
        description="Judge videos against their toy-world prompts and report per-attribute accuracy; writes "
        "OUT/adherence.json and a contact sheet OUT/adherence.png. Videos come from a dataset folder "
        "(--videos), a pipeline checkpoint (--checkpoint), or the renderer itself (--ground-truth).",
    )
    source = a.add_mutually_exclusive_group(required=True)
    source.add_argument("--videos", metavar="DIR",
                        help="dataset folder with manifest.parquet (truth or prompt columns)")
    source.add_argument("--checkpoint", metavar="DIR", help="kinema pipeline folder to generate with")
    source.add_argument("--ground-truth", action="store_true", help="render each prompt exactly (judge self-check)")
    a.add_argument("-n", "--num", type=int, default=48, help="prompts to generate (default 48; not with --videos)")
    a.add_argument("--split", choices=("train", "heldout", "all"), default="heldout",
                   help="which combinations the prompts use (default heldout)")
    _world_options(a)
    a.add_argument("--steps", type=int, default=None, help="sampling steps (--checkpoint; default: the checkpoint's)")
    a.add_argument("--shift", type=float, default=None, help="schedule time shift (--checkpoint)")
    a.add_argument("--cfg-scale", type=float, default=None, help="classifier-free guidance scale (--checkpoint)")
    a.add_argument("--guidance", type=float, default=None, help="embedded guidance (--checkpoint, distilled models)")
    a.add_argument("--device", default="cpu", help="torch device for --checkpoint (default cpu)")
    a.add_argument("--out", default="outputs/adherence", help="report folder (default outputs/adherence)")
    a.set_defaults(run=run_adherence)

    w = ev_sub.add_parser(
        "sweep", help="adherence and latency over sampling steps × time shift (few-step generation)",
        description="Generate the same toy-world prompts with every (steps, shift) pair and report per-attribute "
        "adherence and the median generation latency; writes OUT/sweep.json and OUT/sweep.md.",
    )
    w.add_argument("--checkpoint", metavar="DIR", default=None, help="pipeline folder (default: the shipped toy model)")
    w.add_argument("--steps", default="50,16,8,4", help="comma-separated step counts (default 50,16,8,4)")
    w.add_argument("--shift", default="3,7,17", help="comma-separated time shifts (default 3,7,17)")
    w.add_argument("-n", "--num", type=int, default=24, help="prompts per setting (default 24)")
    w.add_argument("--split", choices=("train", "heldout", "all"), default="heldout",
                   help="which combinations the prompts use (default heldout)")
    w.add_argument("--cfg-scale", type=float, default=None, help="classifier-free guidance scale")
    w.add_argument("--guidance", type=float, default=None, help="embedded guidance (distilled models)")
    w.add_argument("--device", default="cpu", help="torch device (default cpu)")
    w.add_argument("--out", default="outputs/sweep", help="report folder (default outputs/sweep)")
    w.add_argument("--seed", type=int, default=0, help="seed of the prompt list")
    w.set_defaults(run=run_sweep)

    s = ev_sub.add_parser(
        "sensitivity", help="how much the DiT's loss depends on each attribute's words (color, shape, motion, camera)",
        description="Render toy-world clips, and measure the DiT's flow-matching loss on them with the true prompt, "
        "the empty prompt, and the prompt with one attribute swapped (same noise, same t). Reports, per t, the share "
        "of the whole prompt's worth each attribute carries (0% = the model ignores those words); writes "
        "OUT/sensitivity.json.",
    )
    s.add_argument("--checkpoint", metavar="DIR", default=None, help="pipeline folder (default: the shipped toy model)")
    s.add_argument("-n", "--num", type=int, default=48, help="clips (default 48)")
    s.add_argument("--times", default="0.5,0.8,0.95", help="comma-separated flow times in (0, 1) (default 0.5,0.8,0.95)")
    s.add_argument("--split", choices=("train", "heldout", "all"), default="train",
                   help="which combinations the clips use (default train: what the model was fitted to)")
    _world_options(s)
    s.add_argument("--device", default="cpu", help="torch device (default cpu)")
    s.add_argument("--out", default="outputs/sensitivity", help="report folder (default outputs/sensitivity)")
    s.set_defaults(run=run_sensitivity)


def _world_options(p: argparse.ArgumentParser) -> None:
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
    from kinema.cli import UsageError

    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 16:
        raise UsageError(f"--size must be N or WxH with sides of at least 16 pixels, got {text!r}")
    return (values[0], values[0]) if len(values) == 1 else (values[1], values[0])


def _world(args: argparse.Namespace, multi_fraction: float = 0.2) -> WorldConfig:
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

    from kinema.cli import UsageError
    from kinema.toyworld.dataset import render_dataset

    if args.n < 1:
        raise UsageError(f"N must be at least 1, got {args.n}")
    config = _world(args, args.multi_fraction)
    start = time.perf_counter()
    manifest = render_dataset(
        args.out, args.n, config, seed=args.seed, split=args.split, stage=args.stage, append=args.append
    )
    print(f"wrote {args.n} clips and {manifest} in {time.perf_counter() - start:.1f} s")
    return 0


def _checkpoint_generator(
    checkpoint: str,
    device: str,
    config: WorldConfig,
    steps: int | None,
    shift: float | None,
    cfg_scale: float | None,
    guidance: float | None,
) -> Generator:
    """`generate(prompt, seed)` with a kinema pipeline at the world's frame count and size; sampling
    options left None take the checkpoint's defaults."""
    import numpy as np

    from kinema.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(checkpoint, device=device)

    def generate(prompt: str, seed: int) -> np.ndarray:
        video = pipe(
            prompt, seed=seed, steps=steps, shift=shift, cfg_scale=cfg_scale, guidance=guidance,
            frames=config.frames, height=config.height, width=config.width,
        )
        return video.frames

    return generate


def run_adherence(args: argparse.Namespace) -> int:
    from kinema.cli import UsageError
    from kinema.toyworld.adherence import dataset_cases, eval_cases, evaluate, ground_truth_generator, write_report

    if args.num < 1:
        raise UsageError(f"--num must be at least 1, got {args.num}")
    config = _world(args)
    if args.videos:
        cases, generate = dataset_cases(args.videos)
    else:
        cases = eval_cases(args.num, config, seed=args.seed, split=args.split)
        if args.ground_truth:
            generate = ground_truth_generator(config)
        else:
            generate = _checkpoint_generator(
                args.checkpoint, args.device, config, args.steps, args.shift, args.cfg_scale, args.guidance
            )
    report = evaluate(generate, cases)
    summary, sheet = write_report(report, args.out)
    print(report.table())
    print(f"wrote {summary} and contact sheet {sheet}")
    return 0


def _numbers(text: str, kind: type, name: str) -> list:
    from kinema.cli import UsageError

    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{name} must be comma-separated numbers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise UsageError(f"{name} must list positive numbers, got {text!r}")
    return values


def run_sensitivity(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from kinema.cli import UsageError
    from kinema.pipeline import Pipeline
    from kinema.toyworld.scene import sample_scenes
    from kinema.toyworld.sensitivity import text_sensitivity

    times = _numbers(args.times, float, "--times")
    if max(times) >= 1:
        raise UsageError(f"--times must lie in (0, 1), got {args.times!r}")
    if args.num < 1:
        raise UsageError(f"--num must be at least 1, got {args.num}")
    pipe = Pipeline.from_pretrained(args.checkpoint, device=args.device)
    scenes = sample_scenes(args.num, _world(args), args.seed, args.split)
    report = text_sensitivity(pipe, scenes, times, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sensitivity.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    print(report.table())
    print(f"wrote {out / 'sensitivity.json'}")
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from kinema.cli import UsageError
    from kinema.pipeline import Pipeline
    from kinema.toyworld.adherence import eval_cases, sweep_point
    from kinema.toyworld.judge import ATTRIBUTES
    from kinema.toyworld.scene import WorldConfig

    steps_list, shifts = _numbers(args.steps, int, "--steps"), _numbers(args.shift, float, "--shift")
    if args.num < 1:
        raise UsageError(f"--num must be at least 1, got {args.num}")
    pipe = Pipeline.from_pretrained(args.checkpoint, device=args.device)
    d = pipe.defaults
    cases = eval_cases(args.num, WorldConfig(height=d.height, width=d.width, frames=d.frames, fps=d.fps),
                       seed=args.seed, split=args.split)
    rows = []
    for steps in steps_list:
        for shift in shifts:
            rows.append(sweep_point(pipe, cases, steps, shift, args.cfg_scale, args.guidance))
            print(f"steps {steps:>3} shift {shift:>5g}: " + "  ".join(f"{a} {100 * rows[-1][a]:.0f}%" for a in ATTRIBUTES)
                  + f"  {rows[-1]['latency_s']:.2f} s/video", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps({"split": args.split, "videos": len(cases), "rows": rows}, indent=2) + "\n")
    lines = ["| steps | shift | " + " | ".join(ATTRIBUTES) + " | s / video |", "|---" * (len(ATTRIBUTES) + 3) + "|"]
    for r in rows:
        cells = [f"{100 * r[a]:.0f}%" for a in ATTRIBUTES]
        lines.append(f"| {r['steps']} | {r['shift']:g} | " + " | ".join(cells) + f" | {r['latency_s']:.2f} |")
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out / 'sweep.json'} and {out / 'sweep.md'}")
    return 0
