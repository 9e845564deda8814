"""`kinema dataset stats` and `kinema curate`'s summary: each count says what it counts, and the parts add up."""

from __future__ import annotations

import json

import pandas as pd

from kinema.cli import main
from kinema.data.manifest import empty_manifest, write_manifest


def _row(i: int, kind: str = "video", stage: int = 0, reason: str = "", error: str = "", bucket: str = "",
         stage_reasons: list[str] | None = None, camera: str | None = None) -> dict:
    return {"id": f"r{i}", "kind": kind, "path": f"media/{i}.mp4", "start": 0.0, "end": 2.0, "frames": 48,
            "fps": 24.0, "width": 640, "height": 360, "stage": stage, "reject_reason": reason, "bucket": bucket,
            "caption": "", "error": error, "stage_reasons": json.dumps(stage_reasons) if stage_reasons else "",
            "camera_motion": camera}


def test_stats_counts_agree_with_each_other(tmp_path, capsys):
    # 3 kept clips, 2 rejected (one by a filter, one duplicate), 1 unreadable video, 2 images from kept clips.
    rows = [
        _row(0, bucket="16:9x33", stage_reasons=["", "resolution"], camera="pan left"),
        _row(1, bucket="16:9x33", stage_reasons=["", "resolution"], camera="pan left"),
        _row(2, bucket="16:9x33", stage_reasons=["", ""], stage=1, camera="zoom in"),
        _row(3, stage=-1, reason="static", camera="static shot"),
        _row(4, stage=-1, reason="duplicate", stage_reasons=["", ""], camera="pan left"),
        _row(5, stage=-1, reason="error", error="not a readable video"),
        _row(6, kind="image", bucket="16:9x1"),
        _row(7, kind="image", bucket="16:9x1"),
    ]
    write_manifest(tmp_path, pd.concat([empty_manifest(), pd.DataFrame(rows)], ignore_index=True))
    assert main(["dataset", "stats", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "rows: 8",
        "  video clips:            5  (kept 3, rejected 2)",
        "  images:                 2  (kept 2, rejected 0)",
        "  unreadable videos:      1  (rows with an error)",
        "",
        "rejected video clips by reason (2):",
        "  duplicate            1",
        "  static               1",
        "",
        "per stage, the 4 clips past the filters: kept / rejected by the stage's first failing check",
        "  stage 0: kept      3  rejected      1  (duplicate 1)",
        "  stage 1: kept      1  rejected      3  (duplicate 1, resolution 2)",
        "",
        "buckets of the 5 kept rows (3 clips, 2 images):",
        "  image  16:9x1             2",
        "  video  16:9x33            3",
        "",
        "camera motion (5 measured clips):",
        "  pan left             3",
        "  static shot          1",
        "  zoom in              1",
    ]
