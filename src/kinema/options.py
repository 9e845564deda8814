"""How to sample a video: a checkpoint's defaults and one request's options. No torch here.

    defaults = SamplingDefaults(steps=50, shift=7.0, cfg_scale=1.0, guidance=6.0)   # from pipeline.json
    options = SamplingOptions(steps=8, seed=3).resolve(defaults)                      # every field set

`SamplingDefaults` is what a pipeline folder stores (`kinema.pipeline_folder`); `SamplingOptions` is what
`kinema generate`, `Pipeline(...)`, the server and the evaluations ask for. An unset option takes the
checkpoint's default; the checks that depend on the model (frame counts, size units, a guidance
embedding) are the pipeline's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingDefaults:
    """What `kinema generate` uses for a checkpoint unless told otherwise (the `defaults` of pipeline.json)."""

    steps: int = 50
    shift: float = 7.0
    cfg_scale: float = 1.0
    guidance: float | None = None  # embedded guidance, for guidance-distilled models
    frames: int = 17
    height: int = 64
    width: int = 64
    fps: float = 8.0
    # (at most N steps, shift) pairs: fewer steps want a larger shift (the reference: 7 at 50 steps,
    # 17 below 20). A run of n steps uses the pair with the smallest N ≥ n, else `shift`.
    few_step_shifts: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        if self.steps < 1 or self.frames < 1 or self.height < 1 or self.width < 1:
            raise ValueError("sampling defaults need steps, frames, height and width ≥ 1")
        if self.shift <= 0 or self.cfg_scale < 1 or self.fps <= 0:
            raise ValueError("sampling defaults need shift > 0, cfg_scale ≥ 1 and fps > 0")

    def shift_for(self, steps: int) -> float:
        """The time shift for a run of `steps` steps."""
        fitting = [(n, s) for n, s in self.few_step_shifts if steps <= n]
        return min(fitting)[1] if fitting else self.shift


@dataclass(frozen=True)
class SamplingOptions:
    """One request's sampling options; None takes the checkpoint's default (`resolve`).

    Attributes:
        steps: Euler steps.
        shift: time shift of the schedule (default: the checkpoint's for this number of steps).
        cfg_scale: classifier-free guidance scale, 1 = off (two forwards per step above 1).
        guidance: embedded guidance, for guidance-distilled models.
        frames, height, width: the video's size in pixels (frames 4k+1).
        seed: the noise's seed; sample i of a batch depends on its own prompt and seed alone.
        negative_prompt: what classifier-free guidance steers away from.
    """

    steps: int | None = None
    shift: float | None = None
    cfg_scale: float | None = None
    guidance: float | None = None
    frames: int | None = None
    height: int | None = None
    width: int | None = None
    seed: int = 0
    negative_prompt: str = ""

    def __post_init__(self) -> None:
        for name in ("steps", "frames", "height", "width"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.shift is not None and self.shift <= 0:
            raise ValueError(f"shift must be positive, got {self.shift}")
        if self.cfg_scale is not None and self.cfg_scale < 1:
            raise ValueError(f"cfg_scale must be at least 1 (1 disables classifier-free guidance), got {self.cfg_scale}")
        if self.guidance is not None and self.guidance <= 0:
            raise ValueError(f"guidance must be positive, got {self.guidance}")

    def resolve(self, defaults: SamplingDefaults) -> SamplingOptions:
        """These options with every unset field taken from `defaults` (the shift from `shift_for(steps)`)."""
        steps = self.steps or defaults.steps
        return dataclasses.replace(
            self,
            steps=steps,
            shift=self.shift if self.shift is not None else defaults.shift_for(steps),
            cfg_scale=self.cfg_scale if self.cfg_scale is not None else defaults.cfg_scale,
            guidance=self.guidance if self.guidance is not None else defaults.guidance,
            frames=self.frames or defaults.frames,
            height=self.height or defaults.height,
            width=self.width or defaults.width,
        )
