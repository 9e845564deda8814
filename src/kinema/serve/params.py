"""Checking a create request against the served model and the service's limits.

A request names a model: the served model's own name (`kinema-<folder>`, or plain `kinema`) or any
MiniMax video model name (`MiniMax-Hailuo-02`, `T2V-01`, ...: the model list of
https://platform.minimax.io/docs/api-reference/video-generation-t2v), which is mapped
to the served model so existing clients work unchanged. MiniMax's `duration` and `resolution` are
checked for well-formedness and otherwise left to the served model (a toy model cannot make 1080P
clips); kinema's own fields (`steps`, `frames`, `width`, `height`, ...) choose the output. Image
inputs are refused: kinema serves text-to-video.
"""

from __future__ import annotations

import secrets

from kinema.clients.video_params import VIDEO_MODELS
from kinema.options import SamplingOptions
from kinema.serve.config import ServeConfig, ServedModel
from kinema.serve.protocol import MAX_PROMPT_CHARS, RESOLUTIONS, VideoGenerationRequest

MAX_SEED = 2**63 - 1
MINIMAX_DURATIONS = (6, 10)


class InvalidParams(ValueError):
    """A request the service refuses with 2013; the message is one sentence for the caller."""


def accepted_models(model: ServedModel) -> tuple[str, ...]:
    return (model.name, "kinema", *VIDEO_MODELS)


def generation_params(req: VideoGenerationRequest, model: ServedModel, config: ServeConfig) -> SamplingOptions:
    """The sampling options of a valid request (a random seed when none is given).

    Raises:
        InvalidParams: the first thing wrong with the request.
    """
    if req.model not in accepted_models(model):
        raise InvalidParams(
            f"unknown model {req.model[:100]!r}; this server serves {model.name} and accepts MiniMax video model "
            "names for it"
        )
    if not req.prompt.strip():
        raise InvalidParams("prompt is empty; kinema serves text-to-video and needs one")
    if len(req.prompt) > MAX_PROMPT_CHARS:
        raise InvalidParams(f"prompt has {len(req.prompt)} characters; at most {MAX_PROMPT_CHARS} are allowed")
    images = [name for name in ("first_frame_image", "last_frame_image", "subject_reference")
              if getattr(req, name) is not None]
    if images:
        raise InvalidParams(f"{', '.join(images)} not supported: this server generates from text only")
    if req.duration is not None and req.duration not in MINIMAX_DURATIONS:
        raise InvalidParams(f"duration must be 6 or 10, got {req.duration}; the served model's length is used anyway")
    if req.resolution is not None and req.resolution.upper() not in RESOLUTIONS:
        raise InvalidParams(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {req.resolution[:20]!r}")

    if req.steps is not None and not 1 <= req.steps <= config.max_steps:
        raise InvalidParams(f"steps must be between 1 and {config.max_steps}, got {req.steps}")
    if req.frames is not None:
        unit = model.frame_unit
        if not 1 <= req.frames <= config.max_frames or (req.frames - 1) % unit:
            raise InvalidParams(
                f"frames must be {unit}k+1 (1, {unit + 1}, {2 * unit + 1}, ...) and at most {config.max_frames}, "
                f"got {req.frames}"
            )
    for name in ("width", "height"):
        value = getattr(req, name)
        unit = model.pixel_unit
        if value is not None and (not unit <= value <= config.max_side or value % unit):
            raise InvalidParams(f"{name} must be a multiple of {unit} between {unit} and {config.max_side}, got {value}")
    if req.seed is not None and not 0 <= req.seed <= MAX_SEED:
        raise InvalidParams(f"seed must be between 0 and 2**63-1, got {req.seed}")
    if req.cfg_scale is not None and not 1.0 <= req.cfg_scale <= 100.0:
        raise InvalidParams(f"cfg_scale must be between 1 (off) and 100, got {req.cfg_scale}")
    if req.shift is not None and not 0.0 < req.shift <= 100.0:
        raise InvalidParams(f"shift must be in (0, 100], got {req.shift}")
    if req.guidance is not None and not 0.0 < req.guidance <= 100.0:
        raise InvalidParams(f"guidance must be in (0, 100], got {req.guidance}")
    negative = req.negative_prompt or ""
    if len(negative) > MAX_PROMPT_CHARS:
        raise InvalidParams(f"negative_prompt has {len(negative)} characters; at most {MAX_PROMPT_CHARS} are allowed")
    try:  # the bounds above are the service's; SamplingOptions checks what any request must respect
        return SamplingOptions(
            steps=req.steps, shift=req.shift, cfg_scale=req.cfg_scale, guidance=req.guidance, frames=req.frames,
            height=req.height, width=req.width, seed=req.seed if req.seed is not None else secrets.randbelow(2**31),
            negative_prompt=negative,
        )
    except ValueError as e:
        raise InvalidParams(str(e)) from None
