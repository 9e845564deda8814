"""Scene sampling: determinism, held-out splits, objects that stay in frame and apart, captions that match."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kinema.caption.schema import CAMERA_MOTIONS, Caption, caption_to_prompt
from kinema.toyworld.captions import PromptSpec, parse_prompt, scene_caption, scene_prompt
from kinema.toyworld.scene import (
    CAMERAS,
    HELD_OUT,
    LANE_JITTER,
    PAN_TRAVEL,
    ROLL_ANGLE,
    ZOOM_RANGE,
    SceneTruth,
    WorldConfig,
    bounding_radius,
    object_centers,
    sample_scenes,
    scene_for,
    view_path,
)


def test_scene_i_depends_only_on_seed_split_and_index():
    a = sample_scenes(12, seed=5)
    b = sample_scenes(4, seed=5, start=8)
    assert a[8:] == b
    assert sample_scenes(3, seed=6) != a[:3]
    assert sample_scenes(3, seed=5, split="all") != a[:3]


def test_train_split_never_contains_held_out_triples_and_heldout_only_them():
    train = sample_scenes(400, seed=1, split="train")
    assert not any(o.triple in HELD_OUT for s in train for o in s.objects)
    held = sample_scenes(60, seed=1, split="heldout")
    assert all(len(s.objects) == 1 and s.objects[0].triple in HELD_OUT for s in held)
    assert len({s.objects[0].triple for s in held}) >= 6  # they spread over the held-out set
    # Every color, shape and motion of a held-out triple is still seen in training.
    seen = {(k, v) for s in train for o in s.objects for k, v in zip(("c", "s", "m"), o.triple)}
    assert all(("c", c) in seen and ("s", sh) in seen and ("m", m) in seen for c, sh, m in HELD_OUT)


@pytest.mark.parametrize("config", [WorldConfig(), WorldConfig(height=48, width=96, frames=9, multi_object_fraction=0.6, max_objects=3)])
def test_objects_stay_inside_the_frame_and_never_touch(config):
    scenes = sample_scenes(150, config, seed=2, split="all")
    assert any(len(s.objects) > 1 for s in scenes)
    for s in scenes:
        for o in s.objects:
            c = object_centers(o, s.frames)  # (T, 2)
            r = bounding_radius(o)
            assert (c[:, 0] - r >= 0).all() and (c[:, 0] + r <= s.width).all()
            assert (c[:, 1] - r >= 0).all() and (c[:, 1] + r <= s.height).all()
        for i, a in enumerate(s.objects):
            assert len({o.color for o in s.objects}) == len(s.objects)
            for b in s.objects[i + 1 :]:
                d = np.linalg.norm(object_centers(a, s.frames) - object_centers(b, s.frames), axis=1)
                assert d.min() > bounding_radius(a) + bounding_radius(b)


def test_motion_direction_matches_the_track():
    for s in sample_scenes(100, seed=3, split="all"):
        for o in s.objects:
            dx, dy = np.subtract(o.end, o.start)
            expected = {"right": dx > 0 and dy == 0, "left": dx < 0 and dy == 0, "down": dy > 0 and dx == 0,
                        "up": dy < 0 and dx == 0, "still": dx == 0 and dy == 0}
            assert expected[o.motion], (o.motion, dx, dy)


def test_a_lone_objects_path_crosses_the_frame_centre_and_others_start_anywhere():
    scenes = sample_scenes(200, seed=4, split="all")
    lone = [s.objects[0] for s in scenes if len(s.objects) == 1]
    crowded = [o for s in scenes if len(s.objects) > 1 for o in s.objects]
    assert len(lone) > 100 and len(crowded) > 40
    jitter = LANE_JITTER * 64 + 1e-6
    off_centre = [np.abs(np.add(o.start, o.end) / 2 - 32.0).max() for o in lone]
    assert max(off_centre) <= jitter
    assert np.mean([np.abs(np.add(o.start, o.end) / 2 - 32.0).max() > jitter for o in crowded]) > 0.5


def test_view_path_moves_the_view_with_the_camera():
    base = sample_scenes(1, seed=0)[0]

    def path(camera):
        return view_path(SceneTruth(base.objects, camera, base.pattern, base.tint, 64, 64, 17, 8.0, base.seed))

    offset = path("pan right").offset
    assert offset[-1, 0] - offset[0, 0] == pytest.approx(PAN_TRAVEL * 64) and np.ptp(offset[:, 1]) == 0
    assert offset[8].tolist() == [0.0, 0.0]  # pans are centred on the middle frame
    assert path("tilt up").offset[-1, 1] < path("tilt up").offset[0, 1]
    zoom_in, zoom_out = path("zoom in").log_zoom, path("zoom out").log_zoom
    assert zoom_in[0] == 0 and zoom_in[-1] == pytest.approx(-np.log(ZOOM_RANGE))  # from the whole frame in
    assert zoom_out[0] == pytest.approx(-np.log(ZOOM_RANGE)) and zoom_out[-1] == 0  # back out to it
    roll = path("tilt left").roll
    assert roll[0] - roll[-1] == pytest.approx(np.radians(ROLL_ANGLE))  # counter-clockwise
    static = path("static shot")
    assert not static.offset.any() and not static.log_zoom.any() and not static.roll.any()


def test_the_toy_cameras_are_classes_of_the_caption_schema():
    assert set(CAMERAS) <= set(CAMERA_MOTIONS)


def test_truth_round_trips_through_json():
    for s in sample_scenes(20, WorldConfig(multi_object_fraction=0.5), seed=4):
        assert SceneTruth.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_caption_and_prompt_are_consistent_with_the_truth():
    for s in sample_scenes(80, WorldConfig(multi_object_fraction=0.5), seed=8, split="all"):
        caption = scene_caption(s)
        Caption.model_validate_json(caption.model_dump_json())  # valid against the one schema
        assert caption.camera_motion is not None and caption.camera_motion.type == s.camera
        assert caption.camera_motion.confidence == 1.0
        assert s.background == caption.background
        spec = parse_prompt(caption_to_prompt(caption))
        assert spec.objects == tuple(o.triple for o in s.objects)
        assert spec.camera == s.camera


def test_default_prompt_reads_like_a_sentence():
    s = scene_for([("red", "circle", "right")], "static shot", WorldConfig(), seed=0)
    caption = scene_caption(s)
    assert caption.short_description == "a red circle moves to the right"
    assert caption_to_prompt(caption).startswith("a red circle moves to the right. static camera. background: ")


def test_images_name_no_motion_or_camera():
    s = sample_scenes(1, WorldConfig(frames=1), seed=0)[0]
    caption = scene_caption(s)
    assert caption.camera_motion is None
    assert parse_prompt(caption.short_description).objects[0][2] is None


@pytest.mark.parametrize(
    "kwargs, message",
    [({"frames": 16}, "4k\\+1"), ({"height": 8}, "16x16"), ({"colors": ("pink",)}, "subset"), ({"multi_object_fraction": 2.0}, "\\[0, 1\\]")],
)
def test_bad_world_configs_get_one_clear_sentence(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WorldConfig(**kwargs)


def test_scene_for_rejects_what_cannot_be_rendered():
    with pytest.raises(ValueError, match="camera motion 'around left'"):
        scene_for([("red", "circle", "right")], "around left", WorldConfig(), seed=0)
    with pytest.raises(ValueError, match="unknown object"):
        scene_for([("pink", "circle", "right")], "static shot", WorldConfig(), seed=0)
    with pytest.raises(ValueError, match="names no toy-world object"):
        parse_prompt("a cat on a mat")


def test_a_scene_s_prompt_spec_is_what_its_template_prompt_names():
    """`PromptSpec.of` (what any wording of a scene asks for) agrees with reading the template prompt."""
    scenes = sample_scenes(40, WorldConfig(max_objects=3), seed=4, split="all")
    scenes += sample_scenes(5, WorldConfig(frames=1), seed=4)
    assert any(len(s.objects) == 3 for s in scenes)
    for scene in scenes:
        assert PromptSpec.of(scene) == parse_prompt(scene_prompt(scene))
