"""Captioning with a vision-language model: ask for the JSON caption, validate it, retry with the error.

The same loop serves every chat backend (MiniMax's `chatcompletion_v2`, any OpenAI-compatible
endpoint): frames go out as JPEG data URLs after the instructions; the reply must be one JSON object
with exactly the `VLM_FIELDS` (a JSON-schema response format is requested where the API offers it).
A reply that is not JSON or breaks the schema is sent back with the validation error and the model
answers again, up to `max_attempts` times. Camera motion is not asked for: it comes from the
camera-motion classifier (`kinema.data.camera`) and is merged in by the dataset runner.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kinema.caption.frames import jpeg_data_url
from kinema.caption.schema import VLM_FIELDS, Caption, vlm_caption_schema
from kinema.clients.minimax import ChatCompletion, Message, Usage

SCHEMA_NAME = "video_caption"

INSTRUCTIONS = """You write structured captions for a text-to-video training set.
You see {what}. Describe what is visible; do not guess names, brands or text you cannot read.
Answer with one JSON object and nothing else, with exactly these string fields:
- short_description: one sentence with the main subject and what it does.
- dense_description: a detailed paragraph: subjects, their appearance, actions and how they change over time.
- background: the environment behind the subject.
- style: e.g. documentary, cinematic, realistic, animation, 3D render, sci-fi.
- shot_type: e.g. close-up, medium shot, long shot, aerial shot, over-the-shoulder.
- lighting: the light in the scene, e.g. soft daylight, backlit, neon, low-key.
- atmosphere: the mood, e.g. cozy, tense, serene, lively."""


class CaptionError(ValueError):
    """A VLM reply that is not a valid caption; the message is written to be sent back to the model.

    Attributes:
        usage: the tokens spent on the failed attempts (zero when raised by the parser alone).
    """

    def __init__(self, message: str, usage: Usage | None = None):
        super().__init__(message)
        self.usage = usage or Usage()


class _VLMCaption(BaseModel):
    """What the VLM must write: the `VLM_FIELDS`, nothing else (pydantic twin of `vlm_caption_schema`)."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    short_description: str = Field(min_length=1)
    dense_description: str = Field(min_length=1)
    background: str
    style: str
    shot_type: str
    lighting: str
    atmosphere: str


assert tuple(_VLMCaption.model_fields) == VLM_FIELDS

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def parse_vlm_caption(text: str, *, truncated: bool = False) -> Caption:
    """Parse a VLM reply into a `Caption` (without camera motion).

    Tolerates what models wrap around JSON: `<think>` blocks (MiniMax-M3), code fences, prose
    before or after the object. Everything else must match the schema exactly.

    Raises:
        CaptionError: a sentence saying what is wrong, e.g. which fields are missing.
    """
    body = _FENCE.sub("", _THINK.sub("", text).strip()).strip()
    first, last = body.find("{"), body.rfind("}")
    if first < 0 or last <= first:
        hint = " (the reply was cut off: it hit the token limit)" if truncated else ""
        raise CaptionError(f"the reply contains no JSON object{hint}")
    try:
        data = json.loads(body[first : last + 1])
    except json.JSONDecodeError as e:
        hint = " (the reply was cut off: it hit the token limit)" if truncated else ""
        raise CaptionError(f"the reply is not valid JSON: {e.msg} at character {e.pos}{hint}") from e
    if not isinstance(data, dict):
        raise CaptionError("the reply must be a JSON object")
    try:
        fields = _VLMCaption.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(_describe(err) for err in e.errors())
        raise CaptionError(f"the JSON does not match the caption schema: {problems}") from e
    return Caption(**fields.model_dump())


def _describe(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "object"
    if err["type"] == "missing":
        return f"field '{where}' is missing"
    if err["type"] == "extra_forbidden":
        return f"field '{where}' is not allowed"
    return f"field '{where}': {err['msg']}"


class ChatBackend(Protocol):
    """A chat-completion API that takes images; implemented per provider."""

    def complete(self, messages: Sequence[Message], json_schema: dict, schema_name: str) -> ChatCompletion:
        """One completion; `json_schema` is sent as a response format where the API supports it."""
        ...


@dataclass(frozen=True)
class CaptionResult:
    """A validated caption, the tokens it cost and how many model replies it took (0 without a model)."""

    caption: Caption
    usage: Usage
    replies: int


def build_messages(frames: Sequence[np.ndarray], *, is_image: bool, jpeg_quality: int = 85) -> list[Message]:
    """The system instructions and a user message with the frames as JPEG data URLs.

    Args:
        frames: (H, W, 3) uint8 RGB frames in time order (one for an image).
        is_image: whether the item is a still image rather than a clip.
    """
    what = "one image" if is_image else f"{len(frames)} frames of one video clip in time order, starting with its first frame"
    parts: list = [{"type": "text", "text": "Caption this " + ("image." if is_image else "clip.")}]
    parts += [{"type": "image_url", "image_url": {"url": jpeg_data_url(f, jpeg_quality)}} for f in frames]
    return [{"role": "system", "content": INSTRUCTIONS.format(what=what)}, {"role": "user", "content": parts}]


def caption_with_vlm(
    chat: ChatBackend, frames: Sequence[np.ndarray], *, is_image: bool, max_attempts: int = 3
) -> CaptionResult:
    """Ask `chat` for a caption of `frames`; on an invalid reply, send the error back and ask again.

    Raises:
        CaptionError: no valid caption after `max_attempts` replies (the last error in the message).
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    messages = build_messages(frames, is_image=is_image)
    schema = vlm_caption_schema()
    prompt_tokens = completion_tokens = 0
    for attempt in range(1, max_attempts + 1):
        reply = chat.complete(messages, schema, SCHEMA_NAME)
        prompt_tokens += reply.usage.prompt_tokens
        completion_tokens += reply.usage.completion_tokens
        try:
            caption = parse_vlm_caption(reply.content, truncated=reply.finish_reason == "length")
        except CaptionError as e:
            error = e
            messages = [
                *messages,
                {"role": "assistant", "content": reply.content},
                {"role": "user", "content": f"That is not a valid caption: {e}. Reply again with only the JSON object."},
            ]
            continue
        usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
        return CaptionResult(caption=caption, usage=usage, replies=attempt)
    usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
    raise CaptionError(f"no valid caption after {max_attempts} replies; last problem: {error}", usage)
