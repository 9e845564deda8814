"""The judge: ~100% on ground-truth renders, and it notices every kind of wrong video."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from kinema.toyworld.captions import PromptSpec
from kinema.toyworld.judge import accuracy, classify_motion, classify_shape, judge
from kinema.toyworld.render import render, render_batch, shape_sdf
from kinema.toyworld.scene import WorldConfig, sample_scenes, scene_for


def test_ground_truth_renders_score_at_least_98_percent_per_attribute():
    # Seen and held-out combinations, one and several objects, every camera motion, two frame sizes.
    scenes = (
        sample_scenes(90, WorldConfig(multi_object_fraction=0.3), seed=11, split="train")
        + sample_scenes(60, WorldConfig(), seed=11, split="heldout")
        + sample_scenes(50, WorldConfig(height=48, width=80, frames=9), seed=11, split="all")
    )
    verdicts = []
    for size in ({(s.frames, s.height, s.width) for s in scenes}):
        group = [s for s in scenes if (s.frames, s.height, s.width) == size]
        verdicts += [judge(v, s) for s, v in zip(group, render_batch(group))]
    scores = accuracy(verdicts)
    assert len(verdicts) == 200
    assert all(scores[a] >= 0.98 for a in ("color", "shape", "motion", "camera")), scores


def test_images_are_judged_on_color_and_shape_only():
    scene = sample_scenes(1, WorldConfig(frames=1), seed=0)[0]
    v = judge(render(scene), scene)
    assert v.color and v.shape and v.motion is None and v.camera is None


@pytest.fixture(scope="module")
def red_circle_right_pan_left():
    scene = scene_for([("red", "circle", "right")], "pan left", WorldConfig(), seed=3)
    return scene, render(scene)


@pytest.mark.parametrize(
    "asked, wrong",
    [
        (PromptSpec((("blue", "circle", "right"),), "pan left"), "color"),
        (PromptSpec((("red", "square", "right"),), "pan left"), "shape"),
        (PromptSpec((("red", "star", "right"),), "pan left"), "shape"),
        (PromptSpec((("red", "circle", "left"),), "pan left"), "motion"),
        (PromptSpec((("red", "circle", "still"),), "pan left"), "motion"),
        (PromptSpec((("red", "circle", "right"),), "pan right"), "camera"),
        (PromptSpec((("red", "circle", "right"),), "zoom in"), "camera"),
        (PromptSpec((("red", "circle", "right"),), "static shot"), "camera"),
    ],
)
def test_the_judge_catches_each_wrong_attribute(red_circle_right_pan_left, asked, wrong):
    _, video = red_circle_right_pan_left
    scores = judge(video, asked).scores()
    assert scores[wrong] is False, scores
    if wrong != "color":  # a missing color also hides its shape and motion
        assert all(ok for name, ok in scores.items() if name != wrong), scores


def test_an_extra_colorful_object_that_dominates_fails_color():
    scene = scene_for([("red", "circle", "still"), ("blue", "square", "left")], "static shot", WorldConfig(), seed=4)
    video = render(dataclasses.replace(scene, objects=scene.objects[:1]))
    assert judge(video, PromptSpec((("red", "circle", "still"),), None)).color
    flooded = video.copy()
    flooded[:, :40, :, :] = (40, 90, 235)  # most of the frame turns blue
    assert not judge(flooded, PromptSpec((("red", "circle", "still"),), None)).color


def test_shapes_are_recognised_from_clean_masks_at_small_sizes():
    ys, xs = np.mgrid[0:40, 0:40].astype(np.float64)
    for shape in ("circle", "square", "triangle", "star"):
        for scale in (6.0, 9.0, 13.0):
            mask = shape_sdf(shape, (xs - 20.3) / scale, (ys - 19.6) / scale) * scale <= 0
            assert classify_shape(mask) == shape, (shape, scale)
    assert classify_shape(np.zeros((10, 10), bool)) is None


def test_motion_from_a_centroid_track():
    t = np.arange(17, dtype=np.float64)
    track = np.stack([10 + 1.5 * t, 30 + 0.1 * t], 1)
    assert classify_motion(track, 64, 64, 0.12) == "right"
    assert classify_motion(track[::-1].copy(), 64, 64, 0.12) == "left"
    assert classify_motion(np.stack([track[:, 1], track[:, 0]], 1), 64, 64, 0.12) == "down"
    jitter = np.stack([32 + np.sin(t), 32 + np.cos(t)], 1)
    assert classify_motion(jitter, 64, 64, 0.12) == "still"
    track[3] = np.nan  # a frame where the object was not found
    assert classify_motion(track, 64, 64, 0.12) == "right"


def test_bad_video_arrays_get_one_clear_sentence():
    scene = sample_scenes(1, seed=0)[0]
    with pytest.raises(ValueError, match="uint8"):
        judge(np.zeros((17, 64, 64, 3), np.float32), scene)


def test_the_judge_tolerates_blur_noise_and_washed_out_colors():
    # Generated videos are softer than renders: blur (sigma 1 px), noise and 15% desaturation.
    scenes = sample_scenes(30, WorldConfig(), seed=31, split="all")
    rng = np.random.default_rng(0)
    verdicts = []
    for scene, video in zip(scenes, render_batch(scenes)):
        soft = np.stack([cv2.GaussianBlur(f.astype(np.float32), (0, 0), 1.0) for f in video])
        soft = 0.85 * soft + 0.15 * soft.mean(-1, keepdims=True) + rng.normal(0, 4, soft.shape)
        verdicts.append(judge(np.clip(np.rint(soft), 0, 255).astype(np.uint8), scene))
    assert all(score >= 0.95 for score in accuracy(verdicts).values()), accuracy(verdicts)
