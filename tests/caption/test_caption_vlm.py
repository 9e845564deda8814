"""The VLM caption protocol: JSON schema, reply parsing, retry with the validation error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kinema.caption.schema import VLM_FIELDS, Caption, caption_to_prompt, vlm_caption_schema
from kinema.caption.vlm import CaptionError, build_messages, caption_with_vlm, parse_vlm_caption
from kinema.clients.minimax import ChatCompletion, Usage

VALID = {
    "short_description": "A red square slides to the right.",
    "dense_description": "A bright red square moves steadily from left to right across a dark blue field.",
    "background": "a plain dark blue backdrop",
    "style": "animation",
    "shot_type": "long shot",
    "lighting": "flat, even lighting",
    "atmosphere": "calm",
}


def test_schema_is_flat_and_complete():
    schema = vlm_caption_schema()
    assert tuple(schema["properties"]) == VLM_FIELDS and schema["required"] == list(VLM_FIELDS)
    assert "$defs" not in json.dumps(schema) and schema["additionalProperties"] is False
    # Not from the VLM: camera_motion (the classifier) and subjects (synthetic data's ground truth).
    assert set(VLM_FIELDS) | {"camera_motion", "subjects"} == set(Caption.model_fields)


@pytest.mark.parametrize("wrap", [
    "{}",
    "```json\n{}\n```",
    "<think>\nThe frames show a square {not json}.\n</think>\n{}",
    "Here is the caption: {} Hope this helps.",
])
def test_parse_tolerates_wrappers(wrap):
    caption = parse_vlm_caption(wrap.replace("{}", json.dumps(VALID)))
    assert caption.short_description == VALID["short_description"] and caption.camera_motion is None
    assert caption_to_prompt(caption).startswith("A red square slides to the right.")


@pytest.mark.parametrize("text, message", [
    ("I cannot see the image.", "no JSON object"),
    ('{"short_description": "A red', "no JSON object"),
    ('{"short_description": "x",}', "not valid JSON"),
    ("[1, 2]", "no JSON object"),
    (json.dumps({k: v for k, v in VALID.items() if k != "lighting"}), "field 'lighting' is missing"),
    (json.dumps({**VALID, "mood": "calm"}), "field 'mood' is not allowed"),
    (json.dumps({**VALID, "style": 3}), "field 'style'"),
    (json.dumps({**VALID, "short_description": "  "}), "field 'short_description'"),
])
def test_parse_rejects_with_a_useful_message(text, message):
    with pytest.raises(CaptionError, match=message):
        parse_vlm_caption(text)


def test_truncated_reply_says_so():
    with pytest.raises(CaptionError, match="token limit"):
        parse_vlm_caption('{"short_description": "A red', truncated=True)


class ScriptedChat:
    """Replies from a list, recording every conversation it was sent."""

    def __init__(self, replies: list[str]):
        self.replies = replies
        self.seen: list[list] = []

    def complete(self, messages, json_schema, schema_name):
        self.seen.append(list(messages))
        content = self.replies[min(len(self.seen) - 1, len(self.replies) - 1)]
        return ChatCompletion(content=content, finish_reason="stop", model="m", usage=Usage(100, 20, 120))


FRAMES = [np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)]


def test_invalid_reply_is_sent_back_with_the_error():
    chat = ScriptedChat(["not json", json.dumps({**VALID, "style": None}), json.dumps(VALID)])
    result = caption_with_vlm(chat, FRAMES, is_image=False, max_attempts=3)
    assert result.replies == 3 and result.usage == Usage(300, 60, 360)
    assert result.caption.style == "animation"
    last = chat.seen[-1]
    assert last[-2] == {"role": "assistant", "content": json.dumps({**VALID, "style": None})}
    assert "field 'style'" in last[-1]["content"] and last[-1]["role"] == "user"


def test_gives_up_after_max_attempts_and_reports_usage():
    chat = ScriptedChat(["still not json"])
    with pytest.raises(CaptionError, match="after 2 replies") as info:
        caption_with_vlm(chat, FRAMES, is_image=False, max_attempts=2)
    assert info.value.usage.total_tokens == 240 and len(chat.seen) == 2


def test_messages_carry_frames_as_jpeg_data_urls():
    messages = build_messages(FRAMES, is_image=False)
    assert messages[0]["role"] == "system" and "2 frames" in messages[0]["content"]
    images = [p for p in messages[1]["content"] if p["type"] == "image_url"]
    assert len(images) == 2 and all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in images)
