"""Few-step generation side by side: toy adherence and latency at 50/16/8/4 steps for the base model
(its default shift), the base model with the best shift per step count, the guidance-distilled model
and the step-distilled model, on the same held-out prompts and seeds.

    .venv/bin/python benchmarks/bench_fewstep.py [-n 48] [--shifts 1,3,7,17]
        [--base DIR] [--guidance checkpoints/toy-guidance] [--steps-model checkpoints/toy-8step]

Models whose folder is missing are skipped. "adherence" is the mean of the four per-attribute
accuracies; "vs base 50" divides it by the base model's at 50 steps, "speed-up" divides base 50-step
CFG latency by the row's, and "speed-up above the floor" does the same after subtracting what any
setting pays (text encoding, one forward, the VAE decode: measured as 1 step without CFG).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results  # noqa: E402

from kinema.options import SamplingOptions  # noqa: E402
from kinema.pipeline import Pipeline  # noqa: E402
from kinema.toyworld.adherence import eval_cases, sweep_point  # noqa: E402
from kinema.toyworld.judge import ATTRIBUTES  # noqa: E402
from kinema.toyworld.scene import WorldConfig  # noqa: E402

STEPS = (50, 16, 8, 4)


def mean_adherence(row: dict) -> float:
    return sum(row[a] for a in ATTRIBUTES) / len(ATTRIBUTES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--num", type=int, default=48, help="held-out prompts per setting")
    parser.add_argument("--shifts", default="1,3,7,17", help="shifts tried for the base model at each step count")
    parser.add_argument("--base", default=None, help="base pipeline folder (default: the shipped toy model)")
    parser.add_argument("--guidance", default="checkpoints/toy-guidance")
    parser.add_argument("--steps-model", default="checkpoints/toy-8step")
    args = parser.parse_args()
    shifts = [float(s) for s in args.shifts.split(",")]

    base = Pipeline.from_pretrained(args.base)
    d = base.defaults
    cases = eval_cases(args.num, WorldConfig(height=d.height, width=d.width, frames=d.frames, fps=d.fps), split="heldout")
    results: list[tuple[str, dict]] = []
    sweep: dict[int, list[dict]] = {}
    for steps in STEPS:
        sweep[steps] = [sweep_point(base, cases, SamplingOptions(steps=steps, shift=shift)) for shift in shifts]
        shift = d.shift_for(steps)
        default = (next((r for r in sweep[steps] if r["shift"] == shift), None)
                   or sweep_point(base, cases, SamplingOptions(steps=steps, shift=shift)))
        results.append((f"base (its shifts, CFG {d.cfg_scale:g})", default))
        results.append(("base, best shift", max(sweep[steps], key=mean_adherence)))
        print(f"{steps} steps: " + ", ".join(f"shift {r['shift']:g} {100 * mean_adherence(r):.0f}%" for r in sweep[steps]), flush=True)
    for name, folder in (("guidance-distilled", args.guidance), ("step-distilled", args.steps_model)):
        if not (Path(folder) / "pipeline.json").is_file():
            print(f"skipping {name}: no pipeline at {folder}")
            continue
        pipe = Pipeline.from_pretrained(folder)
        for steps in STEPS:
            results.append((f"{name} ({Path(folder).name})", sweep_point(pipe, cases, SamplingOptions(steps=steps))))

    # The floor every setting pays: text encoding, one forward and the VAE decode (1 step, no CFG).
    floor = sweep_point(base, cases[:8], SamplingOptions(steps=1, cfg_scale=1.0))["latency_s"]
    reference = next(r for name, r in results if name.startswith("base (") and r["steps"] == 50)
    table = [
        "| model | steps | shift | " + " | ".join(ATTRIBUTES)
        + " | adherence | vs base 50 | s / video | speed-up | speed-up above the floor |",
        "|---|---|---|" + "---|" * (len(ATTRIBUTES) + 5),
    ]
    for name, r in sorted(results, key=lambda nr: (nr[0], -nr[1]["steps"])):
        cells = " | ".join(f"{100 * r[a]:.0f}%" for a in ATTRIBUTES)
        table.append(
            f"| {name} | {r['steps']} | {r['shift']:g} | {cells} | {100 * mean_adherence(r):.1f}% "
            f"| {mean_adherence(r) / mean_adherence(reference):.2f} | {r['latency_s']:.2f} "
            f"| {reference['latency_s'] / r['latency_s']:.1f}x "
            f"| {(reference['latency_s'] - floor) / max(r['latency_s'] - floor, 1e-6):.1f}x |"
        )
    shift_lines = [f"{s} steps: " + ", ".join(f"shift {r['shift']:g} → {100 * mean_adherence(r):.1f}%" for r in rows)
                   for s, rows in sweep.items()]
    append_results(
        f"Few-step generation: base / shift-tuned / guidance-distilled / step-distilled ({len(cases)} held-out prompts)",
        f"python benchmarks/bench_fewstep.py -n {args.num} --shifts {args.shifts}",
        table,
        f"Floor (1 step, no CFG: text encoding, one forward, VAE decode): {floor:.3f} s per video; "
        "\"speed-up above the floor\" compares the time spent beyond it.  \n"
        "Shift sweep of the base model (mean adherence):  \n" + "  \n".join(shift_lines),
    )


if __name__ == "__main__":
    main()
