"""`kinema minimax generate | wait | caption` against the local fake MiniMax server."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_minimax import GOOD_KEY, FakeMiniMax
from PIL import Image

from kinema.cli import main

CAPTION = {
    "short_description": "A cat sits.", "dense_description": "A gray cat sits on a rug.", "background": "a room",
    "style": "realistic", "shot_type": "medium shot", "lighting": "soft daylight", "atmosphere": "cozy",
}


@pytest.fixture
def fake(monkeypatch):
    with FakeMiniMax() as server:
        server.behavior.statuses = ["Processing", "Success"]
        monkeypatch.setenv("MINIMAX_API_KEY", GOOD_KEY)
        monkeypatch.setenv("MINIMAX_API_HOST", server.url)
        yield server


def test_generate(fake, tmp_path, capsys):
    # The CLI polls with the default 5 s first interval: one Processing answer is one wait.
    fake.behavior.statuses = ["Success"]
    out = tmp_path / "v.mp4"
    assert main(["minimax", "generate", "a red fox", "-o", str(out), "--duration", "6", "--resolution", "768P"]) == 0
    assert out.read_bytes() == fake.behavior.video_bytes
    assert "1366x768" in capsys.readouterr().out
    assert fake.calls("/v1/video_generation")[0].body["model"] == "MiniMax-Hailuo-02"


def test_generate_from_a_keyless_local_server(fake, tmp_path, monkeypatch, capsys):
    # The README's `MINIMAX_API_HOST=http://127.0.0.1:8000 kinema minimax generate ...` against a
    # `kinema serve` that takes no key: no MINIMAX_API_KEY is needed.
    monkeypatch.delenv("MINIMAX_API_KEY")
    fake.behavior.keyless = True
    fake.behavior.statuses = ["Success"]
    out = tmp_path / "v.mp4"
    assert main(["minimax", "generate", "a red fox", "-o", str(out)]) == 0
    assert out.read_bytes() == fake.behavior.video_bytes


def test_no_key_for_minimax_is_one_sentence(monkeypatch, capsys):
    monkeypatch.delenv("MINIMAX_API_KEY", raising=False)
    monkeypatch.delenv("MINIMAX_API_HOST", raising=False)
    assert main(["minimax", "generate", "a red fox", "--no-wait"]) == 2
    assert "no MiniMax API key for https://api.minimax.io: set MINIMAX_API_KEY" in capsys.readouterr().err


def test_no_wait_then_wait(fake, tmp_path, capsys):
    assert main(["minimax", "generate", "a red fox", "--no-wait"]) == 0
    task_id = capsys.readouterr().out.strip()
    assert task_id in fake.tasks
    fake.behavior.statuses = ["Success"]
    out = tmp_path / "later.mp4"
    assert main(["minimax", "wait", task_id, "-o", str(out)]) == 0
    assert out.read_bytes() == fake.behavior.video_bytes


def test_invalid_parameters_are_a_usage_error(fake, capsys):
    assert main(["minimax", "generate", "a fox", "--model", "T2V-01", "--duration", "6", "--no-wait"]) == 2
    assert "rejects duration and resolution" in capsys.readouterr().err
    assert fake.requests == []


def test_failed_task_exits_1_with_the_reason(fake, tmp_path, capsys):
    fake.behavior.statuses = ["Success"]
    assert main(["minimax", "generate", "something forbidden", "-o", str(tmp_path / "x.mp4")]) == 1
    assert "1027" in capsys.readouterr().err and not (tmp_path / "x.mp4").exists()


def test_missing_key(monkeypatch, capsys):
    monkeypatch.delenv("MINIMAX_API_KEY", raising=False)
    assert main(["minimax", "generate", "a fox", "--no-wait"]) == 2
    assert "MINIMAX_API_KEY" in capsys.readouterr().err


def test_caption_image(fake, tmp_path, capsys):
    fake.behavior.chat_replies = [json.dumps(CAPTION)]
    path = tmp_path / "cat.png"
    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(path)
    assert main(["minimax", "caption", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == CAPTION
    images = [p for p in fake.calls("/v1/text/chatcompletion_v2")[0].body["messages"][1]["content"]
              if p["type"] == "image_url"]
    assert len(images) == 1
