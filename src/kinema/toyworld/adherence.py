"""Prompt-adherence evaluation: generate a video per prompt, judge it, report per-attribute accuracy.

Any text-to-video system is a `Generator`, a callable `generate(prompt, seed) -> (T, H, W, 3) uint8`.
`evaluate` runs it over `EvalCase`s (prompt, seed, ground truth), judges every video with
`judge.judge`, and returns an `AdherenceReport` (a text table; `kinema.toyworld.report` writes it with a
contact sheet). `sweep_point` does the same for a `kinema.Pipeline` at one `SamplingOptions`, with latency.
`ground_truth_generator` renders exactly what a prompt asks, so its report is the judge's own
accuracy on perfect videos (it must be ~100%).

Prompts come in a wording set (`kinema.caption.wording`): "template" (what the model was trained on
word for word), "train" (the wordings training draws from) or "held-out" (wordings no training prompt
used: how well the model follows words it was not taught); the report names it.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from kinema.caption.schema import caption_to_prompt
from kinema.caption.wording import WordingSet
from kinema.toyworld.captions import PromptSpec, parse_prompt, scene_prompt
from kinema.toyworld.judge import ATTRIBUTES, JudgeConfig, Verdict, accuracy, judge
from kinema.toyworld.render import render
from kinema.toyworld.scene import SceneTruth, Split, WorldConfig, sample_scenes, scene_for

if TYPE_CHECKING:
    from kinema.options import SamplingOptions
    from kinema.pipeline import Pipeline

Generator = Callable[[str, int], np.ndarray]


@dataclass(frozen=True)
class EvalCase:
    """One prompt to generate with a seed, and what the video must show; `wording` is the wording set the
    prompt was rendered in (None: a dataset's own prompt, as written)."""

    prompt: str
    seed: int
    truth: SceneTruth | PromptSpec
    wording: WordingSet | None = "template"

    @property
    def held_out(self) -> bool | None:
        return self.truth.held_out if isinstance(self.truth, SceneTruth) else None


def eval_cases(
    n: int, config: WorldConfig | None = None, seed: int = 0, split: Split = "heldout", wording: WordingSet = "template"
) -> list[EvalCase]:
    """`n` cases from sampled scenes: the prompt is the scene's full prompt, every field kept.

    Args:
        n: number of cases.
        config: the world (frame size and vocabulary) the prompts come from.
        seed: scene seed; case i is generated with seed + i.
        split: "heldout" (default: combinations never trained on), "train" or "all".
        wording: "template" (default: the deterministic prompt), or "train" / "held-out": each prompt in a
            random wording of that set, case i's drawn with seed + i.
    """
    scenes = sample_scenes(n, config, seed, split)
    return [
        EvalCase(scene_prompt(s, wording, random.Random(seed + i)), seed + i, s, wording) for i, s in enumerate(scenes)
    ]


def ground_truth_generator(config: WorldConfig | None = None, cases: Sequence[EvalCase] = ()) -> Generator:
    """A `Generator` that renders exactly what the prompt names (unnamed motion: still; unnamed camera:
    static), with size, position and background drawn from the seed.

    A prompt of one of `cases` asks for its case's truth, in whatever wording; any other prompt is read
    with `parse_prompt`, which knows the template wording only."""
    config = config or WorldConfig()
    known = {c.prompt: c.truth if isinstance(c.truth, PromptSpec) else PromptSpec.of(c.truth) for c in cases}

    def generate(prompt: str, seed: int) -> np.ndarray:
        spec = known.get(prompt) or parse_prompt(prompt)
        objects = [(c, s, m or "still") for c, s, m in spec.objects]
        return render(scene_for(objects, spec.camera or "static shot", config, seed))

    return generate


def dataset_cases(dataset: str | os.PathLike) -> tuple[list[EvalCase], Generator]:
    """Cases for the videos of a dataset folder, and a `Generator` that reads them back.

    Truth comes from the manifest's `truth` column (toy-world renders) or else from the prompt
    (`prompt` column, or the prompt built from `caption`), so a folder of generated videos with their
    prompts in a manifest can be judged too. Case i has seed i and its "generator" returns row i.

    Raises:
        FileNotFoundError: if the folder has no manifest.
        ValueError: if a row has neither ground truth nor a prompt naming a toy-world object.
    """
    from kinema.caption.schema import Caption
    from kinema.data.manifest import media_path
    from kinema.media import read_video
    from kinema.toyworld.dataset import read_truths

    df, truths = read_truths(dataset)
    df = df.reset_index(drop=True)
    cases = []
    for i, (row, truth) in enumerate(zip(df.itertuples(), truths)):
        prompt = getattr(row, "prompt", "") or ""
        if not prompt and row.caption:
            prompt = caption_to_prompt(Caption.model_validate_json(row.caption))
        if truth is None and not prompt:
            raise ValueError(f"row {row.id} of {dataset} has no ground truth, prompt or caption to judge against")
        cases.append(EvalCase(prompt, i, truth if truth is not None else parse_prompt(prompt), None))

    def generate(prompt: str, seed: int) -> np.ndarray:
        return read_video(media_path(dataset, df["path"][seed]))

    return cases, generate


@dataclass
class AdherenceReport:
    """Verdicts of an evaluation run, with the first videos kept for the contact sheet."""

    cases: list[EvalCase]
    verdicts: list[Verdict]
    videos: list[np.ndarray] = field(default_factory=list)

    @property
    def wording(self) -> str:
        """The wording set(s) of the prompts: "template", "train", "held-out" or "as written" (a dataset's)."""
        return ", ".join(sorted({c.wording or "as written" for c in self.cases})) or "template"

    def accuracy(self, held_out: bool | None = None) -> dict[str, float]:
        """Per-attribute accuracy over all cases, or only held-out (True) / seen (False) ones."""
        chosen = [v for c, v in zip(self.cases, self.verdicts) if held_out is None or c.held_out == held_out]
        return accuracy(chosen)

    def table(self) -> str:
        """A plain-text table: one row per attribute, columns for all cases and, when both kinds are
        present, held-out and seen combinations."""
        groups: list[tuple[str, bool | None]] = [("all", None)]
        kinds = {c.held_out for c in self.cases}
        if True in kinds and False in kinds:
            groups += [("held-out", True), ("seen", False)]
        lines = [f"{'attribute':<10}" + "".join(f"{name:>12}" for name, _ in groups)]
        results = [self.accuracy(flag) for _, flag in groups]
        for attr in ATTRIBUTES:
            cells = ["n/a" if math.isnan(r[attr]) else f"{100 * r[attr]:.1f}%" for r in results]
            lines.append(f"{attr:<10}" + "".join(f"{c:>12}" for c in cells))
        counts = [sum(1 for c in self.cases if flag is None or c.held_out == flag) for _, flag in groups]
        lines.append(f"{'videos':<10}" + "".join(f"{n:>12}" for n in counts))
        lines.append(f"{'wording':<10}{self.wording:>12}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready summary and per-case verdicts."""
        return {
            "accuracy": self.accuracy(),
            "wording": self.wording,
            "cases": [
                {"prompt": c.prompt, "seed": c.seed, "held_out": c.held_out, **v.scores(), "camera_seen": v.camera_seen}
                for c, v in zip(self.cases, self.verdicts)
            ],
        }


def _check_video(video: object, prompt: str) -> np.ndarray:
    if not isinstance(video, np.ndarray) or video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        got = f"{video.dtype} {video.shape}" if isinstance(video, np.ndarray) else type(video).__name__
        raise ValueError(f"the generator must return a (T, H, W, 3) uint8 array, got {got} for prompt {prompt!r}")
    return video


def evaluate(
    generate: Generator, cases: Sequence[EvalCase], config: JudgeConfig | None = None, keep_videos: int = 16
) -> AdherenceReport:
    """Generate and judge every case.

    Args:
        generate: the system under test, `generate(prompt, seed) -> (T, H, W, 3) uint8`.
        cases: prompts, seeds and ground truth.
        config: judge thresholds.
        keep_videos: how many of the first videos to keep in the report (for the contact sheet).

    Raises:
        ValueError: if the generator returns something other than a (T, H, W, 3) uint8 array.
    """
    report = AdherenceReport(list(cases), [])
    for case in cases:
        video = _check_video(generate(case.prompt, case.seed), case.prompt)
        report.verdicts.append(judge(video, case.truth, config))
        if len(report.videos) < keep_videos:
            report.videos.append(video)
    return report


def sweep_point(pipe: Pipeline, cases: Sequence[EvalCase], options: SamplingOptions) -> dict:
    """Adherence of a `kinema.Pipeline` at one sampling setting, with the median latency per video.

    Each case's seed replaces `options.seed`; unset options take the checkpoint's defaults, and the
    returned row names the steps and shift used.
    """
    import statistics
    import time

    latencies: list[float] = []

    def generate(prompt: str, seed: int) -> np.ndarray:
        start = time.perf_counter()
        video = pipe(prompt, options, seed=seed)
        latencies.append(time.perf_counter() - start)
        return video.frames

    accuracy = evaluate(generate, cases, keep_videos=0).accuracy()
    used = pipe.resolve(options)
    return {"steps": used.steps, "shift": used.shift, "latency_s": statistics.median(latencies), **accuracy}
