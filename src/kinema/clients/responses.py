"""What MiniMax's endpoints answer, as small typed records, and the readers that build them.

Ids are kept as digit strings whatever the server sends (`file_id` is a string in query answers and a
JSON integer in retrieve answers, https://platform.minimax.io/docs/api-reference/video-generation-download);
statuses are compared case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from kinema.clients.errors import MiniMaxTransportError, error_for

# The JSON a chat message may carry: text, or a list of text / image_url parts (api-reference/text-post).
ContentPart = dict[str, str | dict[str, str]]
Message = dict[str, str | list[ContentPart]]


TaskState = Literal["pending", "success", "fail"]


@dataclass(frozen=True)
class TaskStatus:
    """One answer of `GET /v1/query/video_generation`.

    Attributes:
        task_id: the task.
        status: the API's status text as sent (`Preparing`, `Queueing`, `Processing`, `Success`, `Fail`).
        file_id: the output file id as a digit string, once the task succeeded.
        video_width: output width in pixels, once succeeded (0 if not given).
        video_height: output height in pixels, once succeeded (0 if not given).
        status_code: `base_resp.status_code` of this answer.
        status_msg: `base_resp.status_msg` of this answer.
    """

    task_id: str
    status: str
    file_id: str | None = None
    video_width: int = 0
    video_height: int = 0
    status_code: int = 0
    status_msg: str = ""

    @property
    def state(self) -> TaskState:
        """`success`, `fail` or `pending`, whatever the case and tense of `status`."""
        s = self.status.strip().lower()
        if s in ("success", "succeeded", "succeed"):
            return "success"
        if s in ("fail", "failed", "failure"):
            return "fail"
        return "pending"


@dataclass(frozen=True)
class FileInfo:
    """The `file` object of `GET /v1/files/retrieve` (file_id normalised to a string)."""

    file_id: str
    download_url: str
    bytes: int = 0
    filename: str = ""
    backup_download_url: str | None = None


@dataclass(frozen=True)
class VideoResult:
    """A finished generation: where the video is and what the API said about it."""

    task_id: str
    file_id: str
    path: Path
    video_width: int
    video_height: int
    bytes: int


@dataclass(frozen=True)
class Usage:
    """Token counts of one chat completion."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True)
class ChatCompletion:
    """The first choice of a chat completion, with usage and MiniMax's sensitivity flags."""

    content: str
    finish_reason: str
    model: str
    usage: Usage = field(default_factory=Usage)
    input_sensitive: bool = False
    output_sensitive: bool = False


def parse_chat_completion(data: dict, *, endpoint: str) -> ChatCompletion:
    """Read a MiniMax / OpenAI chat-completion body into a `ChatCompletion`.

    Raises:
        MiniMaxContentError: the input or output was flagged as sensitive.
        MiniMaxTransportError: the body has no choices.
    """
    input_sensitive = bool(data.get("input_sensitive"))
    output_sensitive = bool(data.get("output_sensitive"))
    if input_sensitive or output_sensitive:
        which = "input" if input_sensitive else "output"
        raise error_for(1026 if input_sensitive else 1027, f"the {which} was flagged as sensitive",
                        http_status=200, trace_id="", endpoint=endpoint)
    choices = data.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        raise MiniMaxTransportError(f"{endpoint} returned no choices")
    message = choices[0].get("message") or {}
    usage = data.get("usage") or {}
    return ChatCompletion(
        content=str(message.get("content") or ""),
        finish_reason=str(choices[0].get("finish_reason") or ""),
        model=str(data.get("model") or ""),
        usage=Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            total_tokens=int(usage.get("total_tokens") or 0),
        ),
        input_sensitive=input_sensitive,
        output_sensitive=output_sensitive,
    )


def json_or_none(resp: httpx.Response) -> dict | None:
    try:
        data = resp.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def base_resp(data: dict | None) -> tuple[int, str]:
    base = (data or {}).get("base_resp") or {}
    if not isinstance(base, dict):
        return 0, ""
    try:
        code = int(base.get("status_code") or 0)
    except (TypeError, ValueError):
        code = 1000  # an unreadable code is an unknown error, not success
    return code, str(base.get("status_msg") or "")


def id_or_none(value: object) -> str | None:
    """Ids arrive as strings or JSON numbers (query vs retrieve answers); kinema keeps them as digit strings."""
    if value is None or value == "":
        return None
    return str(value)
