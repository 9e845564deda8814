"""Structured captions for toy-world scenes, and the reverse: reading a scene spec back from a prompt.

The caption is the same `kinema.caption.schema.Caption` real data gets, filled from the ground truth, so
`caption_to_prompt(scene_caption(scene))` reads like "a red circle moves to the right. background: ...".
Its `subjects` carry each object's color, shape and motion, so `scene_prompt(scene, "held-out", rng)`
can say the same in a wording training never used ("a circle in red gliding towards the left; ...").
`parse_prompt` recovers the colors, shapes, motions and camera named in such a prompt; the adherence
eval uses it to turn the renderer into a ground-truth "generator" of any prompt.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from kinema.caption.schema import CameraMotion, Caption, Subject, caption_to_prompt
from kinema.caption.wording import WordingSet, camera_phrase, motion_phrase, subject_phrase
from kinema.toyworld.scene import CAMERAS, COLORS, MOTIONS, SHAPES, ObjectTruth, SceneTruth

# The template wording of each motion: "moves to the right", ..., "stays still".
MOTION_PHRASES: dict[str, str] = {m: motion_phrase(m, "template", random.Random(0))[0] for m in MOTIONS}
_PATH_PHRASES = {
    "right": "travels from the left of the frame towards the right",
    "left": "travels from the right of the frame towards the left",
    "up": "rises from the bottom of the frame towards the top",
    "down": "sinks from the top of the frame towards the bottom",
    "still": "stays in place in the frame",
}
_SHOT_TYPES = {"small": "long shot", "medium": "medium shot", "large": "close-up"}
_LIGHTING = {
    "gray": "cool even lighting",
    "slate": "cool even lighting",
    "beige": "warm even lighting",
    "brown": "soft dim lighting",
    "olive": "soft dim lighting",
}
STYLE = "toy animation"


def object_subject(obj: ObjectTruth, with_motion: bool = True) -> Subject:
    """An object as a caption's structured subject (no motion in a still image)."""
    return Subject(color=obj.color, noun=obj.shape, motion=obj.motion if with_motion else None)


def object_phrase(obj: ObjectTruth, with_motion: bool = True) -> str:
    """'a red circle moves to the right' (or 'a red circle' for still images): the template wording."""
    return subject_phrase(object_subject(obj, with_motion), "template", random.Random(0))


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def scene_caption(scene: SceneTruth) -> Caption:
    """The structured caption of a scene, consistent with its ground truth.

    Still images (one frame) name no motion and no camera motion.
    """
    video = scene.frames > 1
    short = _join([object_phrase(o, video) for o in scene.objects])
    sentences = []
    for o in scene.objects:
        action = _PATH_PHRASES[o.motion] if video else "is shown"
        sentences.append(f"A {o.size} {o.color} {o.shape} {action}.")
    subject = "shapes are" if len(scene.objects) > 1 else "shape is"
    sentences.append(f"The {subject} flat and evenly colored, in front of {scene.background}.")
    if video:
        phrase = camera_phrase(scene.camera)  # "the camera pans left" or "static camera"
        steady = scene.camera in ("static shot", "handheld shot")
        sentences.append(f"The shot uses a {phrase}." if steady else f"{phrase[0].upper()}{phrase[1:]}.")
    largest = max(scene.objects, key=lambda o: o.radius)
    moving = video and (scene.camera != "static shot" or any(o.motion != "still" for o in scene.objects))
    return Caption(
        short_description=short,
        dense_description=" ".join(sentences),
        background=scene.background,
        style=STYLE,
        shot_type=_SHOT_TYPES[largest.size],
        lighting=_LIGHTING[scene.tint],
        atmosphere=("lively" if scene.camera == "handheld shot" else "playful") if moving else "calm",
        camera_motion=CameraMotion(type=scene.camera, confidence=1.0) if video else None,
        subjects=tuple(object_subject(o, video) for o in scene.objects),
    )


def scene_prompt(scene: SceneTruth, wording: WordingSet = "template", rng: random.Random | None = None) -> str:
    """The full prompt of a scene, every field kept. In the template wording it is deterministic
    (training's first prompt variant; what the evals ask for by default); in the "train" or "held-out"
    wording, `rng` (default: seeded 0) picks the phrasings."""
    return caption_to_prompt(scene_caption(scene), rng=rng, wording=wording)


@dataclass(frozen=True)
class PromptSpec:
    """What a prompt asks for: (color, shape, motion or None) per object, and the camera (or None)."""

    objects: tuple[tuple[str, str, str | None], ...]
    camera: str | None

    @classmethod
    def of(cls, scene: SceneTruth) -> PromptSpec:
        """What the full prompt of `scene` asks for, in any wording (still images name no motion or camera)."""
        video = scene.frames > 1
        objects = tuple((o.color, o.shape, o.motion if video else None) for o in scene.objects)
        return cls(objects, scene.camera if video else None)


_OBJECT_RE = re.compile(
    r"\b(?:a|an)\s+(?:(?:small|medium|large)\s+)?(" + "|".join(COLORS) + r")\s+(" + "|".join(SHAPES) + r")\b"
    r"(?:\s+(" + "|".join(re.escape(p) for p in MOTION_PHRASES.values()) + r"))?",
    re.IGNORECASE,
)


def parse_prompt(prompt: str) -> PromptSpec:
    """Read the objects and camera motion a toy-world prompt names.

    Understands the phrasing `scene_caption` and `caption_to_prompt` produce ("a red circle moves to the
    right and a blue star moves up. ... the camera pans left.").

    Raises:
        ValueError: if the prompt names no "<color> <shape>" object.
    """
    by_phrase = {p: m for m, p in MOTION_PHRASES.items()}
    objects = tuple(
        (m.group(1).lower(), m.group(2).lower(), by_phrase[m.group(3).lower()] if m.group(3) else None)
        for m in _OBJECT_RE.finditer(prompt)
    )
    if not objects:
        raise ValueError(f"the prompt {prompt!r} names no toy-world object such as 'a red circle'")
    lowered = prompt.lower()
    cameras = [c for c in CAMERAS if camera_phrase(c) in lowered]
    return PromptSpec(objects, cameras[0] if cameras else None)
