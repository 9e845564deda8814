"""Video-generation request bodies for MiniMax, validated per model before they are sent.

MiniMax accepts one endpoint (`POST /v1/video_generation`) for four modes -- text-to-video (t2v),
image-to-video (i2v), first+last frame (fl2v) and subject reference (s2v) -- and which fields are
valid depends on the model (https://platform.minimax.io/docs/api-reference/video-generation-t2v and
the -i2v, -fl2v, -s2v pages; users trip over this). `build_video_body` checks a `VideoRequest` against
the table below and builds exactly the body the model accepts:
01-series models never receive `duration`/`resolution`, `MiniMax-Hailuo-2.3-Fast` needs a first
frame, fl2v is `MiniMax-Hailuo-02` only, s2v sends `subject_reference`.

Model names not in the table (e.g. a self-hosted server's own names) are passed through with the
fields the caller set, since only that server knows what it accepts.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Literal

Mode = Literal["t2v", "i2v", "fl2v", "s2v"]
JSONScalar = str | int | float | bool | None

MAX_PROMPT_CHARS = 2000  # the t2v page: "≤ 2000 characters"
MAX_IMAGE_BYTES = 20 * 1024 * 1024  # "< 20 MB"
MIN_SHORT_SIDE = 300  # "short side > 300 px"
ASPECT_RANGE = (2 / 5, 5 / 2)  # "aspect ratio between 2:5 and 5:2"

# duration (s) -> allowed resolutions, for one model in one mode.
Matrix = dict[int, tuple[str, ...]]
_HAILUO_T2V: Matrix = {6: ("768P", "1080P"), 10: ("768P",)}
_HAILUO_02_I2V: Matrix = {6: ("512P", "768P", "1080P"), 10: ("512P", "768P")}


@dataclass(frozen=True)
class VideoModel:
    """What one MiniMax video model accepts.

    Attributes:
        modes: for each supported mode, the duration -> resolutions matrix, or None when the model
            takes no `duration`/`resolution` at all (the 01 series: fixed 6 s, 720P).
        fast_pretreatment: whether the model accepts `fast_pretreatment` (not in fl2v/s2v).
    """

    modes: dict[str, Matrix | None]
    fast_pretreatment: bool = False


# The duration × resolution matrix of the video-generation pages (t2v, i2v, fl2v, s2v).
VIDEO_MODELS: dict[str, VideoModel] = {
    "MiniMax-Hailuo-2.3": VideoModel({"t2v": _HAILUO_T2V, "i2v": _HAILUO_T2V}, fast_pretreatment=True),
    "MiniMax-Hailuo-2.3-Fast": VideoModel({"i2v": _HAILUO_T2V}, fast_pretreatment=True),
    "MiniMax-Hailuo-02": VideoModel(
        {"t2v": _HAILUO_T2V, "i2v": _HAILUO_02_I2V, "fl2v": _HAILUO_T2V}, fast_pretreatment=True
    ),
    "T2V-01-Director": VideoModel({"t2v": None}),
    "T2V-01": VideoModel({"t2v": None}),
    "I2V-01-Director": VideoModel({"i2v": None}),
    "I2V-01-live": VideoModel({"i2v": None}),
    "I2V-01": VideoModel({"i2v": None}),
    "S2V-01": VideoModel({"s2v": None}),
    # Legacy name still used by gateways and old SDKs (not in the current docs).
    "video-01": VideoModel({"t2v": None, "i2v": None}),
}
DEFAULT_VIDEO_MODEL = "MiniMax-Hailuo-02"


@dataclass(frozen=True)
class VideoRequest:
    """One video generation request, in kinema's terms.

    Images are public URLs, data URLs, or local file paths (turned into data URLs with their real
    MIME type after checking MiniMax's size and aspect limits).

    Attributes:
        model: MiniMax model name (see `VIDEO_MODELS`) or a self-hosted server's name.
        prompt: the text prompt, at most 2000 characters; optional when a first frame is given.
        first_frame_image: image-to-video start frame (also required for fl2v).
        last_frame_image: fl2v end frame.
        subject_image: s2v character reference (a face).
        duration: seconds (6 or 10 on Hailuo models); None = the model's default.
        resolution: "512P", "768P", "1080P" or "720P"; None = the model's default.
        prompt_optimizer: False makes the model follow the prompt strictly.
        fast_pretreatment: shorter prompt optimisation (Hailuo models only).
        callback_url: URL MiniMax POSTs status changes to.
        extra: additional top-level fields sent as-is (e.g. a self-hosted server's own parameters).
    """

    model: str = DEFAULT_VIDEO_MODEL
    prompt: str | None = None
    first_frame_image: str | None = None
    last_frame_image: str | None = None
    subject_image: str | None = None
    duration: int | None = None
    resolution: str | None = None
    prompt_optimizer: bool | None = None
    fast_pretreatment: bool | None = None
    callback_url: str | None = None
    extra: dict[str, JSONScalar] = field(default_factory=dict)

    @property
    def mode(self) -> Mode:
        """The generation mode implied by which images are present."""
        if self.subject_image is not None:
            return "s2v"
        if self.last_frame_image is not None:
            return "fl2v"
        if self.first_frame_image is not None:
            return "i2v"
        return "t2v"


def build_video_body(request: VideoRequest) -> dict[str, object]:
    """Validate `request` for its model and build the JSON body of `POST /v1/video_generation`.

    Raises:
        ValueError: one sentence naming the field and what the model accepts.
        FileNotFoundError: a local image path that does not exist.
    """
    mode = request.mode
    prompt = request.prompt
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt has {len(prompt)} characters; MiniMax accepts at most {MAX_PROMPT_CHARS}")
    if mode == "t2v" and not prompt:
        raise ValueError("a text-to-video request needs a prompt (or pass a first-frame image)")
    if request.resolution is not None:
        _check_resolution_format(request.resolution)
    if mode == "fl2v" and request.first_frame_image is None:
        raise ValueError("a last-frame image needs a first-frame image too")

    spec = VIDEO_MODELS.get(request.model)
    if spec is not None:
        _check_against_model(request, mode, spec)

    body: dict[str, object] = {"model": request.model}
    if prompt:
        body["prompt"] = prompt
    if mode == "s2v":
        assert request.subject_image is not None
        body["subject_reference"] = [{"type": "character", "image": [image_reference(request.subject_image)]}]
    if request.first_frame_image is not None:
        body["first_frame_image"] = image_reference(request.first_frame_image)
    if request.last_frame_image is not None:
        body["last_frame_image"] = image_reference(request.last_frame_image)
    if request.duration is not None:
        body["duration"] = request.duration
    if request.resolution is not None:
        body["resolution"] = request.resolution.upper()
    if request.prompt_optimizer is not None:
        body["prompt_optimizer"] = request.prompt_optimizer
    if request.fast_pretreatment is not None:
        body["fast_pretreatment"] = request.fast_pretreatment
    if request.callback_url is not None:
        body["callback_url"] = request.callback_url
    for key, value in request.extra.items():
        if key in body:
            raise ValueError(f"extra field {key!r} would overwrite a field the request already sets")
        body[key] = value
    return body


def _check_resolution_format(resolution: str) -> None:
    if resolution.upper() not in ("512P", "720P", "768P", "1080P"):
        raise ValueError(f"resolution {resolution!r} is not one of 512P, 720P, 768P, 1080P")


def _check_against_model(request: VideoRequest, mode: Mode, spec: VideoModel) -> None:
    name = request.model
    if mode not in spec.modes:
        supported = ", ".join(_MODE_NAMES[m] for m in spec.modes)
        hint = "; pass a first-frame image" if mode == "t2v" and "i2v" in spec.modes else ""
        raise ValueError(f"model {name} does not do {_MODE_NAMES[mode]}; it supports {supported}{hint}")
    matrix = spec.modes[mode]
    if matrix is None:
        if request.duration is not None or request.resolution is not None:
            raise ValueError(f"model {name} is fixed at 6 s / 720P and rejects duration and resolution; leave them unset")
    else:
        duration = request.duration if request.duration is not None else 6
        if duration not in matrix:
            raise ValueError(f"model {name} ({_MODE_NAMES[mode]}) accepts durations {sorted(matrix)} s, not {duration}")
        if request.resolution is not None and request.resolution.upper() not in matrix[duration]:
            raise ValueError(
                f"model {name} ({_MODE_NAMES[mode]}) at {duration} s accepts resolutions "
                f"{', '.join(matrix[duration])}, not {request.resolution}"
            )
    if request.fast_pretreatment is not None and (not spec.fast_pretreatment or mode in ("fl2v", "s2v")):
        raise ValueError(f"model {name} does not accept fast_pretreatment in {_MODE_NAMES[mode]}")


_MODE_NAMES = {"t2v": "text-to-video", "i2v": "image-to-video", "fl2v": "first+last-frame video", "s2v": "subject-reference video"}


def image_reference(image: str) -> str:
    """A URL or data URL MiniMax accepts for an image field.

    `http(s)://` URLs and `data:` URLs pass through; a local path becomes a data URL with the
    file's real MIME type after checking MiniMax's limits (< 20 MB, short side > 300 px,
    aspect ratio between 2:5 and 5:2).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not a JPEG/PNG/WebP image or breaks a limit.
    """
    if image.startswith(("http://", "https://", "data:")):
        return image
    path = Path(image)
    if not path.is_file():
        raise FileNotFoundError(f"image {image} does not exist (expected a file, an http(s) URL or a data URL)")
    data = path.read_bytes()
    if len(data) >= MAX_IMAGE_BYTES:
        raise ValueError(f"image {image} is {len(data) / 2**20:.1f} MB; MiniMax accepts images under 20 MB")
    mime = sniff_image_mime(data)
    if mime is None:
        raise ValueError(f"image {image} is not a JPEG, PNG or WebP file")
    width, height = _image_size(data)
    if min(width, height) <= MIN_SHORT_SIDE:
        raise ValueError(f"image {image} is {width}x{height}; MiniMax needs the short side above {MIN_SHORT_SIDE} px")
    aspect = width / height
    if not ASPECT_RANGE[0] <= aspect <= ASPECT_RANGE[1]:
        raise ValueError(f"image {image} is {width}x{height}; MiniMax needs an aspect ratio between 2:5 and 5:2")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def sniff_image_mime(data: bytes) -> str | None:
    """The MIME type from an image's magic bytes: image/jpeg, image/png, image/webp, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _image_size(data: bytes) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(BytesIO(data)) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"the image cannot be decoded ({e})") from e
