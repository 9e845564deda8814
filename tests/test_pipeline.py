"""kinema.Pipeline and `kinema generate` on a tiny random pipeline folder."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kinema.cli import main
from kinema.media import read_video
from kinema.models import DiTConfig, VAEConfig, build_dit, build_vae
from kinema.options import SamplingDefaults, SamplingOptions
from kinema.pipeline import DEFAULT_GUIDANCE, Pipeline
from kinema.pipeline_folder import PipelineSpec, save_pipeline

TINY_DIT = dict(in_channels=4, out_channels=4, heads=2, head_dim=16, depth_double=1, depth_single=1, depth_refiner=1,
                text_dim=384, pooled_dim=384, rope_dims=(4, 6, 6))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    dit = build_dit(DiTConfig(**TINY_DIT, guidance_embed=False))
    with torch.no_grad():
        for p in dit.parameters():  # a model whose output depends on the prompt (adaLN-Zero starts at 0)
            p.add_(torch.randn_like(p) * 0.05)
    vae = build_vae(VAEConfig(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                              norm_num_groups=4, scaling_factor=1.0))
    defaults = SamplingDefaults(steps=3, shift=3.0, cfg_scale=2.0, frames=5, height=32, width=32)
    return save_pipeline(tmp_path_factory.mktemp("pipe") / "tiny", dit, vae, PipelineSpec("minilm", defaults))


@pytest.fixture(scope="module")
def pipe(folder) -> Pipeline:
    return Pipeline.from_pretrained(folder)


def test_same_seed_same_video_and_batching_changes_nothing(pipe):
    a = pipe("a red circle moves to the right", seed=3)
    b = pipe("a red circle moves to the right", seed=3)
    assert a.frames.shape == (5, 32, 32, 3) and a.frames.dtype == np.uint8
    assert np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, pipe("a red circle moves to the right", seed=4).frames)
    assert not np.array_equal(a.frames, pipe("a blue star moves up", seed=3).frames)
    assert np.array_equal(a.frames, pipe("a red circle moves to the right", SamplingOptions(seed=3)).frames)
    batch = pipe.generate(["a blue star moves up", "a red circle moves to the right"], SamplingOptions(seed=3))
    assert np.abs(batch[1].frames.astype(int) - a.frames).max() <= 1  # batched = alone (float rounding)
    # Per-prompt options: each sample follows its own seed and negative prompt.
    c = pipe("a blue star moves up", SamplingOptions(seed=5, negative_prompt="red"))
    mixed = pipe.generate(["a blue star moves up", "a red circle moves to the right"],
                          [SamplingOptions(seed=5, negative_prompt="red"), SamplingOptions(seed=3)])
    assert np.abs(mixed[0].frames.astype(int) - c.frames).max() <= 1
    assert np.abs(mixed[1].frames.astype(int) - a.frames).max() <= 1
    assert [v.seed for v in mixed] == [5, 3]


def test_options_are_validated(pipe):
    with pytest.raises(ValueError, match="4k\\+1"):
        pipe("x", SamplingOptions(frames=6))
    with pytest.raises(ValueError, match="multiples of 16"):
        pipe("x", SamplingOptions(height=40))
    with pytest.raises(ValueError, match="at least 1"):
        pipe("x", SamplingOptions(cfg_scale=0.5))
    with pytest.raises(ValueError, match="no guidance embedding"):
        pipe("x", SamplingOptions(guidance=6.0))
    with pytest.raises(ValueError, match="may differ in seed and negative prompt only"):
        pipe.generate(["a", "b"], [SamplingOptions(steps=2), SamplingOptions(steps=3)])
    with pytest.raises(ValueError, match="one per prompt \\(2\\), got 1"):
        pipe.generate(["a", "b"], [SamplingOptions()])
    with pytest.raises(ValueError, match="non-empty list of prompts"):
        pipe.generate("a")


def test_unset_options_take_the_checkpoints_defaults(pipe):
    assert pipe.resolve(SamplingOptions(steps=8)) == SamplingOptions(
        steps=8, shift=3.0, cfg_scale=2.0, guidance=None, frames=5, height=32, width=32, seed=0)
    # A guidance-embedded model reads 6.0 (the reference's) unless the request or the checkpoint says otherwise.
    embedded = Pipeline(build_dit(DiTConfig(**TINY_DIT, guidance_embed=True)), pipe.vae, pipe.text_encoder, pipe.defaults)
    assert embedded.resolve(SamplingOptions()).guidance == DEFAULT_GUIDANCE == 6.0
    assert embedded.resolve(SamplingOptions(guidance=3.5)).guidance == 3.5


def test_generate_cli_writes_mp4_and_preview(folder, tmp_path, capsys):
    out = tmp_path / "v.mp4"
    assert main(["generate", "a green square moves up", "-o", str(out), "--checkpoint", str(folder),
                 "--steps", "2", "--frames", "9", "--width", "48"]) == 0
    assert read_video(out).shape == (9, 32, 48, 3)
    assert out.with_suffix(".png").is_file() and "wrote" in capsys.readouterr().out
    assert main(["generate", "x", "-o", str(tmp_path / "bad.mp4"), "--checkpoint", str(folder), "--frames", "8"]) == 2
    assert "4k+1" in capsys.readouterr().err and not (tmp_path / "bad.mp4").exists()
    assert main(["generate", "x", "--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert main(["generate", "x", "--checkpoint", str(folder), "--steps", "0"]) == 2
    assert capsys.readouterr().err.endswith("error: steps must be at least 1, got 0\n")


def test_generate_cli_says_in_one_sentence_when_the_device_is_missing(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)  # as on a CPU-only build of torch
    assert main(["generate", "x", "--checkpoint", str(folder), "-o", str(tmp_path / "v.mp4"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CPU-only" in err and "Traceback" not in err
    assert main(["generate", "x", "--checkpoint", str(folder), "--device", "gpu0"]) == 2
    assert "not a torch device" in capsys.readouterr().err


def test_videos_larger_than_a_tile_decode_tiled(pipe):
    from kinema.models.tiling import TilingConfig

    options = SamplingOptions(seed=1, frames=9, height=64, width=48, steps=1)
    whole = pipe("a red circle", options)
    pipe.tiling = TilingConfig(tile_size=32, tile_stride=16, tile_frames=4, tile_frame_stride=4)
    try:
        tiled = pipe("a red circle", options)
    finally:
        pipe.tiling = TilingConfig()
    assert pipe.vae.tiling is None  # the tiling is an argument of the decode, the VAE is left as it was
    assert tiled.frames.shape == whole.frames.shape
    # Small tiles engage tiling (a random VAE's tiles differ: per-tile GroupNorm statistics); the default
    # 256-px tiles leave a 64×48 video whole, bit for bit.
    assert not np.array_equal(tiled.frames, whole.frames)
    assert np.array_equal(pipe("a red circle", options).frames, whole.frames)


def test_eval_sweep_reports_every_setting(folder, tmp_path, capsys):
    import json

    out = tmp_path / "sweep"
    assert main(["eval", "sweep", "--checkpoint", str(folder), "--steps", "2,1", "--shift", "1,7", "-n", "2",
                 "--out", str(out)]) == 0
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert [(r["steps"], r["shift"]) for r in rows] == [(2, 1.0), (2, 7.0), (1, 1.0), (1, 7.0)]
    assert all(0.0 <= r["color"] <= 1.0 and r["latency_s"] > 0 for r in rows)
    assert (out / "sweep.md").read_text().count("\n") == 6  # header, rule, four settings
    assert main(["eval", "sweep", "--checkpoint", str(folder), "--steps", "0"]) == 2


def test_the_time_shift_follows_the_step_count_and_survives_the_folder(tmp_path):
    defaults = SamplingDefaults(shift=7.0, few_step_shifts=((19, 17.0), (4, 25.0)))
    assert [defaults.shift_for(n) for n in (50, 20, 19, 8, 4, 1)] == [7.0, 7.0, 17.0, 17.0, 25.0, 25.0]
    torch.manual_seed(0)
    dit = build_dit(DiTConfig(**TINY_DIT, guidance_embed=False))
    vae = build_vae(VAEConfig(latent_channels=4, block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4,
                              spatial_compression_ratio=2, temporal_compression_ratio=2))
    old = os.umask(0o022)
    try:
        folder = save_pipeline(tmp_path / "p", dit, vae, PipelineSpec("minilm", defaults))
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # as mkdir makes it, readable by others under umask 022
    loaded = Pipeline.from_pretrained(folder)
    assert loaded.defaults.shift_for(8) == 17.0 and loaded.defaults.shift_for(50) == 7.0


@pytest.mark.parametrize("modules", [
    "kinema.pipeline",  # the check, verbatim
    "kinema.generate_cli, kinema.distributed, kinema.models.parallel",  # what `kinema generate` loads
    "kinema.serve.worker, kinema.media",  # a serve worker
    "kinema.toyworld.eval_cli, kinema.toyworld.report, kinema.pixels",  # `kinema eval` and its reports
])
def test_inference_imports_nothing_from_training(modules):
    code = f"import {modules}, sys; print([m for m in sys.modules if m.startswith('kinema.train')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_pipeline_json_is_read_as_json(tmp_path):
    import json

    from kinema.pipeline_folder import read_pipeline_spec

    # json.dumps writes small floats as 1e-05, which YAML 1.1 (PyYAML) would read as a string.
    (tmp_path / "pipeline.json").write_text(json.dumps({"text_encoder": "minilm", "defaults": {"shift": 1e-5}}))
    assert read_pipeline_spec(tmp_path).defaults.shift == 1e-5
