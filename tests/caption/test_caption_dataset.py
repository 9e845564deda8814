"""`kinema caption DIR`: the runner and CLI on manifests and media the tests write, backends included."""

from __future__ import annotations

import json

import pytest
from fake_minimax import GOOD_KEY, FakeMiniMax
from test_caption_vlm import VALID

from kinema.caption.dataset import ERROR_COLUMN, CaptionRunConfig, caption_dataset
from kinema.caption.item import VLMCaptioner
from kinema.caption.minimax import MiniMaxChat
from kinema.caption.offline import OfflineCaptioner
from kinema.caption.ratelimit import RateLimiter
from kinema.caption.schema import Caption
from kinema.cli import main
from kinema.clients.minimax import MiniMaxClient, MiniMaxConfig
from kinema.data.manifest import read_manifest, write_manifest

QUIET = CaptionRunConfig(progress=False, concurrency=2)


def captions(folder) -> dict[int, Caption | None]:
    df = read_manifest(folder)
    return {i: Caption.model_validate_json(c) if c else None for i, c in enumerate(df["caption"])}


def test_offline_captions_kept_rows_and_merges_confident_camera_motion(dataset):
    summary = caption_dataset(dataset, OfflineCaptioner(), QUIET)
    assert (summary.rows, summary.todo, summary.captioned, summary.failed) == (5, 3, 3, 0)
    assert (summary.rejected, summary.unreadable, summary.already_captioned, summary.over_limit) == (1, 1, 0, 0)
    got = captions(dataset)
    assert got[3] is None and got[4] is None  # rejected by curation / curation error: left alone
    assert got[0].camera_motion is not None and got[0].camera_motion.type == "pan left"
    assert got[1].camera_motion is None  # "zoom in" at 0.5 is below the 0.8 threshold
    assert got[2].camera_motion is None  # an image row carrying its clip's camera columns
    assert summary.with_camera == 1
    assert "red" in got[0].short_description and "fast movement" in got[0].short_description
    assert "green" in got[2].short_description and got[2].short_description.startswith("A still image")
    df = read_manifest(dataset)
    assert df["motion_speed"].iloc[0] == 0.4 and df["error"].iloc[4] == "cannot open the file"  # columns kept


def test_rerun_skips_captioned_rows_and_retries_failed_ones(dataset):
    df = read_manifest(dataset)
    df.loc[1, "path"] = "media/gone.mp4"
    write_manifest(dataset, df)
    first = caption_dataset(dataset, OfflineCaptioner(), QUIET)
    assert (first.captioned, first.failed) == (2, 1)
    assert "gone.mp4" in read_manifest(dataset)[ERROR_COLUMN].iloc[1]
    df = read_manifest(dataset)
    before = df["caption"].tolist()
    df.loc[1, "path"] = "media/red.mp4"
    write_manifest(dataset, df)
    second = caption_dataset(dataset, OfflineCaptioner(), QUIET)
    assert (second.todo, second.captioned) == (1, 1)
    after = read_manifest(dataset)
    assert after["caption"].iloc[0] == before[0] and after["caption"].iloc[1] != ""
    assert after[ERROR_COLUMN].iloc[1] == ""


def test_cli_offline_summary_counts_every_row_once(dataset, capsys):
    # 5 rows: 2 kept clips and a kept image to caption, a clip curation rejected, a row it could not read.
    assert main(["caption", str(dataset), "--no-progress", "--limit", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        "rows: 5, 2 to caption; left alone: 1 rejected by curation, 1 unreadable, 1 past --limit",
        "captioned 2 of the 2 (0 failed)",
    ]
    assert main(["caption", str(dataset), "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        "rows: 5, 1 to caption; left alone: 2 already captioned, 1 rejected by curation, 1 unreadable",
        "captioned 1 of the 1 (0 failed)",
    ]
    assert main(["caption", str(dataset), "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        "rows: 5, 0 to caption; left alone: 3 already captioned, 1 rejected by curation, 1 unreadable",
        "nothing to caption",
    ]


def test_cli_reports_a_missing_manifest(tmp_path, capsys):
    assert main(["caption", str(tmp_path / "nowhere"), "--no-progress"]) == 2
    assert "no dataset manifest" in capsys.readouterr().err


@pytest.fixture
def fake():
    with FakeMiniMax() as server:
        yield server


@pytest.fixture
def minimax_env(fake, monkeypatch):
    monkeypatch.setenv("MINIMAX_API_KEY", GOOD_KEY)
    monkeypatch.setenv("MINIMAX_API_HOST", fake.url)
    return fake


def test_minimax_backend_retries_invalid_json_then_writes_captions(dataset, minimax_env, capsys):
    fake = minimax_env
    fake.behavior.chat_replies = ["Sure! Here is a caption: a red square.", json.dumps(VALID)]
    assert main(["caption", str(dataset), "--backend", "minimax", "--concurrency", "1", "--no-progress",
                 "--usd-per-mtok-input", "0.2", "--usd-per-mtok-output", "1.1"]) == 0
    out = capsys.readouterr().out
    assert "captioned 3 of the 3 (0 failed)" in out and "4 model replies" in out and "estimated cost: $" in out
    got = captions(dataset)
    assert got[0].style == "animation" and got[0].camera_motion.type == "pan left"
    calls = fake.calls("/v1/text/chatcompletion_v2")
    assert len(calls) == 4
    first = calls[0].body
    assert first["model"] == "MiniMax-Text-01" and first["response_format"]["type"] == "json_schema"
    images = [p for p in first["messages"][1]["content"] if p["type"] == "image_url"]
    assert len(images) == 4 and images[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    retry = calls[1].body["messages"]
    assert "not a valid caption" in retry[-1]["content"]


def test_minimax_schema_violations_fail_rows_not_the_run(dataset, minimax_env, capsys):
    minimax_env.behavior.chat_replies = [json.dumps({**VALID, "camera": "pan"})]
    assert main(["caption", str(dataset), "--backend", "minimax", "--max-attempts", "2", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "captioned 0 of the 3 (3 failed)" in out and "field 'camera' is not allowed" in out
    df = read_manifest(dataset)
    assert (df["caption"] == "").all() and df[ERROR_COLUMN].str.contains("after 2 replies").sum() == 3


def test_minimax_bad_key_stops_the_run(dataset, minimax_env, monkeypatch, capsys):
    monkeypatch.setenv("MINIMAX_API_KEY", "revoked")
    assert main(["caption", str(dataset), "--backend", "minimax", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1004" in err and "MINIMAX_API_HOST" in err
    assert len(minimax_env.calls("/v1/text/chatcompletion_v2")) <= 4  # stopped, not one failure per row
    assert (read_manifest(dataset)["caption"] == "").all()


def test_minimax_rate_limit_is_absorbed(dataset, fake):
    fake.behavior.rate_limited_requests = 2
    fake.behavior.chat_replies = [json.dumps(VALID)]
    config = MiniMaxConfig(api_key=GOOD_KEY, base_url=fake.url, rate_limit_backoff_s=0.01, backoff_s=0.01)
    with MiniMaxClient(config) as client:
        summary = caption_dataset(dataset, VLMCaptioner(MiniMaxChat(client)), QUIET)
    assert (summary.captioned, summary.failed) == (3, 0)
    assert len(fake.calls("/v1/text/chatcompletion_v2")) == 5  # 2 refused with 1002, then 3 answered


def test_openai_backend(dataset, fake, monkeypatch, capsys):
    fake.behavior.chat_replies = [f"```json\n{json.dumps(VALID)}\n```"]
    monkeypatch.setenv("OPENAI_API_KEY", GOOD_KEY)
    assert main(["caption", str(dataset), "--backend", "openai", "--base-url", f"{fake.url}/v1",
                 "--model", "qwen2-vl", "--rpm", "6000", "--no-progress"]) == 0
    body = fake.calls("/v1/chat/completions")[0].body
    assert body["model"] == "qwen2-vl" and body["response_format"]["json_schema"]["strict"] is True
    assert captions(dataset)[2].dense_description == VALID["dense_description"]
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    assert main(["caption", str(dataset), "--backend", "openai", "--base-url", f"{fake.url}/v1",
                 "--model", "qwen2-vl", "--recaption", "--no-progress"]) == 1
    assert "refused the API key" in capsys.readouterr().err


def test_openai_backend_needs_a_url(dataset, capsys):
    assert main(["caption", str(dataset), "--backend", "openai", "--model", "m"]) == 2
    assert "--base-url" in capsys.readouterr().err


def test_rate_limiter_spaces_requests():
    now, sleeps = [0.0], []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)  # one request per 0.5 s
    waits = [limiter.acquire() for _ in range(3)]
    assert waits == [0.0, 0.5, 0.5] and sleeps == [0.5, 0.5]
    now[0] += 10.0
    assert limiter.acquire() == 0.0  # idle time is not banked into a burst beyond one slot


class InterruptAfter(OfflineCaptioner):
    """Captions `n` items, then behaves like Ctrl-C."""

    def __init__(self, n: int):
        super().__init__()
        self.left = n

    def caption(self, item):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return super().caption(item)


def test_interrupted_run_keeps_finished_captions_and_resumes(dataset):
    config = CaptionRunConfig(progress=False, concurrency=1)
    with pytest.raises(KeyboardInterrupt):
        caption_dataset(dataset, InterruptAfter(1), config)
    assert sum(c is not None for c in captions(dataset).values()) == 1
    resumed = caption_dataset(dataset, OfflineCaptioner(), config)
    assert (resumed.todo, resumed.captioned) == (2, 2)
    assert sum(c is not None for c in captions(dataset).values()) == 3
