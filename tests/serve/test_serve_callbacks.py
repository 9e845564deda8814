"""Callbacks against a local receiver: the challenge handshake, then one push per status change."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from serve_helpers import ServiceProcess, auth, create, wait_finished


class Receiver:
    """A callback receiver on 127.0.0.1 that records what it gets; `echo=False` ignores challenges."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.bodies.append(body)
                reply = {"challenge": body["challenge"]} if "challenge" in body and receiver.echo else {"status": "ok"}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def pushes(self) -> list[dict]:
        return [b for b in self.bodies if "challenge" not in b]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_challenge_then_status_pushes(live: ServiceProcess, new_key, receiver: Receiver) -> None:
    key = new_key()
    created = create(live.url, key, callback_url=receiver.url)
    assert created["base_resp"]["status_code"] == 0
    assert len(receiver.bodies) == 1 and len(receiver.bodies[0]["challenge"]) >= 16  # before the task existed
    done = wait_finished(live.url, key, created["task_id"])
    deadline = time.monotonic() + 10
    while len(receiver.pushes()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pushes = receiver.pushes()
    assert [p["status"] for p in pushes] == ["processing", "success"]
    assert {p["task_id"] for p in pushes} == {created["task_id"]}
    assert pushes[1]["file_id"] == done["file_id"] and pushes[1]["base_resp"]["status_code"] == 0


def test_failure_is_pushed_with_its_reason(live: ServiceProcess, new_key, receiver: Receiver) -> None:
    key = new_key()
    task_id = create(live.url, key, callback_url=receiver.url, guidance=3.0)["task_id"]
    wait_finished(live.url, key, task_id)
    deadline = time.monotonic() + 10
    while len(receiver.pushes()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    last = receiver.pushes()[-1]
    assert last["status"] == "failed" and last["base_resp"]["status_code"] == 2013


def test_receiver_that_does_not_echo_gets_no_task(live: ServiceProcess, new_key) -> None:
    key = new_key()
    silent = Receiver(echo=False)
    try:
        refused = create(live.url, key, callback_url=silent.url)
    finally:
        silent.close()
    assert refused["task_id"] == "" and refused["base_resp"]["status_code"] == 2013
    assert "challenge" in refused["base_resp"]["status_msg"]
    # Nobody listening at all: refused as well, within the handshake timeout.
    gone = create(live.url, key, callback_url=silent.url)
    assert gone["base_resp"]["status_code"] == 2013
    assert httpx.get(f"{live.url}/v1/kinema/tasks", headers=auth(key)).json()["tasks"] == []
