"""Checkpoints are atomic with all their files: a VAE run killed while its discriminator is being written
resumes from the complete previous checkpoint, discriminator included, never from a half-written one.
Their folders and files get the umask's mode."""

import dataclasses
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kinema.toyworld.dataset import render_dataset
from kinema.toyworld.scene import WorldConfig
from kinema.train.checkpoint import latest_checkpoint, save_checkpoint
from kinema.train.vae import VAERecipe, VAEStage, train_vae

# Run a VAE recipe (JSON in argv[1]) and kill the process (no clean-up, like SIGKILL) when it starts
# writing the discriminator of its second checkpoint.
KILLED_AT_THE_SECOND_DISCRIMINATOR = """
import json, os, sys
from pathlib import Path
import torch
from kinema.config import from_dict
from kinema.train.vae import VAERecipe, train_vae

save, written = torch.save, []

def save_or_die(obj, f, *args, **kwargs):
    if Path(f).name == "discriminator.pt":
        written.append(f)
        if len(written) == 2:
            os._exit(9)
    return save(obj, f, *args, **kwargs)

torch.save = save_or_die
train_vae(from_dict(VAERecipe, json.loads(sys.argv[1])))
"""


def scalars(run: Path) -> dict[int, dict]:
    """The logged scalars by step (a resumed run logs the steps after its checkpoint again: the last wins)."""
    return {row["step"]: row for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("toy")
    render_dataset(folder, 6, WorldConfig(height=32, width=32, frames=9), seed=0)
    return folder


def test_a_kill_while_the_discriminator_is_written_leaves_the_previous_checkpoint_whole(dataset, tmp_path):
    recipe = VAERecipe(
        run_dir=str(tmp_path / "run"), dataset=str(dataset), eval_clips=2, log_every=1, checkpoint_every=1,
        threads=1, adversarial_weight=0.1, adversarial_start=0, output=str(tmp_path / "out"),
        stages=[VAEStage(steps=3, frames=5, height=16, width=16, batch_size=2)],
    )
    done = subprocess.run([sys.executable, "-c", KILLED_AT_THE_SECOND_DISCRIMINATOR, json.dumps(dataclasses.asdict(recipe))],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 9, done.stderr[-3000:]
    run = tmp_path / "run"
    assert sorted(scalars(run)) == [1, 2]  # step 2 was trained and logged, then killed while checkpointing
    found = latest_checkpoint(run)
    assert found is not None and found.name == "step-00000001"
    assert all((step / "discriminator.pt").is_file() for step in (run / "checkpoints").glob("step-*"))

    before = scalars(run)[2]
    assert train_vae(recipe, resume=True) == tmp_path / "out"
    after = scalars(run)[2]
    # Step 2 again from the step-1 checkpoint: the same weights, discriminator included, so the same
    # numbers (before any new update, float rounding has nothing to amplify). A fresh discriminator
    # would give another adversarial loss.
    assert after["adv"] == pytest.approx(before["adv"], rel=1e-5)
    assert after["loss"] == pytest.approx(before["loss"], rel=1e-5)


def test_a_checkpoint_without_its_discriminator_is_refused(dataset, tmp_path):
    recipe = VAERecipe(
        run_dir=str(tmp_path / "run"), dataset=str(dataset), eval_clips=2, log_every=1, checkpoint_every=1,
        threads=1, adversarial_weight=0.1, stages=[VAEStage(steps=1, frames=5, height=16, width=16, batch_size=2)],
    )
    train_vae(recipe)
    step = latest_checkpoint(tmp_path / "run")
    (step / "discriminator.pt").unlink()
    longer = dataclasses.replace(recipe, stages=[VAEStage(steps=2, frames=5, height=16, width=16, batch_size=2)])
    with pytest.raises(FileNotFoundError, match="has no discriminator.pt"):
        train_vae(longer, resume=True)


def test_a_checkpoint_folder_gets_the_umask_mode(tmp_path):
    model = torch.nn.Linear(2, 2)
    old = os.umask(0o022)
    try:
        step = save_checkpoint(tmp_path, 1, model, torch.optim.AdamW(model.parameters()), None, {"kind": "test"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(step.stat().st_mode) == 0o755  # as mkdir makes it, not mkdtemp's 0700
    assert stat.S_IMODE((step / "optimizer.pt").stat().st_mode) == 0o644
