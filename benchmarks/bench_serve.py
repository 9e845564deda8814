"""Load on `kinema serve` over loopback: API latency with the worker idle vs busy generating, and throughput.

Side by side in one run, the same load against two services started here:

  idle   --workers 0: the API alone (tasks queue, nothing generates): the latency floor
  busy   --workers 1: a worker generating without pause (every client keeps a task queued)

The load: `--clients` concurrent clients (default 50), each with its own API key, for `--seconds`;
the two scenarios alternate for `--rounds` rounds (so a shared machine's load spreads over both) and
each scenario's rounds are pooled. A client creates a task, then polls it every `--poll` seconds; when it succeeds the client
retrieves its download URL and creates the next; after `--patience` polls it stops waiting and
creates the next anyway (so creates keep coming while the worker is saturated). Reported: p50/p99
of create, query and retrieve latency as the client sees it (HTTP round trip on loopback), and
tasks finished per second with the median worker time per task. The target is p99 <= 50 ms for
create and query while busy. Appends to benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_serve.py [--checkpoint DIR] [--seconds 10] [--rounds 3] [--clients 50]

Without --checkpoint it uses the shipped toy model if present, else a tiny random pipeline built here
(generation cost, not quality, is what loads the worker).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx

RESULTS = Path(__file__).with_name("RESULTS.md")


def tiny_pipeline(folder: Path) -> Path:
    import torch

    from kinema.models import DiTConfig, VAEConfig, build_dit, build_vae
    from kinema.options import SamplingDefaults
    from kinema.pipeline_folder import PipelineSpec, save_pipeline

    torch.manual_seed(0)
    dit = build_dit(DiTConfig(in_channels=4, out_channels=4, heads=2, head_dim=16, depth_double=1, depth_single=1,
                              depth_refiner=1, patch=(1, 2, 2), text_dim=384, pooled_dim=384, rope_dims=(4, 6, 6),
                              guidance_embed=False))
    vae = build_vae(VAEConfig(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                              norm_num_groups=4, scaling_factor=1.0))
    defaults = SamplingDefaults(steps=20, frames=9, height=64, width=64)
    return save_pipeline(folder, dit, vae, PipelineSpec("minilm", defaults))


def generation_seconds(checkpoint: Path, repeats: int = 3) -> float:
    """Median seconds of one generation in this process (torch threads = all CPUs, as one worker uses):
    the best one worker can do, so 1 / this is the throughput limit."""
    import torch

    from kinema.pipeline import Pipeline

    torch.set_num_threads(os.cpu_count() or 1)
    pipe = Pipeline.from_pretrained(checkpoint)
    pipe("warm up", seed=0)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        pipe("a red circle moves to the right", seed=i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def start_service(checkpoint: Path, data_dir: Path, workers: int, keys: list[str]) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "kinema", "serve", "--checkpoint", str(checkpoint), "--data-dir", str(data_dir),
           "--port", "0", "--workers", str(workers), "--max-queue", "100000"]
    for key in keys:
        cmd += ["--api-key", key]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    match = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline())
    if match is None:
        raise SystemExit("kinema serve did not start")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, match.group(0)


async def wait_for_worker(client: httpx.AsyncClient, url: str, key: str, timeout_s: float = 300) -> None:
    """Create one task and wait for it: the worker has loaded its model and generated once."""
    headers = {"Authorization": f"Bearer {key}"}
    created = (await client.post(f"{url}/v1/video_generation", json={"model": "kinema", "prompt": "warm up"},
                                 headers=headers)).json()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = (await client.get(f"{url}/v1/query/video_generation", params={"task_id": created["task_id"]},
                                   headers=headers)).json()
        if answer["status"] in ("Success", "Fail"):
            return
        await asyncio.sleep(0.2)
    raise SystemExit("the worker did not finish a warm-up task in time")


class Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: the load generator must cost far less CPU
    than the server it measures (httpx's async client costs a few ms per request, more than the server)."""

    def __init__(self, url: str, key: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.auth = f"Authorization: Bearer {key}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, body: dict | None = None) -> dict:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n").encode()
        self.writer.write(head + self.auth + b"\r\n" + data)
        status = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        if not status.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{method} {target}: {status!r} {payload[:200]!r}")
        return json.loads(payload)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def client_loop(url: str, key: str, end: float, poll_s: float, patience: int,
                      lat: dict[str, list[float]], codes: dict[str, int]) -> None:
    conn = Connection(url, key)

    async def call(kind: str, method: str, target: str, body: dict | None = None) -> dict:
        start = time.perf_counter()
        data = await conn.request(method, target, body)
        lat[kind].append(time.perf_counter() - start)
        code = data["base_resp"]["status_code"]
        if code and not (kind == "query" and data.get("status") == "Fail"):
            codes[f"{kind} {code}"] += 1
        return data

    prompts = ["a red circle moves to the right", "a blue square moves up", "a green triangle moves left"]
    n = 0
    # Clients start at random offsets within one cycle, as independent users would, not in lockstep bursts.
    await asyncio.sleep(random.uniform(0.0, poll_s * patience))
    try:
        while time.monotonic() < end:
            n += 1
            created = await call("create", "POST", "/v1/video_generation",
                                 {"model": "MiniMax-Hailuo-02", "prompt": prompts[n % 3], "seed": n})
            if not created.get("task_id"):
                await asyncio.sleep(poll_s)
                continue
            for _ in range(patience):
                await asyncio.sleep(poll_s)
                if time.monotonic() >= end:
                    return
                answer = await call("query", "GET", f"/v1/query/video_generation?task_id={created['task_id']}")
                if answer["status"] == "Success":
                    await call("retrieve", "GET", f"/v1/files/retrieve?file_id={answer['file_id']}")
                    break
                if answer["status"] == "Fail":
                    break
    finally:
        conn.close()


def finished_since(db: Path, since: float) -> tuple[int, float | None]:
    """Tasks that succeeded after `since` (unix s), and the median worker time per run."""
    con = sqlite3.connect(db)
    try:
        (n,) = con.execute("SELECT count(*) FROM tasks WHERE status = 'Success' AND finished_at >= ?",
                           (since,)).fetchone()
        runs = [e - s for s, e in con.execute(
            "SELECT started_at, ended_at FROM runs WHERE outcome = 'success' AND ended_at >= ?", (since,))]
    finally:
        con.close()
    return n, (statistics.median(runs) if runs else None)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000.0


async def scenario(name: str, checkpoint: Path, workers: int, args: argparse.Namespace, tmp: Path) -> dict:
    keys = [f"bench-key-{i}" for i in range(args.clients)] + ["bench-warmup"]
    data_dir = tmp / name
    proc, url = start_service(checkpoint, data_dir, workers, keys)
    limits = httpx.Limits(max_connections=args.clients + 5, max_keepalive_connections=args.clients + 5)
    try:
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
            for _ in range(100):
                try:
                    if (await client.get(f"{url}/v1/kinema/info")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            if workers:
                await wait_for_worker(client, url, "bench-warmup")
            lat: dict[str, list[float]] = defaultdict(list)
            codes: dict[str, int] = defaultdict(int)
            started = time.time()
            end = time.monotonic() + args.seconds
            await asyncio.gather(*(client_loop(url, keys[i], end, args.poll, args.patience, lat, codes)
                                   for i in range(args.clients)))
            elapsed = time.time() - started
        done, per_task = finished_since(data_dir / "tasks.db", started)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"name": name, "lat": lat, "codes": dict(codes), "done": done, "per_task": per_task, "elapsed": elapsed}


def merge(runs: list[dict]) -> dict:
    """One scenario's rounds pooled: all latencies, summed counts, and each round's query p99."""
    lat: dict[str, list[float]] = defaultdict(list)
    codes: dict[str, int] = defaultdict(int)
    for run in runs:
        for kind, xs in run["lat"].items():
            lat[kind] += xs
        for code, n in run["codes"].items():
            codes[code] += n
    per_task = [run["per_task"] for run in runs if run["per_task"]]
    return {
        "name": runs[0]["name"].rsplit("-", 1)[0], "lat": lat, "codes": dict(codes),
        "done": sum(run["done"] for run in runs), "elapsed": sum(run["elapsed"] for run in runs),
        "per_task": statistics.median(per_task) if per_task else None,
        "round_p99": [pct(run["lat"]["query"], 0.99) for run in runs if run["lat"]["query"]],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="pipeline folder (default: toy model, else a tiny one)")
    p.add_argument("--seconds", type=float, default=10.0, help="load duration per scenario and round (default 10)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of idle then busy, pooled (default 3)")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    p.add_argument("--poll", type=float, default=0.2, help="seconds between a client's polls (default 0.2)")
    p.add_argument("--patience", type=int, default=10, help="polls before a client creates its next task (default 10)")
    p.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.checkpoint:
            checkpoint = Path(args.checkpoint)
        else:
            from kinema.pipeline_folder import default_checkpoint

            checkpoint = default_checkpoint()
            if not (checkpoint / "pipeline.json").is_file():
                checkpoint = tiny_pipeline(tmp / "tiny")
        alone = generation_seconds(checkpoint)
        rounds = [[asyncio.run(scenario(f"{name}-{r}", checkpoint, workers, args, tmp))
                   for name, workers in (("idle", 0), ("busy", 1))] for r in range(args.rounds)]
    results = [merge([rnd[i] for rnd in rounds]) for i in range(2)]

    rows = ["| worker | route | requests | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
    for r in results:
        for kind in ("create", "query", "retrieve"):
            xs = r["lat"].get(kind, [])
            if xs:
                rows.append(f"| {r['name']} | {kind} | {len(xs)} | {pct(xs, 0.5):.1f} | {pct(xs, 0.99):.1f} | "
                            f"{max(xs) * 1000:.1f} |")
    busy = results[1]
    rate = busy["done"] / busy["elapsed"]
    per_task = f"{busy['per_task']:.2f} s" if busy["per_task"] else "n/a"
    idle_q, busy_q = pct(results[0]["lat"]["query"], 0.99), pct(busy["lat"]["query"], 0.99)
    summary = [
        "",
        f"Throughput while busy: {busy['done']} tasks in {busy['elapsed']:.1f} s = {rate:.2f} tasks/s "
        f"(median worker time per task {per_task}); one generation alone in-process takes {alone:.2f} s, "
        f"a limit of {1 / alone:.2f} tasks/s ({rate * alone:.0%} reached). Query p99 busy / idle: {busy_q / idle_q:.2f}x; "
        f"query p99 per round: idle {', '.join(f'{x:.0f}' for x in results[0]['round_p99'])} ms, "
        f"busy {', '.join(f'{x:.0f}' for x in busy['round_p99'])} ms.",
        f"Non-zero base_resp codes: idle {results[0]['codes'] or 'none'}, busy {busy['codes'] or 'none'}.",
    ]
    table = rows + summary
    print("\n".join(table))
    if args.no_write:
        return
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python benchmarks/bench_serve.py " + " ".join(sys.argv[1:])
    load = os.getloadavg()[0]
    header = [
        f"\n## bench_serve: API latency under load, worker idle vs busy — {stamp}\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (load average {load:.1f} at the end), "
        f"Python {platform.python_version()}  ",
        f"Command: `{command.strip()}`  ",
        f"Load: {args.clients} clients on loopback, one key each, {args.rounds} rounds of {args.seconds:g} s per "
        f"scenario (idle and busy alternate, results pooled), poll every "
        f"{args.poll:g} s; checkpoint `{checkpoint.name}`; latency is the client's HTTP round trip.\n",
    ]
    with RESULTS.open("a") as f:
        f.write("\n".join(header + table) + "\n")


if __name__ == "__main__":
    main()
