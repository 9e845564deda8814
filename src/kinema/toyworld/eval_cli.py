"""`kinema eval adherence`, `kinema eval sweep` and `kinema eval sensitivity`: a model judged on toy-world prompts.

The handlers parse flags into typed values (a `SamplingOptions`, a `WorldConfig`, a checked device),
call `kinema.toyworld.adherence` / `sensitivity`, and hand the result to `kinema.toyworld.report`,
which writes it. A bad value is a ValueError or UsageError: `kinema` prints it as one sentence.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kinema.caption.wording import WORDING_SETS
from kinema.toyworld.cli import add_world_options, world_config

if TYPE_CHECKING:
    import torch

    from kinema.options import SamplingOptions
    from kinema.toyworld.adherence import Generator

SPLITS = ("train", "heldout", "all")


def register(sub: argparse._SubParsersAction) -> None:
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
    a.add_argument("--split", choices=SPLITS, default="heldout",
                   help="which combinations the prompts use (default heldout)")
    a.add_argument("--wording", choices=WORDING_SETS, default="template",
                   help="how the prompts are worded: the training template (default), random train wordings, or "
                   "held-out wordings no training prompt used (not with --videos)")
    add_world_options(a)
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
    w.add_argument("--split", choices=SPLITS, default="heldout",
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
    s.add_argument("--split", choices=SPLITS, default="train",
                   help="which combinations the clips use (default train: what the model was fitted to)")
    s.add_argument("--wording", choices=WORDING_SETS, default="template",
                   help="how the prompts are worded (default template; train or held-out: random wordings of that set)")
    add_world_options(s)
    s.add_argument("--device", default="cpu", help="torch device (default cpu)")
    s.add_argument("--out", default="outputs/sensitivity", help="report folder (default outputs/sensitivity)")
    s.set_defaults(run=run_sensitivity)


def _checkpoint_generator(checkpoint: str, device: torch.device, options: SamplingOptions) -> Generator:
    """`generate(prompt, seed)` with a kinema pipeline; each call's seed replaces `options.seed`."""
    import numpy as np

    from kinema.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(checkpoint, device=device)

    def generate(prompt: str, seed: int) -> np.ndarray:
        return pipe(prompt, options, seed=seed).frames

    return generate


def run_adherence(args: argparse.Namespace) -> int:
    from kinema.distributed import check_device
    from kinema.errors import UsageError
    from kinema.options import SamplingOptions
    from kinema.toyworld.adherence import dataset_cases, eval_cases, evaluate, ground_truth_generator
    from kinema.toyworld.report import write_adherence_report

    if args.num < 1:
        raise UsageError(f"--num must be at least 1, got {args.num}")
    config = world_config(args)
    if args.videos:
        if args.wording != "template":
            raise UsageError("--wording applies to generated prompts (--checkpoint, --ground-truth); --videos "
                             "judges the prompts its manifest holds")
        cases, generate = dataset_cases(args.videos)
    else:
        cases = eval_cases(args.num, config, seed=args.seed, split=args.split, wording=args.wording)
        if args.ground_truth:
            generate = ground_truth_generator(config, cases)
        else:
            options = SamplingOptions(steps=args.steps, shift=args.shift, cfg_scale=args.cfg_scale,
                                      guidance=args.guidance, frames=config.frames, height=config.height,
                                      width=config.width)
            generate = _checkpoint_generator(args.checkpoint, check_device(args.device), options)
    report = evaluate(generate, cases)
    summary, sheet = write_adherence_report(report, args.out)
    print(report.table())
    print(f"wrote {summary} and contact sheet {sheet}")
    return 0


def _numbers(text: str, kind: type, name: str) -> list:
    from kinema.errors import UsageError

    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{name} must be comma-separated numbers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise UsageError(f"{name} must list positive numbers, got {text!r}")
    return values


def run_sweep(args: argparse.Namespace) -> int:
    import dataclasses

    from kinema.distributed import check_device
    from kinema.errors import UsageError
    from kinema.options import SamplingOptions
    from kinema.pipeline import Pipeline
    from kinema.toyworld.adherence import eval_cases, sweep_point
    from kinema.toyworld.judge import ATTRIBUTES
    from kinema.toyworld.report import SweepReport, write_sweep_report
    from kinema.toyworld.scene import WorldConfig

    steps_list, shifts = _numbers(args.steps, int, "--steps"), _numbers(args.shift, float, "--shift")
    if args.num < 1:
        raise UsageError(f"--num must be at least 1, got {args.num}")
    base = SamplingOptions(cfg_scale=args.cfg_scale, guidance=args.guidance)
    pipe = Pipeline.from_pretrained(args.checkpoint, device=check_device(args.device))
    d = pipe.defaults
    cases = eval_cases(args.num, WorldConfig(height=d.height, width=d.width, frames=d.frames, fps=d.fps),
                       seed=args.seed, split=args.split)
    rows = []
    for steps in steps_list:
        for shift in shifts:
            rows.append(sweep_point(pipe, cases, dataclasses.replace(base, steps=steps, shift=shift)))
            row = rows[-1]
            print(f"steps {steps:>3} shift {shift:>5g}: " + "  ".join(f"{a} {100 * row[a]:.0f}%" for a in ATTRIBUTES)
                  + f"  {row['latency_s']:.2f} s/video", flush=True)
    report = SweepReport(args.split, len(cases), rows)
    summary, table = write_sweep_report(report, args.out)
    print(report.table())
    print(f"wrote {summary} and {table}")
    return 0


def run_sensitivity(args: argparse.Namespace) -> int:
    from kinema.distributed import check_device
    from kinema.errors import UsageError
    from kinema.pipeline import Pipeline
    from kinema.toyworld.report import write_sensitivity_report
    from kinema.toyworld.scene import sample_scenes
    from kinema.toyworld.sensitivity import text_sensitivity

    times = _numbers(args.times, float, "--times")
    if max(times) >= 1:
        raise UsageError(f"--times must lie in (0, 1), got {args.times!r}")
    if args.num < 1:
        raise UsageError(f"--num must be at least 1, got {args.num}")
    pipe = Pipeline.from_pretrained(args.checkpoint, device=check_device(args.device))
    scenes = sample_scenes(args.num, world_config(args), args.seed, args.split)
    report = text_sensitivity(pipe, scenes, times, seed=args.seed, wording=args.wording)
    path = write_sensitivity_report(report, args.out)
    print(report.table())
    print(f"wrote {path}")
    return 0
