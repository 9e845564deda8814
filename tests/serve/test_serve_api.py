"""The real service over HTTP: MiniMax's flow with kinema's own client, every error code, signed downloads."""

from __future__ import annotations

import hashlib
import io
import hmac
import time
from pathlib import Path

import av
import httpx
import numpy as np
from conftest import LIVE_RPM, QUEUE_KEY
from serve_helpers import TINY_FRAMES, TINY_SIDE, ServiceProcess, auth, create, minimax_client, query, wait_finished

from kinema.clients.minimax import VideoRequest


def test_minimax_client_generates_end_to_end(live: ServiceProcess, new_key, tmp_path: Path) -> None:
    seen: list[str] = []
    with minimax_client(live.url, new_key()) as client:
        result = client.generate_video(
            VideoRequest(model="MiniMax-Hailuo-02", prompt="a blue square moves up", extra={"seed": 7}),
            tmp_path / "out.mp4", on_status=lambda s: seen.append(s.status),
        )
    assert seen[-1] == "Success" and set(seen) <= {"Queueing", "Preparing", "Processing", "Success"}
    assert result.task_id.isdigit() and result.file_id.isdigit() and result.task_id != result.file_id
    assert (result.video_width, result.video_height) == (TINY_SIDE, TINY_SIDE)
    with av.open(str(result.path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == TINY_FRAMES and frames[0].shape == (TINY_SIDE, TINY_SIDE, 3)


def test_same_seed_same_video_and_kinema_parameters(live: ServiceProcess, new_key) -> None:
    key = new_key()
    ids = [create(live.url, key, seed=11, frames=9, width=48, height=32)["task_id"] for _ in range(2)]
    answers = [wait_finished(live.url, key, t) for t in ids]
    assert [(a["status"], a["video_width"], a["video_height"]) for a in answers] == [("Success", 48, 32)] * 2
    videos = []
    for a in answers:
        file = httpx.get(f"{live.url}/v1/files/retrieve", params={"file_id": a["file_id"]}, headers=auth(key)).json()
        with av.open(io.BytesIO(httpx.get(file["file"]["download_url"]).content)) as container:
            videos.append(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))
    assert videos[0].shape == (9, 32, 48, 3)
    np.testing.assert_array_equal(videos[0], videos[1])


def test_responses_have_minimax_shapes(live: ServiceProcess, new_key) -> None:
    key = new_key()
    resp = httpx.post(f"{live.url}/v1/video_generation", json={"model": "T2V-01", "prompt": "a green triangle"},
                      headers=auth(key))
    assert resp.status_code == 200 and len(resp.headers["trace-id"]) == 32
    created = resp.json()
    assert created["base_resp"] == {"status_code": 0, "status_msg": "success"}
    done = wait_finished(live.url, key, created["task_id"])
    assert done["status"] == "Success" and isinstance(done["file_id"], str) and done["file_id"].isdigit()
    # ComfyUI sends int(file_id); others the string: both are the same digits on the wire.
    file = httpx.get(f"{live.url}/v1/files/retrieve", params={"file_id": int(done["file_id"]), "GroupId": "g"},
                     headers=auth(key)).json()
    assert file["base_resp"]["status_code"] == 0
    assert isinstance(file["file"]["file_id"], int) and str(file["file"]["file_id"]) == done["file_id"]
    assert file["file"]["purpose"] == "video_generation" and file["file"]["created_at"] <= time.time()
    body = httpx.get(file["file"]["download_url"]).content  # no Authorization header
    assert len(body) == file["file"]["bytes"] and body[4:8] == b"ftyp"
    remains = httpx.get(f"{live.url}/v1/token_plan/remains", headers=auth(key)).json()
    assert remains["base_resp"]["status_code"] == 0


def test_auth_errors_are_1004_and_header_forms_accepted(live: ServiceProcess, new_key) -> None:
    key = new_key()
    url = f"{live.url}/v1/query/video_generation?task_id=1"
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": key}, {"x-api-key": "nope"}):
        answer = httpx.get(url, headers=headers)
        assert answer.status_code == 200
        assert answer.json()["base_resp"]["status_code"] == 1004, headers
    for headers in ({"authorization": f"Bearer {key}"}, {"AUTHORIZATION": f"bearer  {key}"}, {"x-api-key": key}):
        # An authorised call about an unknown task gets 2013, not 1004.
        assert httpx.get(url, headers=headers).json()["base_resp"]["status_code"] == 2013, headers


def test_invalid_params_are_2013(live: ServiceProcess, new_key) -> None:
    key = new_key()
    bad_bodies = {
        "prompt has 2001 characters": {"prompt": "x" * 2001},
        "unknown model": {"model": "sora-2"},
        "frames must be": {"frames": 6},
        "width must be a multiple of 16": {"width": 40},
        "steps must be between": {"steps": 0},
        "first_frame_image not supported": {"first_frame_image": "https://example.com/a.png"},
        "duration must be 6 or 10": {"duration": 7},
        "prompt is empty": {"prompt": "   "},
        "callback_url host 'example.com' is not allowed": {"callback_url": "http://example.com/hook"},
    }
    for expected, body in bad_bodies.items():
        answer = httpx.post(f"{live.url}/v1/video_generation", headers=auth(key),
                            json={"model": "kinema", "prompt": "a red circle", **body}).json()
        assert answer["task_id"] == "" and answer["base_resp"]["status_code"] == 2013, body
        assert expected in answer["base_resp"]["status_msg"], (expected, answer)
    # Malformed JSON, a missing field and a missing query parameter: still HTTP 200 with 2013.
    raw = httpx.post(f"{live.url}/v1/video_generation", headers={**auth(key), "Content-Type": "application/json"},
                     content=b'{"model": "kinema", "prompt": ')
    assert raw.status_code == 200 and raw.json()["base_resp"]["status_code"] == 2013
    missing = httpx.post(f"{live.url}/v1/video_generation", headers=auth(key), json={"model": "kinema"}).json()
    assert missing["base_resp"]["status_code"] == 2013 and "prompt" in missing["base_resp"]["status_msg"]
    no_id = httpx.get(f"{live.url}/v1/query/video_generation", headers=auth(key))
    assert no_id.status_code == 200 and no_id.json()["base_resp"]["status_code"] == 2013
    bad_file = httpx.get(f"{live.url}/v1/files/retrieve", params={"file_id": "../../etc/passwd"}, headers=auth(key))
    assert bad_file.json()["base_resp"]["status_code"] == 2013
    # A huge body is refused before it is read (kinema takes no images, so bodies stay small).
    huge = httpx.post(f"{live.url}/v1/video_generation", headers=auth(key),
                      json={"model": "kinema", "prompt": "a", "first_frame_image": "data:image/png;base64," + "A" * 200_000})
    assert huge.status_code == 413 and huge.json()["base_resp"]["status_code"] == 2013
    assert huge.headers["trace-id"]


def test_tasks_are_private_to_their_key(live: ServiceProcess, new_key) -> None:
    owner, other = new_key(), new_key()
    done = wait_finished(live.url, owner, create(live.url, owner)["task_id"])
    assert query(live.url, other, done["task_id"])["base_resp"]["status_code"] == 2013
    stolen = httpx.get(f"{live.url}/v1/files/retrieve", params={"file_id": done["file_id"]}, headers=auth(other))
    assert stolen.json()["base_resp"]["status_code"] == 2013
    listed = httpx.get(f"{live.url}/v1/kinema/tasks", headers=auth(other)).json()
    assert listed["tasks"] == []


def test_creates_beyond_the_per_key_rate_answer_1002(live: ServiceProcess, new_key) -> None:
    key, bystander = new_key(), new_key()
    codes = [create(live.url, key)["base_resp"]["status_code"] for _ in range(LIVE_RPM + 1)]
    assert codes == [0] * LIVE_RPM + [1002]
    assert create(live.url, bystander)["base_resp"]["status_code"] == 0  # limits are per key


def test_full_queue_answers_1002(queue_only: ServiceProcess) -> None:
    before = httpx.get(f"{queue_only.url}/v1/kinema/info").json()["queued"]
    codes = [create(queue_only.url, QUEUE_KEY)["base_resp"] for _ in range(4 - before)]
    assert [c["status_code"] for c in codes] == [0] * (3 - before) + [1002]
    assert "queue is full" in codes[-1]["status_msg"]
    assert httpx.get(f"{queue_only.url}/v1/kinema/info").json()["queued"] == 3


def test_generation_failure_is_fail_with_a_reason(live: ServiceProcess, new_key) -> None:
    key = new_key()
    # Passes the API's checks; the pipeline refuses it (the tiny model has no guidance embedding).
    task_id = create(live.url, key, guidance=6.0)["task_id"]
    answer = wait_finished(live.url, key, task_id)
    assert answer["status"] == "Fail" and "file_id" not in answer
    assert answer["base_resp"]["status_code"] == 2013 and "guidance" in answer["base_resp"]["status_msg"]


def _sign(data_dir: Path, file_id: int, expires: int) -> str:
    secret = (data_dir / "secret.key").read_bytes()
    return hmac.new(secret, f"{file_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def test_download_urls_are_signed_expiring_and_support_range(live: ServiceProcess, new_key) -> None:
    key = new_key()
    done = wait_finished(live.url, key, create(live.url, key)["task_id"])
    file = httpx.get(f"{live.url}/v1/files/retrieve", params={"file_id": done["file_id"]}, headers=auth(key)).json()
    url, size, fid = file["file"]["download_url"], file["file"]["bytes"], file["file"]["file_id"]
    full = httpx.get(url)
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4" and len(full.content) == size
    part = httpx.get(url, headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and part.content == full.content[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{size}"
    assert httpx.get(url, headers={"Range": f"bytes={size + 10}-"}).status_code == 416

    base = f"{live.url}/v1/files/content/{fid}"
    expires = int(url.split("expires=")[1].split("&")[0])
    forged = httpx.get(base, params={"expires": expires + 3600, "signature": url.rsplit("=", 1)[1]})
    assert forged.status_code == 403 and "signature" in forged.json()["base_resp"]["status_msg"]
    past = int(time.time()) - 5
    expired = httpx.get(base, params={"expires": past, "signature": _sign(live.data_dir, fid, past)})
    assert expired.status_code == 403 and "expired" in expired.json()["base_resp"]["status_msg"]
    assert httpx.get(base).status_code == 403
    # A genuine signature for a file the service never wrote, and a path-traversal attempt.
    future = int(time.time()) + 60
    unknown = httpx.get(f"{live.url}/v1/files/content/12345", params={"expires": future,
                                                                      "signature": _sign(live.data_dir, 12345, future)})
    assert unknown.status_code == 404
    assert httpx.get(f"{live.url}/v1/files/content/..%2F..%2Fsecret.key").status_code == 404


def test_web_page_and_openapi_are_published(live: ServiceProcess) -> None:
    page = httpx.get(f"{live.url}/")
    assert page.status_code == 200 and 'id="prompt"' in page.text
    assert httpx.get(f"{live.url}/web/app.js").status_code == 200
    info = httpx.get(f"{live.url}/v1/kinema/info").json()
    assert (info["model"], info["workers"], info["auth_required"], info["width"]) == ("kinema-tiny", 1, True, TINY_SIDE)
    paths = httpx.get(f"{live.url}/openapi.json").json()["paths"]
    assert {"/v1/video_generation", "/v1/query/video_generation", "/v1/files/retrieve"} <= set(paths)
