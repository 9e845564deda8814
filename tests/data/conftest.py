"""Shared fixtures for the curation tests: small synthetic videos with known ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from kinema.data.synthetic import render_camera_motion, textured_canvas, write_video

H, W, FPS = 270, 480, 25.0


def scene(motion: str, seconds: float, seed: int) -> np.ndarray:
    """A clip of `seconds` at 25 fps over its own textured canvas (camera speed per frame scaled to 25 fps)."""
    return render_camera_motion(motion, round(seconds * FPS), H, W, speed=0.006, seed=seed)


@pytest.fixture(scope="session")
def cut_video(tmp_path_factory) -> tuple[str, list[int]]:
    """Three shots with cuts at frames 62 and 137 (of 200)."""
    frames = np.concatenate([scene("pan left", 2.48, 1), scene("static shot", 3.0, 2), scene("zoom in", 2.52, 3)])
    path = str(tmp_path_factory.mktemp("videos") / "cuts.mp4")
    return write_video(path, frames, FPS), [62, 137]


@pytest.fixture(scope="session")
def canvas() -> np.ndarray:
    return textured_canvas(3 * H, 3 * W, seed=5)
