"""`kinema serve`: the MiniMax-compatible generation service."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from kinema.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="serve a model over MiniMax's video generation API (with a web page at /)",
        description="Serve a kinema pipeline over MiniMax's video API (POST /v1/video_generation, "
        "GET /v1/query/video_generation, GET /v1/files/retrieve, signed download URLs), so MiniMax clients "
        "generate with it when pointed at this host (MINIMAX_API_HOST=http://HOST:PORT). Tasks are durable: "
        "kill the service at any point and restart it, and every accepted task still finishes or fails with a "
        "reason. A web page is served at /.",
    )
    p.add_argument("--checkpoint", default=None, help="pipeline folder (default: the shipped toy model)")
    p.add_argument("--data-dir", required=True, help="the service's folder: task database, outputs, signing key")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 = any free port)")
    p.add_argument("--api-key", action="append", default=[], metavar="KEY",
                   help="accepted Bearer key (repeat for several); without keys only loopback hosts are allowed")
    p.add_argument("--api-key-file", metavar="FILE", help="file with one accepted key per line (keeps keys out of ps)")
    p.add_argument("--workers", type=int, default=1, help="generation worker processes (default 1; 0 = queue only)")
    p.add_argument("--device", default="cpu", help="torch device of the workers (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: CPUs / workers)")
    p.add_argument("--max-queue", type=int, default=100, help="waiting tasks before creates answer 1002 (default 100)")
    p.add_argument("--rpm", type=int, default=60, help="video generations per key per minute (default 60)")
    p.add_argument("--query-rpm", type=int, default=1200, help="queries/retrieves per key per minute (default 1200)")
    p.add_argument("--url-ttl", type=float, default=3600.0, help="download URL lifetime in seconds (default 3600)")
    p.add_argument("--retention-hours", type=float, default=24.0,
                   help="delete finished tasks and their videos after this many hours (default 24)")
    p.add_argument("--max-attempts", type=int, default=3,
                   help="runs a task gets when workers die under it, before it fails (default 3)")
    p.add_argument("--public-url", default=None, help="base of download URLs behind a proxy, e.g. https://video.example.com")
    p.add_argument("--callback-host", action="append", default=None, metavar="HOST",
                   help="allow callback_url only on this host (repeat; default: any host)")
    p.add_argument("--max-steps", type=int, default=100, help="largest steps a request may ask for (default 100)")
    p.add_argument("--max-frames", type=int, default=129, help="largest frames a request may ask for (default 129)")
    p.add_argument("--max-side", type=int, default=1280, help="largest width/height in pixels (default 1280)")
    p.set_defaults(run=run_serve)


def _read_keys(path: str | None) -> list[str]:
    if path is None:
        return []
    if not Path(path).is_file():
        raise FileNotFoundError(f"API key file {path} does not exist")
    lines = Path(path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket, so the port is known (and connections queue) before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets that say so, and without
    # it Nagle's algorithm holds each keep-alive response's body for the client's delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({e.strerror})") from None
    sock.listen(2048)
    return sock


def run_serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from kinema.pipeline_folder import default_checkpoint
    from kinema.serve.app import create_app
    from kinema.serve.config import ServeConfig
    from kinema.serve.service import DataDirBusy, Service

    if args.checkpoint is None:
        checkpoint = default_checkpoint()
    else:
        checkpoint = Path(args.checkpoint)
    config = ServeConfig(
        checkpoint=checkpoint,
        data_dir=Path(args.data_dir), host=args.host, port=args.port,
        api_keys=tuple(args.api_key) + tuple(_read_keys(args.api_key_file)), workers=args.workers,
        device=args.device, worker_threads=args.threads, max_queue=args.max_queue, create_rpm=args.rpm,
        query_rpm=args.query_rpm, max_attempts=args.max_attempts, url_ttl_s=args.url_ttl,
        retention_s=args.retention_hours * 3600.0,
        callback_hosts=tuple(args.callback_host) if args.callback_host else None, public_url=args.public_url,
        max_steps=args.max_steps, max_frames=args.max_frames, max_side=args.max_side,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sock = _listen(config.host, config.port)
    try:
        service = Service.open(config)
    except DataDirBusy as e:
        sock.close()
        raise UsageError(str(e)) from None
    except BaseException:
        sock.close()
        raise
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    auth = f"{len(config.api_keys)} API key(s)" if config.api_keys else "no API key (loopback only)"
    print(f"kinema serve: http://{shown}:{port} serving {service.model.name} with {config.workers} worker(s), "
          f"{auth}; data in {config.data_dir}", flush=True)
    server = uvicorn.Server(uvicorn.Config(
        create_app(service), log_level="warning", access_log=False, timeout_graceful_shutdown=5,
    ))
    server.run(sockets=[sock])
    return 0 if server.started else 1
