"""The one structured caption schema, shared by captioners, the toy world and training.

The fields follow the structured captions of the HunyuanVideo report (arXiv:2412.03603, "Data
Annotation").

A caption is the JSON a vision-language model writes for a clip or image: a short and a dense
description, background, style, shot type, lighting, atmosphere, and -- merged in from the
camera-motion classifier only when it is confident -- the camera motion, one of 14 classes.
Synthetic data that knows its ground truth (the toy world) also fills `subjects`: each subject's color,
noun and screen-space motion, structured, so a prompt can say them in many wordings.

`caption_to_prompt` turns a caption into the text the generator is trained on, dropping fields at
random so the model learns from both terse and detailed prompts, in the template wording or in a
random wording from `kinema.caption.wording`'s train or held-out banks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from kinema.caption.wording import (
    FIELD_LABELS,
    HEAD_ORDERS,
    WORDING_SETS,
    WordingSet,
    camera_phrase,
    describe_subjects,
)

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


SubjectMotion = Literal["right", "left", "up", "down", "still"]


class Subject(BaseModel):
    """One subject of a clip, structured: what `caption_to_prompt` can put in many wordings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    color: str = Field(min_length=1, description="e.g. red")
    noun: str = Field(min_length=1, description="e.g. circle")
    motion: SubjectMotion | None = Field(
        default=None, description="Where it moves in the frame (screen space); None in a still image."
    )


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
    subjects: tuple[Subject, ...] | None = Field(
        default=None, description="The subjects, structured, where the data knows them (synthetic clips); "
        "a VLM caption leaves this out. `short_description` says the same in the template wording."
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


def caption_to_prompt(
    caption: Caption,
    dropout: PromptDropout | None = None,
    rng: random.Random | None = None,
    wording: WordingSet = "template",
) -> str:
    """Build the generator's text prompt from a caption.

    Without `dropout` the prompt keeps every field: the description, the camera motion, then the rest.
    With `dropout` (training), fields are left out at random with the given probabilities.

    `wording` "template" is the one fixed wording (the short or dense description as written). "train"
    and "held-out" draw each part's phrasing from that set of `kinema.caption.wording`'s banks: the
    description is rendered from `caption.subjects` when the caption has them (otherwise the text is
    kept), the camera phrase and the order of the two vary, and both are always kept -- only the
    fields after them are dropped -- so every attribute word stays where the model can use it.
    """
    if wording not in WORDING_SETS:
        raise ValueError(f"unknown wording {wording!r}; expected one of {', '.join(WORDING_SETS)}")
    rng = rng or random.Random(0)
    template = wording == "template"

    def keep(p: float) -> bool:
        return dropout is None or rng.random() >= p

    # 1. The description: the subjects in words, or the caption's own text (dense at random in training).
    if not template and caption.subjects:
        description = describe_subjects(caption.subjects, wording, rng)
    else:
        use_dense = dropout is not None and rng.random() < dropout.dense
        description = caption.dense_description if use_dense else caption.short_description
    # 2. The camera motion right after (or, reworded, before) the description: it is what the user
    # controls, and short text encoders (the toy model keeps 32 tokens) must not truncate it away.
    head = description
    if caption.camera_motion is not None and (not template or keep(dropout.camera_motion if dropout else 0.0)):
        camera = camera_phrase(caption.camera_motion.type, wording, rng)
        head = HEAD_ORDERS.pick(wording, rng).format(subject=description.strip().rstrip("."), camera=camera)
    # 3. The other fields, each possibly dropped.
    parts = [head]
    for name in ("background", "style", "shot_type", "lighting", "atmosphere"):
        value = getattr(caption, name)
        if value and keep(getattr(dropout, name, 0.0)):
            parts.append(FIELD_LABELS[name].pick(wording, rng).format(value))
    return ". ".join(p.strip().rstrip(".") for p in parts) + "."
