"""API keys, rate limits, URL signatures, request validation and the service config, without a server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from serve_helpers import TINY_FRAMES, TINY_SIDE
from starlette.datastructures import Headers

from kinema.options import SamplingDefaults
from kinema.serve.config import ServeConfig, ServedModel
from kinema.serve.params import InvalidParams, generation_params
from kinema.serve.protocol import VideoGenerationRequest
from kinema.serve.security import ANONYMOUS, ApiKeys, AuthError, RateLimiter, UrlSigner, load_secret, owner_of


def test_api_keys_from_any_header_spelling() -> None:
    keys = ApiKeys(("alpha", "beta"))
    for given in ({"Authorization": "Bearer beta"}, {"AUTHORIZATION": "bearer  beta"}, {"X-Api-Key": "beta"}):
        assert keys.owner(Headers(headers=given)) == owner_of("beta") != "beta"
    for given in ({}, {"Authorization": "Bearer gamma"}, {"Authorization": "Basic beta"}, {"Authorization": "beta"}):
        with pytest.raises(AuthError):
            keys.owner(Headers(headers=given))
    assert ApiKeys(()).owner(Headers(headers={})) == ANONYMOUS


def test_rate_limiter_allows_a_burst_then_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    assert [limiter.allow("k") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("other")
    now[0] += 20.0  # one token back after 60 / 3 s
    assert [limiter.allow("k") for _ in range(2)] == [True, False]


def test_url_signatures(tmp_path: Path) -> None:
    now = [1000.0]
    secret = load_secret(tmp_path / "secret.key")
    assert load_secret(tmp_path / "secret.key") == secret and len(secret) == 32
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    signer = UrlSigner(secret, clock=lambda: now[0])
    sig = signer.sign(42, ttl_s=60)
    assert signer.check(42, str(sig.expires), sig.signature) is None
    assert "signature" in signer.check(43, str(sig.expires), sig.signature)  # another file
    assert "signature" in signer.check(42, str(sig.expires + 1), sig.signature)  # extended expiry
    assert "signature" in signer.check(42, str(sig.expires), "é" * 64)
    assert "expiry" in signer.check(42, "²", sig.signature)
    now[0] += 61
    assert "expired" in signer.check(42, str(sig.expires), sig.signature)
    assert UrlSigner(b"another secret!!!", clock=lambda: 0.0).check(42, str(sig.expires), sig.signature) is not None


MODEL = ServedModel("kinema-tiny", SamplingDefaults(steps=2, frames=TINY_FRAMES, height=TINY_SIDE, width=TINY_SIDE))


def request(**fields: object) -> VideoGenerationRequest:
    return VideoGenerationRequest(**{"model": "kinema", "prompt": "a red circle", **fields})


def test_generation_params_map_minimax_names_and_keep_a_seed(tmp_path: Path) -> None:
    config = ServeConfig(checkpoint=tmp_path, data_dir=tmp_path)
    for name in ("kinema", "kinema-tiny", "MiniMax-Hailuo-2.3", "T2V-01-Director", "video-01"):
        params = generation_params(request(model=name, duration=6, resolution="768p"), MODEL, config)
        assert 0 <= params.seed < 2**31 and params.steps is None
    chosen = generation_params(request(seed=5, steps=3, frames=9, width=64, height=48, cfg_scale=2.0), MODEL, config)
    assert (chosen.seed, chosen.steps, chosen.frames, chosen.width, chosen.height) == (5, 3, 9, 64, 48)


@pytest.mark.parametrize("fields, message", [
    ({"model": "gpt-4o"}, "unknown model"),
    ({"prompt": "x" * 2001}, "2001 characters"),
    ({"steps": 101}, "steps must be between 1 and 100"),
    ({"frames": 8}, "frames must be 4k+1"),
    ({"frames": 133}, "at most 129"),
    ({"height": 24}, "height must be a multiple of 16"),
    ({"width": 1296}, "between 16 and 1280"),
    ({"seed": -1}, "seed must be between"),
    ({"cfg_scale": 0.5}, "cfg_scale"),
    ({"shift": float("nan")}, "shift"),
    ({"subject_reference": [{"type": "character", "image": ["x"]}]}, "subject_reference not supported"),
    ({"resolution": "4K"}, "resolution must be one of"),
])
def test_generation_params_refuse_with_one_sentence(tmp_path: Path, fields: dict, message: str) -> None:
    config = ServeConfig(checkpoint=tmp_path, data_dir=tmp_path)
    with pytest.raises(InvalidParams, match=re.escape(message)):
        generation_params(request(**fields), MODEL, config)


def test_config_refuses_an_open_service_off_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="without an API key"):
        ServeConfig(checkpoint=tmp_path, data_dir=tmp_path, host="0.0.0.0")
    ServeConfig(checkpoint=tmp_path, data_dir=tmp_path, host="0.0.0.0", api_keys=("k",))
    ServeConfig(checkpoint=tmp_path, data_dir=tmp_path, host="::1")
    with pytest.raises(ValueError, match="whitespace"):
        ServeConfig(checkpoint=tmp_path, data_dir=tmp_path, api_keys=("a b",))


def test_served_model_reads_units_without_loading_weights(tiny_pipeline: Path) -> None:
    model = ServedModel.from_folder(tiny_pipeline)
    d = model.defaults
    assert (model.name, d.steps, d.frames, d.width) == ("kinema-tiny", 2, TINY_FRAMES, TINY_SIDE)
    assert (model.frame_unit, model.pixel_unit) == (4, 16)
    with pytest.raises(FileNotFoundError, match="not a kinema pipeline folder"):
        ServedModel.from_folder(tiny_pipeline / "dit")


def test_the_api_process_reads_the_model_without_torch(tiny_pipeline: Path, tmp_path: Path) -> None:
    code = ("import sys, pathlib; from kinema.serve.app import create_app; from kinema.serve.config import ServedModel; "
            f"ServedModel.from_folder(pathlib.Path({str(tiny_pipeline)!r})); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    # pipeline.json goes through the typed loader: a wrong value is one error naming it.
    bad = tmp_path / "bad"
    shutil.copytree(tiny_pipeline, bad)
    spec = json.loads((bad / "pipeline.json").read_text())
    spec["defaults"]["steps"] = "many"
    (bad / "pipeline.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="defaults.steps"):
        ServedModel.from_folder(bad)
