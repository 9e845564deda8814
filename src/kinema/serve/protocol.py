"""MiniMax's video API as kinema's server speaks it: status codes, statuses and JSON shapes.

Written from MiniMax's video generation reference (https://platform.minimax.io/docs/api-reference/video-generation-intro
and the -t2v, -query and -download pages; the mainland twins are under https://platform.minimaxi.com/docs/).
Business errors are HTTP 200 with a non-zero `base_resp.status_code` (MiniMax's own clients call
`raise_for_status()` and then read `base_resp`, so they must get a 200 to see the message); `task_id`
and `file_id` are digit strings in create/query answers and `file.file_id` is a JSON integer in
retrieve answers (as MiniMax's responses carry it). The pydantic models here are what
`/openapi.json` publishes; the request model accepts MiniMax's fields plus kinema's own
(`seed`, `steps`, `frames`, `width`, `height`, ...), and ignores fields it does not know, as MiniMax does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# base_resp.status_code values this server answers (MiniMax's error codes:
# https://platform.minimax.io/docs/api-reference/errorcode).
OK = 0
UNKNOWN_ERROR = 1000  # generation crashed or was interrupted too often
RATE_LIMITED = 1002  # per-key requests per minute, or the queue is full
UNAUTHORIZED = 1004  # missing or unknown API key
INVALID_PARAMS = 2013

Status = Literal["Preparing", "Queueing", "Processing", "Success", "Fail"]
PushStatus = Literal["processing", "success", "failed"]

MAX_PROMPT_CHARS = 2000  # MiniMax's limit on a video prompt (the -t2v page)
RESOLUTIONS = ("512P", "720P", "768P", "1080P")


def push_status(status: Status) -> PushStatus | None:
    """The lower-case status a callback push carries (MiniMax's callback section of the -t2v page), or None
    for a task still queued."""
    return {"Preparing": "processing", "Processing": "processing", "Success": "success", "Fail": "failed"}.get(status)


class BaseResp(BaseModel):
    status_code: int = Field(description="0 on success; MiniMax error code otherwise (1002, 1004, 2013, ...)")
    status_msg: str = Field(description='"success", or what went wrong')


def base_resp(code: int = OK, msg: str = "success") -> dict[str, int | str]:
    return {"status_code": code, "status_msg": msg}


class VideoGenerationRequest(BaseModel):
    """`POST /v1/video_generation`: MiniMax's text-to-video fields and kinema's sampling options."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(description="the served model's name, or any MiniMax video model name (mapped to it)")
    prompt: str = Field(description="what the video shows, at most 2000 characters")
    prompt_optimizer: bool | None = Field(None, description="accepted for compatibility; kinema follows the prompt")
    fast_pretreatment: bool | None = Field(None, description="accepted for compatibility; ignored")
    aigc_watermark: bool | None = Field(None, description="accepted for compatibility; ignored")
    duration: int | None = Field(None, description="6 or 10 (MiniMax); the served model's own length is used")
    resolution: str | None = Field(None, description="512P, 720P, 768P or 1080P (MiniMax); use width/height")
    first_frame_image: str | None = Field(None, description="not supported: kinema serves text-to-video")
    last_frame_image: str | None = Field(None, description="not supported: kinema serves text-to-video")
    subject_reference: list[dict[str, object]] | None = Field(None, description="not supported")
    callback_url: str | None = Field(None, description="http(s) URL that receives a challenge, then status pushes")
    seed: int | None = Field(None, description="kinema: random seed (default: random, recorded with the task)")
    steps: int | None = Field(None, description="kinema: sampling steps (default: the checkpoint's)")
    frames: int | None = Field(None, description="kinema: number of frames, k·unit+1")
    width: int | None = Field(None, description="kinema: width in pixels")
    height: int | None = Field(None, description="kinema: height in pixels")
    negative_prompt: str | None = Field(None, description="kinema: what to steer away from (with cfg_scale > 1)")
    cfg_scale: float | None = Field(None, description="kinema: classifier-free guidance scale (1 = off)")
    shift: float | None = Field(None, description="kinema: time shift of the sampling schedule")
    guidance: float | None = Field(None, description="kinema: embedded guidance (guidance-distilled models)")


class CreateResponse(BaseModel):
    task_id: str = Field(description='digit string; "" when the request was refused')
    base_resp: BaseResp


class QueryResponse(BaseModel):
    task_id: str
    status: Status | Literal[""] = Field(description='"" when the task is unknown')
    file_id: str | None = Field(None, description="digit string, once Success")
    video_width: int | None = Field(None, description="once Success")
    video_height: int | None = Field(None, description="once Success")
    base_resp: BaseResp


class FileObject(BaseModel):
    file_id: int
    bytes: int
    created_at: int
    filename: str
    purpose: str
    download_url: str = Field(description="signed, expiring URL; no Authorization header needed; supports Range")


class RetrieveResponse(BaseModel):
    file: FileObject | None = None
    base_resp: BaseResp


class ErrorResponse(BaseModel):
    base_resp: BaseResp


class TaskSummary(BaseModel):
    task_id: str
    status: Status
    prompt: str
    created_at: int
    file_id: str | None = None
    video_width: int | None = None
    video_height: int | None = None
    status_msg: str = ""


class TaskList(BaseModel):
    tasks: list[TaskSummary]
    base_resp: BaseResp


class ServiceInfo(BaseModel):
    model: str
    auth_required: bool
    steps: int
    frames: int
    width: int
    height: int
    fps: float
    workers: int = Field(description="configured generation workers")
    workers_running: int = Field(description="worker processes alive now (a restarting worker is not)")
    queued: int = Field(description="tasks waiting for a worker")
    base_resp: BaseResp
