"""Fixtures for caption tests: small videos and images encoded here, manifests written with `write_manifest`."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from caption_media import encode_video, moving_square, row
from PIL import Image

from kinema.data.manifest import empty_manifest, write_manifest

# The fake MiniMax server lives with the client tests; caption tests drive it too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients"))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A curated-looking dataset: 2 kept clips cut from one file, a kept image, a rejected clip, an errored row."""
    folder = tmp_path / "run"
    (folder / "media").mkdir(parents=True)
    red = moving_square((220, 30, 30), (20, 20, 120), count=32)
    encode_video(folder / "media" / "red.mp4", red)
    Image.fromarray(np.full((48, 64, 3), (40, 180, 60), np.uint8)).save(folder / "media" / "green.png")
    rows = [
        row(folder, "media/red.mp4", start=0.0, end=2.0, camera_motion="pan left", camera_confidence=0.95,
            motion_speed=0.4),
        row(folder, "media/red.mp4", start=2.0, end=4.0, camera_motion="zoom in", camera_confidence=0.5,
            motion_speed=0.001),
        row(folder, "media/green.png", kind="image", camera_motion="pan left", camera_confidence=0.99),
        row(folder, "media/red.mp4", start=1.0, end=3.0, stage=-1, camera_motion=None, camera_confidence=float("nan")),
        row(folder, "media/missing.mp4", error="cannot open the file", camera_motion=None, camera_confidence=float("nan")),
    ]
    df = pd.concat([empty_manifest(), pd.DataFrame(rows)], ignore_index=True)
    write_manifest(folder, df)
    return folder
