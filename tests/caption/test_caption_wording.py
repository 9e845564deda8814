"""Prompt wordings: train and held-out banks that are disjoint and fixed, wordings that keep every
attribute word, the template that is today's prompt word for word, and heads that fit the toy encoder."""

from __future__ import annotations

import random
import re

import pytest

from kinema.caption import wording as W
from kinema.caption.schema import (
    CAMERA_MOTIONS,
    CameraMotion,
    Caption,
    PromptDropout,
    Subject,
    caption_to_prompt,
)
from kinema.toyworld.captions import MOTION_PHRASES, scene_caption, scene_prompt
from kinema.toyworld.scene import COLORS, MOTIONS, SHAPES, WorldConfig, sample_scenes
from kinema.train.latent_cache import prompt_variants

BANKS = {
    "subject moving": W.SUBJECT_MOVING, "subject still image": W.SUBJECT_STILL_IMAGE, "joins": W.SUBJECT_JOINS,
    "verbs": W.MOTION_VERBS, "still": W.STILL, "camera sentences": W.CAMERA_SENTENCES, "orders": W.HEAD_ORDERS,
    **{f"direction {d}": b for d, b in W.DIRECTIONS.items()},
    **{f"label {f}": b for f, b in W.FIELD_LABELS.items()},
}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def has_word(text: str, word: str) -> bool:
    """`word` starts one of the words of `text` ("pan" in "panning", "left" in "leftward")."""
    return any(w.startswith(word) for w in words(text))


@pytest.mark.parametrize("name", sorted(BANKS))
def test_every_bank_has_disjoint_train_and_held_out_phrasings(name):
    bank = BANKS[name]
    assert bank.train and bank.held_out
    assert not set(bank.train) & set(bank.held_out)


def test_a_bank_that_overlaps_is_refused():
    with pytest.raises(ValueError, match="overlap"):
        W.Bank(train=("a", "b"), held_out=("b",))


def test_wordings_are_deterministic_given_the_rng():
    scenes = sample_scenes(6, WorldConfig(), seed=3, split="all")
    for wording in ("train", "held-out"):
        first = [scene_prompt(s, wording, random.Random(i)) for i, s in enumerate(scenes)]
        again = [scene_prompt(s, wording, random.Random(i)) for i, s in enumerate(scenes)]
        assert first == again
    assert len({scene_prompt(scenes[0], "train", random.Random(i)) for i in range(20)}) > 5  # and they do vary


@pytest.mark.parametrize("wording", W.WORDING_SETS)
def test_every_subject_wording_names_its_color_shape_and_motion(wording):
    for color in COLORS:
        for shape in SHAPES:
            for motion in (*MOTIONS, None):
                for i in range(12):
                    text = W.subject_phrase(Subject(color=color, noun=shape, motion=motion), wording, random.Random(i))
                    assert color in words(text) and shape in words(text), text
                    if motion is not None:
                        assert any(has_word(text, w) for w in W.MOTION_WORDS[motion]), text
                        others = [m for m in MOTIONS if m != motion and m != "still"]
                        assert not any(has_word(text, w) for m in others for w in W.MOTION_WORDS[m]), text


def test_every_motion_and_camera_phrasing_keeps_its_words():
    """Exhaustively: every verb x direction form, every still phrase, every camera sentence of every class."""
    for verb in W.MOTION_VERBS.train + W.MOTION_VERBS.held_out:
        for direction, bank in W.DIRECTIONS.items():
            for form in bank.train + bank.held_out:
                assert has_word(form, direction), form
    for phrase in W.STILL.train + W.STILL.held_out:
        assert all(any(w in words(p) for w in W.MOTION_WORDS["still"]) for p in phrase), phrase
    assert set(W.CAMERA_FORMS) == set(CAMERA_MOTIONS)
    for motion in CAMERA_MOTIONS:
        for sentence in W.CAMERA_SENTENCES.train + W.CAMERA_SENTENCES.held_out:
            finite, participle, noun, held_noun = W.CAMERA_FORMS[motion]
            text = sentence.format(finite=finite, participle=participle, noun=noun, held_noun=held_noun)
            for group in W.CAMERA_WORDS[motion]:
                assert any(has_word(text, w) for w in group), (motion, text)


def test_no_train_rendering_of_a_subject_or_camera_equals_a_held_out_one():
    for motion in (*MOTIONS, None):
        subject = Subject(color="red", noun="circle", motion=motion)
        rendered = {w: {W.subject_phrase(subject, w, random.Random(i)) for i in range(300)} for w in ("train", "held-out")}
        assert not rendered["train"] & rendered["held-out"]
    for motion in CAMERA_MOTIONS:
        rendered = {w: {W.camera_phrase(motion, w, random.Random(i)) for i in range(100)} for w in ("train", "held-out")}
        assert len(rendered["train"]) == len(W.CAMERA_SENTENCES.train)
        assert not rendered["train"] & rendered["held-out"], motion


def held_out_markers() -> list[str]:
    """Phrases only held-out wordings use."""
    markers = [p for v in W.MOTION_VERBS.held_out for p in v] + [p for s in W.STILL.held_out for p in s]
    markers += [f for b in W.DIRECTIONS.values() for f in b.held_out]
    markers += [forms[3] for forms in W.CAMERA_FORMS.values()]
    markers += ["shot with", "the camera is", " while ", " plus ", ", also ", " in red", "one red"]
    markers += [label.format("").strip() for b in W.FIELD_LABELS.values() for label in b.held_out]
    return markers


def test_training_prompts_never_use_a_held_out_wording():
    markers = held_out_markers()
    scenes = sample_scenes(40, WorldConfig(), seed=0, split="all") + sample_scenes(10, WorldConfig(frames=1), seed=0)
    rng = random.Random(0)
    seen_in_held_out = set()
    for s in scenes:
        caption = scene_caption(s)
        for p in prompt_variants(caption.model_dump_json(), 8, rng, PromptDropout(), "train"):
            hits = [m for m in markers if re.search(rf"(?<![a-z]){re.escape(m)}(?![a-z])", p)]
            assert not hits, (hits, p)
        held = caption_to_prompt(caption, rng=rng, wording="held-out")
        seen_in_held_out |= {m for m in markers if m in held}
    assert len(seen_in_held_out) > 10  # the markers are real: held-out prompts do use them


# Prompts of today's template, recorded before wordings existed (commit cd8e04f): the full prompt, then two
# training variants (PromptDropout(), one random.Random(1) across the five scenes).
TODAY = [
    [
        "a red square moves up. the camera pans left. background: a gray checkered floor. style: toy animation. close-up. lighting: cool even lighting. atmosphere: playful.",
        "A large red square rises from the bottom of the frame towards the top. The shape is flat and evenly colored, in front of a gray checkered floor. The camera pans left. the camera pans left. background: a gray checkered floor. atmosphere: playful.",
        "a red square moves up. style: toy animation. lighting: cool even lighting.",
    ],
    [
        "a purple circle stays still. the camera tilts left. background: an olive cloudy texture. style: toy animation. medium shot. lighting: soft dim lighting. atmosphere: playful.",
        "a purple circle stays still. the camera tilts left. style: toy animation. medium shot.",
        "a purple circle stays still. the camera tilts left.",
    ],
    [
        "a yellow square moves to the right, a white triangle stays still and a purple circle moves to the right. the camera pans right. background: an olive checkered floor. style: toy animation. medium shot. lighting: soft dim lighting. atmosphere: playful.",
        "a yellow square moves to the right, a white triangle stays still and a purple circle moves to the right. the camera pans right.",
        "A small yellow square travels from the left of the frame towards the right. A medium white triangle stays in place in the frame. A small purple circle travels from the left of the frame towards the right. The shapes are flat and evenly colored, in front of an olive checkered floor. The camera pans right. the camera pans right. background: an olive checkered floor. style: toy animation. lighting: soft dim lighting. atmosphere: playful.",
    ],
    [
        "a green star. background: an olive cloudy texture. style: toy animation. medium shot. lighting: soft dim lighting. atmosphere: calm.",
        "A medium green star is shown. The shape is flat and evenly colored, in front of an olive cloudy texture. style: toy animation. medium shot. lighting: soft dim lighting.",
        "a green star. background: an olive cloudy texture. medium shot. lighting: soft dim lighting. atmosphere: calm.",
    ],
    [
        "a green star. background: a brown brick wall. style: toy animation. long shot. lighting: soft dim lighting. atmosphere: calm.",
        "a green star. background: a brown brick wall. lighting: soft dim lighting.",
        "A small green star is shown. The shape is flat and evenly colored, in front of a brown brick wall. background: a brown brick wall. style: toy animation. long shot.",
    ],
]


def test_the_template_wording_is_todays_prompt_word_for_word():
    videos = sample_scenes(8, WorldConfig(max_objects=3), seed=7, split="all")
    scenes = [videos[i] for i in (0, 3, 6)] + sample_scenes(2, WorldConfig(frames=1), seed=2, split="train")
    rng = random.Random(1)
    for scene, expected in zip(scenes, TODAY):
        variants = prompt_variants(scene_caption(scene).model_dump_json(), 3, rng, PromptDropout())
        assert [scene_prompt(scene), *variants[1:]] == expected
    assert MOTION_PHRASES == {"right": "moves to the right", "left": "moves to the left", "up": "moves up",
                              "down": "moves down", "still": "stays still"}
    assert [W.camera_phrase(c) for c in ("pan left", "around right", "static shot", "handheld shot")] == [
        "the camera pans left", "the camera moves around to the right", "static camera", "handheld camera"]


def vlm_caption(camera: str | None = "pan left") -> Caption:
    return Caption(
        short_description="A dog runs along a beach.", dense_description="A brown dog runs along a sunny beach.",
        background="sea", style="documentary", shot_type="wide shot", lighting="sunny", atmosphere="happy",
        camera_motion=CameraMotion(type=camera, confidence=0.9) if camera else None,
    )


def test_a_caption_without_subjects_keeps_its_text_and_varies_the_camera_and_order_only():
    caption = vlm_caption()
    assert caption_to_prompt(caption) == (
        "A dog runs along a beach. the camera pans left. background: sea. style: documentary. wide shot. "
        "lighting: sunny. atmosphere: happy."
    )
    prompts = {caption_to_prompt(caption, rng=random.Random(i), wording="train") for i in range(40)}
    assert all("A dog runs along a beach" in p and has_word(p, "pan") and has_word(p, "left") for p in prompts)
    assert any(p.startswith("A dog") for p in prompts) and any(not p.startswith("A dog") for p in prompts)
    no_camera = vlm_caption(camera=None)
    assert caption_to_prompt(no_camera, rng=random.Random(0), wording="held-out").startswith("A dog runs along a beach.")


def test_varied_training_prompts_never_drop_the_description_or_the_camera():
    scene = sample_scenes(1, WorldConfig(), seed=4, split="train")[0]
    caption = scene_caption(scene)
    everything = PromptDropout(dense=1.0, background=1.0, style=1.0, shot_type=1.0, lighting=1.0, atmosphere=1.0,
                               camera_motion=1.0)
    o = scene.objects[0]
    for i in range(20):
        p = caption_to_prompt(caption, everything, random.Random(i), "train")
        assert o.color in words(p) and o.shape in words(p) and any(has_word(p, w) for w in W.MOTION_WORDS[o.motion])
        assert all(any(has_word(p, w) for w in group) for group in W.CAMERA_WORDS[scene.camera]), p
        assert "background" not in p and "frame" not in p  # the dense description is not used either


def test_an_unknown_wording_is_refused():
    with pytest.raises(ValueError, match="unknown wording 'heldout'"):
        caption_to_prompt(vlm_caption(), wording="heldout")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    from kinema.models.text import MiniLMConfig, minilm_path

    return AutoTokenizer.from_pretrained(minilm_path()), MiniLMConfig().max_length


@pytest.mark.parametrize("wording", W.WORDING_SETS)
def test_description_and_camera_fit_the_toy_text_encoder(minilm_tokenizer, wording):
    """The head (description + camera, what the judge checks) of every prompt of the default world (up to
    two objects) fits the toy encoder's 32 kept token states, [CLS] and [SEP] included: truncation
    never cuts an attribute word."""
    tokenizer, kept = minilm_tokenizer
    scenes = sample_scenes(60, WorldConfig(), seed=11, split="all")
    assert {len(s.objects) for s in scenes} == {1, 2}
    longest = 0
    for i, scene in enumerate(scenes):
        fields = ("background", "style", "shot_type", "lighting", "atmosphere")
        bare = scene_caption(scene).model_copy(update=dict.fromkeys(fields, ""))
        for j in range(10):
            head = caption_to_prompt(bare, rng=random.Random(100 * i + j), wording=wording)
            longest = max(longest, len(tokenizer(head)["input_ids"]))
    assert longest <= kept
