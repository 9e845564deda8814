"""The one structured caption schema, shared by captioners, the toy world and training.

The fields follow the structured captions of the HunyuanVideo report (arXiv:2412.03603, "Data
Annotation").

A caption is the JSON a vision-language model writes for a clip or image: a short and a dense
description, background, style, shot type, lighting, atmosphere, and -- merged in from the
camera-motion classifier only when it is confident -- the camera motion, one of 14 classes.
`caption_to_prompt` turns a caption into the text the generator is trained on, dropping fields at
random so the model learns from both terse and detailed prompts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

CameraMotionType = Literal[
    "zoom in",
    "zoom out",
    "pan up",
    "pan down",
    "pan left",
    "pan right",
    "tilt up",
    "tilt down",
    "tilt left",
    "tilt right",
    "around left",
    "around right",
    "static shot",
    "handheld shot",
]
# The 14 camera-motion classes of the HunyuanVideo report, in a fixed order (class index = position).
CAMERA_MOTIONS: tuple[str, ...] = get_args(CameraMotionType)


class CameraMotion(BaseModel):
    """A camera-motion class with the classifier's confidence in [0, 1]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: CameraMotionType
    confidence: float = Field(ge=0.0, le=1.0)


class Caption(BaseModel):
    """Structured caption of one clip or image."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    short_description: str = Field(min_length=1, description="One sentence: the main subject and action.")
    dense_description: str = Field(min_length=1, description="A detailed paragraph: subjects, actions, scene transitions.")
    background: str = Field(description="The environment behind the subject.")
    style: str = Field(description="e.g. documentary, cinematic, realistic, animation, sci-fi.")
    shot_type: str = Field(description="e.g. aerial shot, close-up, medium shot, long shot.")
    lighting: str = Field(description="The light in the scene.")
    atmosphere: str = Field(description="The mood, e.g. cozy, tense, mysterious.")
    camera_motion: CameraMotion | None = Field(
        default=None, description="Only present when the camera-motion classifier is confident."
    )


def caption_json_schema() -> dict:
    """The JSON Schema of `Caption`, for VLM APIs that accept a `json_schema` response format."""
    return Caption.model_json_schema()


# The fields a vision-language model writes; camera motion comes from the classifier instead.
VLM_FIELDS: tuple[str, ...] = (
    "short_description",
    "dense_description",
    "background",
    "style",
    "shot_type",
    "lighting",
    "atmosphere",
)


def vlm_caption_schema() -> dict:
    """The flat JSON Schema a VLM is asked to fill: the `VLM_FIELDS` as required strings.

    Unlike `caption_json_schema` it has no `$defs`, `anyOf` or nulls, so it stays within the
    types MiniMax's `json_schema` response format documents
    (https://platform.minimax.io/docs/api-reference/text-post) and what
    OpenAI-compatible servers accept in strict mode.
    """
    fields = Caption.model_fields
    return {
        "type": "object",
        "properties": {
            name: {"type": "string", "description": fields[name].description or name.replace("_", " ")}
            for name in VLM_FIELDS
        },
        "required": list(VLM_FIELDS),
        "additionalProperties": False,
    }


def merge_camera_motion(caption: Caption, motion: CameraMotion | None, threshold: float = 0.8) -> Caption:
    """Return `caption` with `motion` set when its confidence reaches `threshold`: only confident camera
    classes go into the caption, as in the HunyuanVideo report (arXiv:2412.03603)."""
    if motion is None or motion.confidence < threshold:
        return caption
    return caption.model_copy(update={"camera_motion": motion})


@dataclass(frozen=True)
class PromptDropout:
    """Per-field probabilities of leaving a field out of a training prompt.

    `dense` is the probability of using the dense instead of the short description.
    """

    dense: float = 0.3
    background: float = 0.5
    style: float = 0.5
    shot_type: float = 0.5
    lighting: float = 0.5
    atmosphere: float = 0.5
    camera_motion: float = 0.1

    def __post_init__(self) -> None:
        for name, p in vars(self).items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"PromptDropout.{name} must be a probability in [0, 1], got {p}")


_CAMERA_PHRASES = {
    "static shot": "static camera",
    "handheld shot": "handheld camera",
}


def camera_phrase(motion: str) -> str:
    """Natural-language phrase for a camera-motion class, e.g. 'pan left' -> 'the camera pans left'."""
    if motion in _CAMERA_PHRASES:
        return _CAMERA_PHRASES[motion]
    verb, direction = motion.split(" ")
    verb = {"zoom": "zooms", "pan": "pans", "tilt": "tilts", "around": "moves around to the"}[verb]
    return f"the camera {verb} {direction}"


def caption_to_prompt(
    caption: Caption, dropout: PromptDropout | None = None, rng: random.Random | None = None
) -> str:
    """Build the generator's text prompt from a caption.

    Without `dropout` the prompt is deterministic: the short description, the camera motion, then
    every other field.
    With `dropout` (training), fields are left out at random with the given probabilities.
    """
    rng = rng or random.Random(0)

    def keep(p: float) -> bool:
        return dropout is None or rng.random() >= p

    use_dense = dropout is not None and rng.random() < dropout.dense
    parts = [caption.dense_description if use_dense else caption.short_description]
    # Camera motion right after the description: it is what the user controls, and short text
    # encoders (the toy model keeps 32 tokens) must not truncate it away.
    if caption.camera_motion is not None and keep(dropout.camera_motion if dropout else 0.0):
        parts.append(camera_phrase(caption.camera_motion.type))
    fields = [
        ("background", caption.background, "background: {}"),
        ("style", caption.style, "style: {}"),
        ("shot_type", caption.shot_type, "{}"),
        ("lighting", caption.lighting, "lighting: {}"),
        ("atmosphere", caption.atmosphere, "atmosphere: {}"),
    ]
    for name, value, template in fields:
        if value and keep(getattr(dropout, name, 0.0)):
            parts.append(template.format(value))
    return ". ".join(p.strip().rstrip(".") for p in parts) + "."
