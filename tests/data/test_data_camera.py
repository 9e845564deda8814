"""Camera-motion classifier: accuracy on synthetic clips with known motion, conventions, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kinema.caption.schema import CAMERA_MOTIONS
from kinema.data.camera import (
    CameraConfig,
    camera_motion_scores,
    classify_camera_motion,
    estimate_global_motion,
)
from kinema.data.camera_path import VIEW_MOTION, camera_path
from kinema.data.synthetic import add_noise, render_camera_motion


def test_camera_paths_cover_the_fourteen_classes_in_one_convention():
    assert sorted(VIEW_MOTION) == sorted(CAMERA_MOTIONS)
    t = np.arange(5.0)

    def path(motion):
        return camera_path(motion, t, (64, 48), travel=0.1, zoom=0.2, roll=0.3)

    # The path describes the camera: pan right moves the view right, tilt up moves it up.
    assert path("pan right").offset[-1].tolist() == [4 * 0.1 * 64, 0.0]
    assert path("tilt up").offset[-1, 1] < 0 and path("pan up").offset[-1, 1] < 0
    assert path("zoom in").log_zoom[-1] > 0 > path("zoom out").log_zoom[-1]
    assert path("tilt right").roll[-1] > 0 > path("tilt left").roll[-1]  # clockwise on screen
    static = path("static shot")
    assert not static.offset.any() and not static.log_zoom.any() and not static.roll.any()
    with pytest.raises(ValueError, match="unknown camera motion"):
        camera_path("dolly zoom", t, (64, 48))


@pytest.mark.parametrize("size", [(64, 64), (144, 256)])
def test_accuracy_on_synthetic_set_is_at_least_90_percent(size):
    height, width = size
    results = []
    for motion in CAMERA_MOTIONS:
        for seed in range(2):
            clip = add_noise(render_camera_motion(motion, 17, height, width, speed=0.02, seed=seed), 3.0, seed)
            results.append(classify_camera_motion(clip).type == motion)
    assert np.mean(results) >= 0.9, f"accuracy {np.mean(results):.2f}"


def test_toy_world_classes_are_all_right_at_several_speeds():
    toy = ["static shot", "pan left", "pan right", "tilt up", "tilt down", "zoom in", "zoom out", "handheld shot"]
    for speed in (0.01, 0.02, 0.05):
        for motion in toy:
            clip = render_camera_motion(motion, 17, 64, 64, speed=speed, seed=7)
            assert classify_camera_motion(clip).type == motion, (motion, speed)


def test_direction_conventions_match_the_docstring():
    # Content moving right in the frame means the camera turned left.
    motion = estimate_global_motion(render_camera_motion("pan left", 9, 64, 64, speed=0.03, seed=1))
    assert motion.shift[:, 0].mean() == pytest.approx(0.03, rel=0.1)
    zoom = estimate_global_motion(render_camera_motion("zoom in", 9, 64, 64, speed=0.03, seed=1))
    assert zoom.log_scale.mean() == pytest.approx(0.03, rel=0.15)
    roll = estimate_global_motion(render_camera_motion("tilt left", 9, 64, 64, speed=0.03, seed=1))
    assert roll.angle.mean() == pytest.approx(0.03, rel=0.15)  # content turns clockwise


def test_object_moving_on_its_own_does_not_move_the_camera():
    for obj_dx in (0, 2, -2):
        clip = render_camera_motion("static shot", 17, 64, 64, seed=3).copy()
        for t in range(17):
            cv2.circle(clip[t], (20 + obj_dx * t, 36), 11, (255, 0, 0), -1)
        assert classify_camera_motion(clip).type == "static shot"
    clip = render_camera_motion("tilt up", 17, 64, 64, seed=4).copy()
    for t in range(17):
        cv2.circle(clip[t], (20, 40), 11, (0, 0, 255), -1)  # fixed on screen while the camera moves
    assert classify_camera_motion(clip).type == "tilt up"


def test_scores_are_probabilities_and_confidence_is_their_max():
    clip = render_camera_motion("zoom out", 9, 64, 64, seed=2)
    scores = camera_motion_scores(clip)
    assert scores.shape == (14,)
    assert scores.sum() == pytest.approx(1.0)
    result = classify_camera_motion(clip)
    assert result.confidence == pytest.approx(scores.max())
    assert result.confidence > 0.9


def test_flat_frames_are_a_static_shot():
    clip = np.full((5, 32, 32, 3), 90, np.uint8)
    assert classify_camera_motion(clip).type == "static shot"


def test_bad_input_is_rejected_with_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 frames"):
        classify_camera_motion(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        classify_camera_motion(np.zeros((4, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="positive"):
        CameraConfig(translation=0.0)
