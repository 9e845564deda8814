"""MiniMaxClient against a real local MiniMax-protocol server (fake_minimax.py), one failure mode per test."""

from __future__ import annotations

import dataclasses

import pytest
from fake_minimax import GOOD_KEY, WRONG_REGION_KEY, FakeMiniMax
from PIL import Image

from kinema.clients.errors import (
    MiniMaxAuthError,
    MiniMaxContentError,
    MiniMaxRateLimitError,
    MiniMaxTaskFailed,
    MiniMaxTimeoutError,
    MiniMaxTransportError,
)
from kinema.clients.minimax import MiniMaxClient, MiniMaxConfig, TaskStatus
from kinema.clients.video_params import VideoRequest, build_video_body

FAST = dict(backoff_s=0.01, rate_limit_backoff_s=0.01, poll_interval_s=0.01, max_poll_interval_s=0.02)


def make_client(fake: FakeMiniMax, key: str = GOOD_KEY, **overrides: float | int | str) -> MiniMaxClient:
    return MiniMaxClient(MiniMaxConfig(api_key=key, base_url=fake.url, **{**FAST, **overrides}))


@pytest.fixture
def fake():
    with FakeMiniMax() as server:
        yield server


def test_generate_downloads_the_video_without_sending_the_key(fake, tmp_path):
    seen: list[str] = []
    out = tmp_path / "out" / "fox.mp4"
    with make_client(fake) as client:
        result = client.generate_video(
            VideoRequest(model="MiniMax-Hailuo-02", prompt="a red fox runs", duration=6, resolution="768p"),
            out, on_status=lambda s: seen.append(s.status),
        )
    assert out.read_bytes() == fake.behavior.video_bytes
    assert result.bytes == len(fake.behavior.video_bytes)
    assert (result.video_width, result.video_height) == (1366, 768)
    assert seen == ["Preparing", "Queueing", "Processing", "Success"]
    create = fake.calls("/v1/video_generation")[0]
    assert create.body == {"model": "MiniMax-Hailuo-02", "prompt": "a red fox runs", "duration": 6, "resolution": "768P"}
    assert create.headers["authorization"] == f"Bearer {GOOD_KEY}"
    retrieve = fake.calls("/v1/files/retrieve")[0]
    assert retrieve.query["file_id"] == result.file_id and result.file_id.isdigit()
    downloads = [r for r in fake.requests if r.path.startswith("/download/")]
    assert len(downloads) == 1 and "authorization" not in downloads[0].headers
    assert "GroupId" not in create.query
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


def test_failed_task_raises_with_code_and_task_id(fake, tmp_path):
    with make_client(fake) as client, pytest.raises(MiniMaxTaskFailed) as info:
        client.generate_video(VideoRequest(prompt="something forbidden"), tmp_path / "x.mp4")
    assert info.value.status_code == 1027
    assert info.value.task_id in fake.tasks
    assert "1027" in str(info.value)
    assert not (tmp_path / "x.mp4").exists()


def test_failed_task_with_a_retryable_code_is_a_task_failure_not_retried(fake, tmp_path):
    fake.behavior.fail_code = 1000  # what a self-hosted server answers for a crashed generation
    with make_client(fake) as client, pytest.raises(MiniMaxTaskFailed) as info:
        client.generate_video(VideoRequest(prompt="something forbidden"), tmp_path / "x.mp4")
    assert info.value.status_code == 1000
    queries = [r for r in fake.requests if r.path == "/v1/query/video_generation"]
    assert len(queries) == 4  # Preparing, Queueing, Processing, then Fail once: no retries of the failure


@pytest.mark.parametrize("case, expected", [("lower", "success"), ("failed", "fail")])
def test_status_is_compared_case_insensitively(fake, tmp_path, case, expected):
    fake.behavior.status_case = case
    fake.behavior.statuses = ["Processing", "Fail" if expected == "fail" else "Success"]
    with make_client(fake) as client:
        task_id = client.create_video(VideoRequest(prompt="a cat"))
        assert client.query_video(task_id).state == "pending"
        if expected == "fail":
            with pytest.raises(MiniMaxTaskFailed):
                client.query_video(task_id)
        else:
            assert client.query_video(task_id).state == "success"


def test_task_state_reads_every_spelling():
    assert [TaskStatus("1", s).state for s in ("Success", "SUCCEEDED", "Fail", "failed", "Queueing", "weird")] == [
        "success", "success", "fail", "fail", "pending", "pending"]


@pytest.mark.parametrize("key, code", [("not-a-key", 1004), (WRONG_REGION_KEY, 2049)])
def test_refused_keys_fail_at_once_with_a_region_hint(fake, key, code):
    with make_client(fake, key=key) as client, pytest.raises(MiniMaxAuthError) as info:
        client.create_video(VideoRequest(prompt="a cat"))
    err = info.value
    assert err.status_code == code and err.http_status == 200
    assert err.trace_id and err.trace_id in str(err)
    assert "api.minimaxi.com" in str(err)
    assert len(fake.calls("/v1/video_generation")) == 1  # not retried


def test_refused_key_stops_polling_at_once(fake):
    with make_client(fake) as client:
        task_id = client.create_video(VideoRequest(prompt="a cat"))
    with make_client(fake, key="expired-key") as client, pytest.raises(MiniMaxAuthError):
        client.wait_for_video(task_id, deadline_s=60)
    assert len(fake.calls("/v1/query/video_generation")) == 1


def test_rate_limit_is_retried_with_backoff(fake):
    fake.behavior.rate_limited_requests = 2
    with make_client(fake) as client:
        assert client.create_video(VideoRequest(prompt="a cat")).isdigit()
    assert len(fake.calls("/v1/video_generation")) == 3


def test_rate_limit_beyond_retries_raises(fake):
    fake.behavior.rate_limited_requests = 10
    with make_client(fake, max_retries=2) as client, pytest.raises(MiniMaxRateLimitError) as info:
        client.create_video(VideoRequest(prompt="a cat"))
    assert info.value.status_code == 1002
    assert len(fake.calls("/v1/video_generation")) == 3


def test_slow_query_times_out_and_is_retried(fake):
    with make_client(fake) as client:
        task_id = client.create_video(VideoRequest(prompt="a cat"))
    fake.behavior.delay_s, fake.behavior.slow_requests = 1.0, 2  # request #1 (create) was already made
    with make_client(fake, query_timeout=0.3) as client:
        assert client.query_video(task_id).state == "pending"
    assert len(fake.calls("/v1/query/video_generation")) == 2


def test_slow_create_is_not_resent(fake):
    """A create that timed out may exist on the server: resending would bill twice."""
    fake.behavior.delay_s, fake.behavior.slow_requests = 1.0, 1
    with make_client(fake, read_timeout=0.3) as client, pytest.raises(MiniMaxTransportError, match="may have been created"):
        client.create_video(VideoRequest(prompt="a cat"))
    assert len(fake.calls("/v1/video_generation")) == 1


def test_gateway_html_page_is_retried(fake):
    with make_client(fake) as client:
        task_id = client.create_video(VideoRequest(prompt="a cat"))
    fake.behavior.gateway_errors = 3  # counts from the first API call, so two more 502s come
    with make_client(fake) as client:
        assert client.query_video(task_id).status == "Preparing"
    assert len(fake.calls("/v1/query/video_generation")) == 3


def test_expired_download_url_is_refreshed(fake, tmp_path):
    fake.behavior.expired_urls = 1
    with make_client(fake) as client:
        client.generate_video(VideoRequest(prompt="a cat"), tmp_path / "cat.mp4")
    assert (tmp_path / "cat.mp4").read_bytes() == fake.behavior.video_bytes
    assert len(fake.calls("/v1/files/retrieve")) == 2


def test_truncated_download_is_retried_and_never_half_written(fake, tmp_path):
    fake.behavior.truncate_downloads = 2
    with make_client(fake) as client:
        client.generate_video(VideoRequest(prompt="a cat"), tmp_path / "cat.mp4")
    assert (tmp_path / "cat.mp4").read_bytes() == fake.behavior.video_bytes
    assert [p.name for p in tmp_path.iterdir()] == ["cat.mp4"]


def test_download_gives_up_cleanly(fake, tmp_path):
    fake.behavior.truncate_downloads = 99
    with make_client(fake, download_retries=1) as client, pytest.raises(MiniMaxTransportError, match="could not download"):
        client.generate_video(VideoRequest(prompt="a cat"), tmp_path / "cat.mp4")
    assert list(tmp_path.iterdir()) == []


def test_backup_download_url_is_used(fake, tmp_path):
    fake.behavior.broken_primary_url = True
    with make_client(fake) as client:
        client.generate_video(VideoRequest(prompt="a cat"), tmp_path / "cat.mp4")
    assert (tmp_path / "cat.mp4").read_bytes() == fake.behavior.video_bytes
    paths = [r.path for r in fake.requests if r.path.startswith("/download/")]
    assert paths[0].startswith("/download/missing-") and len(paths) == 2


def test_sensitive_prompt_is_a_content_error_not_retried(fake):
    with make_client(fake) as client, pytest.raises(MiniMaxContentError) as info:
        client.create_video(VideoRequest(prompt="a sensitive prompt"))
    assert info.value.status_code == 1026 and len(fake.calls("/v1/video_generation")) == 1


def test_polling_deadline(fake):
    fake.behavior.statuses = ["Processing"]
    with make_client(fake) as client:
        task_id = client.create_video(VideoRequest(prompt="a cat"))
        with pytest.raises(MiniMaxTimeoutError) as info:
            client.wait_for_video(task_id, deadline_s=0.1)
    assert info.value.last_status == "Processing" and task_id in str(info.value)


def test_group_id_only_when_configured(fake):
    with make_client(fake, group_id="1234") as client:
        client.create_video(VideoRequest(prompt="a cat"))
    assert fake.calls("/v1/video_generation")[0].query == {"GroupId": "1234"}


def test_validation_happens_before_sending(fake):
    bad = [
        VideoRequest(model="T2V-01", prompt="a cat", duration=6),
        VideoRequest(model="MiniMax-Hailuo-2.3-Fast", prompt="a cat"),
        VideoRequest(model="MiniMax-Hailuo-2.3", prompt="a cat", duration=10, resolution="1080P"),
        VideoRequest(model="MiniMax-Hailuo-2.3", prompt="a cat", first_frame_image="https://x/a.jpg",
                     last_frame_image="https://x/b.jpg"),
        VideoRequest(model="MiniMax-Hailuo-02", prompt="x" * 2001),
        VideoRequest(model="MiniMax-Hailuo-02"),
        VideoRequest(model="MiniMax-Hailuo-02", prompt="a cat", resolution="4K"),
    ]
    with make_client(fake) as client:
        for request in bad:
            with pytest.raises(ValueError):
                client.create_video(request)
    assert fake.requests == []


def test_bodies_per_mode(tmp_path):
    png = tmp_path / "face.png"
    Image.new("RGB", (400, 500), (200, 150, 120)).save(png)
    s2v = build_video_body(VideoRequest(model="S2V-01", prompt="she smiles", subject_image=str(png)))
    assert s2v["subject_reference"][0]["type"] == "character"
    assert s2v["subject_reference"][0]["image"][0].startswith("data:image/png;base64,")
    assert "duration" not in s2v and "first_frame_image" not in s2v
    fl2v = build_video_body(VideoRequest(model="MiniMax-Hailuo-02", prompt="grow", first_frame_image="https://x/a.jpg",
                                         last_frame_image="https://x/b.jpg", duration=10))
    assert fl2v["last_frame_image"] == "https://x/b.jpg" and fl2v["duration"] == 10
    custom = build_video_body(VideoRequest(model="kinema-toy", prompt="a red circle", extra={"seed": 3}))
    assert custom == {"model": "kinema-toy", "prompt": "a red circle", "seed": 3}


@pytest.mark.parametrize("size, message", [((200, 400), "short side"), ((1400, 320), "aspect ratio")])
def test_local_images_are_checked(tmp_path, size, message):
    path = tmp_path / "frame.jpg"
    Image.new("RGB", size).save(path)
    with pytest.raises(ValueError, match=message):
        build_video_body(VideoRequest(model="MiniMax-Hailuo-02", first_frame_image=str(path)))


def test_config_from_env_and_base_url_normalisation():
    config = MiniMaxConfig.from_env({"MINIMAX_API_KEY": "k", "MINIMAX_API_HOST": "https://api.minimaxi.com/v1/"})
    assert config.base_url == "https://api.minimaxi.com" and config.group_id is None
    assert MiniMaxConfig.from_env({"MINIMAX_API_KEY": "k"}).base_url == "https://api.minimax.io"
    with pytest.raises(ValueError, match="MINIMAX_API_KEY"):
        MiniMaxConfig.from_env({})


@pytest.mark.parametrize("host", ["https://api.minimax.io", "https://api.minimaxi.com/v1", "https://api.minimaxi.chat",
                                  "https://api.minimax.chat", "http://API.MiniMax.io:443"])
def test_minimax_hosts_need_a_key(host):
    with pytest.raises(ValueError, match="no MiniMax API key"):
        MiniMaxConfig.from_env({"MINIMAX_API_HOST": host})


def test_a_self_hosted_server_is_called_without_a_key(fake, tmp_path):
    # `kinema serve` on loopback without --api-key takes requests with no Authorization header.
    fake.behavior.keyless = True
    config = MiniMaxConfig.from_env({"MINIMAX_API_HOST": fake.url})
    assert config.api_key == ""
    with MiniMaxClient(dataclasses.replace(config, **FAST)) as client:
        result = client.generate_video(VideoRequest(prompt="a red fox runs"), tmp_path / "fox.mp4")
    assert result.path.read_bytes() == fake.behavior.video_bytes
    assert all("authorization" not in r.headers for r in fake.requests)


def test_chat_sends_schema_and_reads_usage(fake):
    fake.behavior.chat_replies = ['{"a": 1}']
    image = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}
    with make_client(fake) as client:
        reply = client.chat([{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}],
                            json_schema={"type": "object"}, schema_name="caption")
        with pytest.raises(ValueError, match="temperature"):
            client.chat([{"role": "user", "content": "hi"}], temperature=0.0)
    assert reply.content == '{"a": 1}' and reply.usage.prompt_tokens > 0
    sent = fake.calls("/v1/text/chatcompletion_v2")[0].body
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "caption", "schema": {"type": "object"}}}
    assert sent["model"] == "MiniMax-Text-01" and sent["max_completion_tokens"] == 2048
