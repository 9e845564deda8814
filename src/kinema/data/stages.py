"""Stage assignment: which of the five video sets (and two image sets) each clip enters.

Each stage's thresholds are checked in a fixed order; the first failing check names the reason.
A clip's stage is the highest stage whose checks all pass (stages need not be nested, but with
tightening thresholds they are); a clip failing stage 0 gets stage -1 and stage 0's reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from kinema.data.config import ImageSetThresholds, StageThresholds


def _short_side(row: Mapping[str, float]) -> float:
    w = row["width"] * (row["crop_x1"] - row["crop_x0"])
    h = row["height"] * (row["crop_y1"] - row["crop_y0"])
    return min(w, h)


def stage_failure(row: Mapping[str, float], t: StageThresholds) -> str:
    """The first check of stage `t` that `row` fails, or "" when it passes."""
    checks = [
        ("resolution", _short_side(row) >= t.min_side),
        ("too_short", row["end"] - row["start"] >= t.min_duration),
        ("blur", row["sharpness"] >= t.min_sharpness),
        ("noise", row["noise"] <= t.max_noise),
        ("too_dark", row["brightness"] >= t.min_brightness),
        ("too_bright", row["brightness"] <= t.max_brightness),
        ("text", row["text_area"] <= t.max_text_area),
        ("watermark", row["watermark_score"] <= t.max_watermark),
        ("borders", row["border_fraction"] <= t.max_border),
        ("static", row["motion_speed"] >= t.min_motion),
        ("too_fast", row["motion_speed"] <= t.max_motion),
        ("aesthetic", row["aesthetic_score"] >= t.min_aesthetic),
    ]
    return next((name for name, ok in checks if not ok), "")


def assign_stage(row: Mapping[str, float], stages: tuple[StageThresholds, ...]) -> tuple[int, list[str]]:
    """Highest stage passed (-1 for none) and the failure reason per stage ("" = passed)."""
    reasons = [stage_failure(row, t) for t in stages]
    passed = [i for i, r in enumerate(reasons) if r == ""]
    return (max(passed) if passed else -1), reasons


def image_set_level(row: Mapping[str, float], sets: tuple[ImageSetThresholds, ...]) -> int:
    """Highest image set the clip's start frame enters (-1: none)."""
    level = -1
    for i, t in enumerate(sets):
        if (
            _short_side(row) >= t.min_side
            and row["aesthetic_score"] >= t.min_aesthetic
            and row["text_area"] <= t.max_text_area
            and row["watermark_score"] <= t.max_watermark
        ):
            level = i
    return level
