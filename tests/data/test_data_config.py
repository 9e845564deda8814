"""The shipped curation config loads, the repo copy matches it, and bad configs fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kinema.data.buckets import aspect_frame_bucket
from kinema.data.config import BucketConfig, default_config_path, load_config
from kinema.data.scorers import ScorerConfig, learned_score


def test_shipped_config_loads_with_five_stages_and_two_image_sets():
    config = load_config()
    assert len(config.stages) == 5 and len(config.image_sets) == 2
    sides = [s.min_side for s in config.stages]
    assert sides == sorted(sides)  # rising resolution
    aesthetic = [s.min_aesthetic for s in config.stages]
    assert aesthetic == sorted(aesthetic)  # tightening thresholds


def test_the_default_is_the_one_curate_yaml_inside_the_package():
    import kinema

    assert default_config_path() == Path(kinema.__file__).parent / "configs" / "curate.yaml"
    assert default_config_path().is_file()


def test_unknown_keys_and_bad_values_are_named(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("shots: {treshold: 20}\n")
    with pytest.raises(ValueError, match="treshold"):
        load_config(bad)
    bad.write_text("dedup_threshold: 2.0\n")
    with pytest.raises(ValueError, match="dedup_threshold"):
        load_config(bad)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_buckets():
    config = BucketConfig()
    assert aspect_frame_bucket(720, 1280, 140, config) == "16:9x129"
    assert aspect_frame_bucket(1280, 720, 40, config) == "9:16x33"
    assert aspect_frame_bucket(480, 640, 10, config) == ""


def test_a_torchscript_model_plugs_in_as_the_aesthetic_scorer(tmp_path):
    class MeanRed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, 0].mean(dim=(1, 2))

    path = tmp_path / "aesthetic.pt"
    torch.jit.script(MeanRed()).save(str(path))
    frames = np.zeros((2, 32, 32, 3), np.uint8)
    frames[..., 0] = 255
    assert learned_score(frames, ScorerConfig(model=str(path), image_size=16)) == pytest.approx(1.0)
    with pytest.raises(FileNotFoundError):
        ScorerConfig(model=str(tmp_path / "nope.pt"))
