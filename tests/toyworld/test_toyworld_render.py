"""Renderer: deterministic, draws what the truth says where it says, camera moves the background only."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kinema.toyworld.judge import JudgeConfig, color_masks
from kinema.toyworld.render import polygon_sdf, render, render_batch, render_samples, shape_sdf
from kinema.toyworld.scene import COLORS, SceneTruth, WorldConfig, object_centers, sample_scenes, scene_for


def test_render_is_deterministic_and_batching_does_not_change_a_clip():
    scenes = sample_scenes(5, WorldConfig(multi_object_fraction=0.5), seed=1)
    batch = render_batch(scenes, chunk=2)
    assert batch.shape == (5, 17, 64, 64, 3) and batch.dtype == np.uint8
    for scene, clip in zip(scenes, batch):
        np.testing.assert_array_equal(render(scene), clip)


def test_object_centres_show_the_object_color_in_every_frame():
    for scene in sample_scenes(30, WorldConfig(height=48, width=80, frames=9, multi_object_fraction=0.5), seed=2, split="all"):
        video = render(scene)
        for o in scene.objects:
            for t, (x, y) in enumerate(object_centers(o, scene.frames)):
                np.testing.assert_array_equal(video[t, int(round(y)), int(round(x))], COLORS[o.color])


def test_backgrounds_never_look_like_an_object_color():
    scenes = [SceneTruth((), s.camera, s.pattern, s.tint, 64, 64, 9, 8.0, s.seed) for s in sample_scenes(60, seed=3)]
    masks = color_masks(render_batch(scenes).reshape(-1, 64, 64, 3), JudgeConfig())
    assert sum(int(m.sum()) for m in masks.values()) == 0


def _background_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    (dx, dy), _ = cv2.phaseCorrelate(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64))
    return dx, dy


@pytest.mark.parametrize("camera, sign", [("pan left", (1, 0)), ("pan right", (-1, 0)), ("tilt up", (0, 1)), ("tilt down", (0, -1))])
def test_camera_names_describe_the_camera_so_content_moves_the_other_way(camera, sign):
    scene = scene_for([("red", "circle", "still")], camera, WorldConfig(), seed=0)
    video = render(SceneTruth((), scene.camera, "checkered floor", scene.tint, 64, 64, 17, 8.0, scene.seed))
    dx, dy = _background_shift(video[0], video[4])
    assert np.sign(round(dx)) == sign[0] and np.sign(round(dy)) == sign[1], (dx, dy)


def test_objects_move_in_screen_coordinates_whatever_the_camera_does():
    still = [scene_for([("blue", "square", "still")], cam, WorldConfig(), seed=7) for cam in ("zoom in", "pan left", "handheld shot")]
    for scene in still:
        video = render(scene)
        mask = color_masks(video, JudgeConfig())["blue"]
        areas = mask.sum((1, 2))
        ys, xs = np.nonzero(mask[0])
        ye, xe = np.nonzero(mask[-1])
        assert abs(xs.mean() - xe.mean()) < 0.5 and abs(ys.mean() - ye.mean()) < 0.5
        assert np.ptp(areas) <= 0.02 * areas.mean()  # zoom changes the background, not the object (edges blend)


def test_shape_distance_functions_are_exact_at_known_points():
    u = np.array([0.0, 1.0, 2.0, 0.0])
    v = np.zeros(4)
    np.testing.assert_allclose(shape_sdf("circle", u, v), [-1.0, 0.0, 1.0, -1.0])
    # An axis-aligned square of half side h: corners at reach, edges at x = h.
    h = 1.15 * np.cos(np.pi / 4)
    np.testing.assert_allclose(shape_sdf("square", np.array([0.0, h, h + 0.5, 2 * h]), np.zeros(4)), [-h, 0.0, 0.5, h], atol=1e-9)
    # A regular hexagon (inner = cos(pi/6)) has its edge midpoints at the apothem.
    apothem = np.cos(np.pi / 6)
    d = polygon_sdf(np.array([0.0]), np.array([apothem]), 6, 1.0, apothem, 0.0)
    np.testing.assert_allclose(d, [0.0], atol=1e-9)


def test_render_samples_bundles_video_truth_caption_and_prompt():
    sample = render_samples(1, seed=9)[0]
    assert sample.video.shape == (17, 64, 64, 3)
    assert sample.prompt.startswith(sample.caption.short_description)
    assert sample.caption.camera_motion.type == sample.truth.camera


def test_render_batch_rejects_mixed_sizes():
    a = sample_scenes(1, WorldConfig(), seed=0)[0]
    b = sample_scenes(1, WorldConfig(frames=9), seed=0)[0]
    with pytest.raises(ValueError, match="share"):
        render_batch([a, b])


def test_renders_match_the_recorded_pixels():
    # Every camera class, two frame sizes: a change that moves one pixel of a toy render moves the
    # datasets the shipped model and the recorded training losses were made from.
    import hashlib

    digest = hashlib.sha256()
    for config in (WorldConfig(), WorldConfig(height=48, width=80, frames=9, multi_object_fraction=0.5)):
        for sample in render_samples(40, config, seed=3, split="all"):
            digest.update(sample.video.tobytes())
    assert digest.hexdigest() == "0b79922a53d12732013a41422bdd258f87114a0676fc1447c0c6ef4f70f17f12"
