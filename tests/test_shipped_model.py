"""The shipped toy model (package data, `kinema/checkpoints/toy`) and any distilled pipelines rebuilt
under the repository's `checkpoints/` (configs/toy/distill-*.yaml): they load, stay small, and still
follow prompts.

A regression test of the trained weights and of everything between them and a video (loading,
text encoding, sampling, decoding): a handful of held-out prompts must come out right by the
toy-world judge. Generation on CPU is deterministic, so these numbers do not flake.
"""

from pathlib import Path

import numpy as np
import pytest

from kinema.pipeline import Pipeline
from kinema.pipeline_folder import default_checkpoint
from kinema.toyworld.adherence import eval_cases, evaluate
from kinema.toyworld.scene import WorldConfig

REBUILT = Path(__file__).resolve().parents[1] / "checkpoints"  # distilled models, built locally, not shipped
SHIPPED = {"toy": default_checkpoint()} | {
    p.name: p for p in sorted(REBUILT.glob("*")) if (p / "pipeline.json").is_file()
}


def test_the_default_toy_model_ships_inside_the_package():
    import kinema

    assert default_checkpoint() == Path(kinema.__file__).resolve().parent / "checkpoints" / "toy"
    assert (default_checkpoint() / "pipeline.json").is_file(), "`make demo` would have nothing to run"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_is_small_deterministic_and_follows_prompts(name):
    folder = SHIPPED[name]
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size < 25 * 2**20, f"{folder} is {size / 2**20:.1f} MiB"
    pipe = Pipeline.from_pretrained(folder)
    d = pipe.defaults
    a = pipe("a red circle moves to the right", seed=0)
    assert a.frames.shape == (d.frames, d.height, d.width, 3)
    assert np.array_equal(a.frames, pipe("a red circle moves to the right", seed=0).frames)
    cases = eval_cases(8, WorldConfig(height=d.height, width=d.width, frames=d.frames, fps=d.fps), split="heldout")
    accuracy = evaluate(lambda prompt, seed: pipe(prompt, seed=seed).frames, cases, keep_videos=0).accuracy()
    # A floor for regressions, not the targets: on 48 held-out prompts the shipped base model gets color
    # and motion right 100% of the time; the distilled models, built from the previous base, color only
    # (benchmarks/RESULTS.md). Chance is 1 in 6 for color, 1 in 5 for motion.
    assert accuracy["color"] >= 0.75, accuracy
    if name == "toy":
        assert accuracy["motion"] >= 0.75, accuracy
