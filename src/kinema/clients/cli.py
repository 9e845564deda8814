"""`kinema minimax generate | wait | caption`: MiniMax's video generation and vision chat from the shell.

The key comes from `MINIMAX_API_KEY`, the host from `MINIMAX_API_HOST` (default the international
host; the mainland host or a self-hosted `kinema serve` work too) or `--base-url`. MiniMax's own hosts
need the key; a self-hosted server is called without one when none is set (`kinema serve` without
`--api-key` takes none on loopback).
"""

from __future__ import annotations

import argparse
import sys

from kinema.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("minimax", help="call MiniMax's API: generate videos, caption images",
                       description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--base-url", help="API host (default $MINIMAX_API_HOST or https://api.minimax.io)")
    cmds = p.add_subparsers(dest="minimax_command", required=True, metavar="ACTION")

    g = cmds.add_parser("generate", help="generate a video and download it", parents=[common])
    g.add_argument("prompt", metavar="PROMPT", nargs="?", default=None, help="text prompt (optional with --first-frame)")
    g.add_argument("-o", "--output", help="where to write the MP4 (required unless --no-wait)")
    g.add_argument("--model", default=None, help="video model (default MiniMax-Hailuo-02)")
    g.add_argument("--duration", type=int, default=None, help="seconds (Hailuo models: 6 or 10)")
    g.add_argument("--resolution", default=None, help="512P, 720P, 768P or 1080P (per model)")
    g.add_argument("--first-frame", metavar="IMAGE", help="image-to-video start frame (file or URL)")
    g.add_argument("--last-frame", metavar="IMAGE", help="end frame (MiniMax-Hailuo-02 with --first-frame)")
    g.add_argument("--subject-image", metavar="IMAGE", help="face reference (S2V-01)")
    g.add_argument("--no-prompt-optimizer", action="store_true", help="follow the prompt strictly")
    g.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for the task (default 20 min for Hailuo models, else 10 min)")
    g.add_argument("--no-wait", action="store_true", help="print the task id and exit; fetch it with `wait`")
    g.set_defaults(run=run_generate)

    w = cmds.add_parser("wait", help="wait for a task created earlier and download its video", parents=[common])
    w.add_argument("task_id", metavar="TASK_ID")
    w.add_argument("-o", "--output", required=True, help="where to write the MP4")
    w.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait (default 1200)")
    w.set_defaults(run=run_wait)

    c = cmds.add_parser("caption", help="caption an image (or a video's frames) as structured JSON", parents=[common])
    c.add_argument("media", metavar="IMAGE", help="image or video file")
    c.add_argument("--model", default=None, help="chat model (default MiniMax-Text-01)")
    c.add_argument("--frames", type=int, default=4, help="frames sampled from a video (default 4)")
    c.set_defaults(run=run_caption_media)


def _client(args: argparse.Namespace):
    from kinema.clients.minimax import MiniMaxClient, MiniMaxConfig

    return MiniMaxClient(MiniMaxConfig.from_env(base_url=args.base_url))


def _print_status(status) -> None:
    print(f"task {status.task_id}: {status.status}", file=sys.stderr)


def run_generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kinema.clients.errors import MiniMaxError
    from kinema.clients.video_params import DEFAULT_VIDEO_MODEL, VideoRequest

    if not args.no_wait and not args.output:
        raise UsageError("give -o OUT.mp4 (or --no-wait to only create the task)")
    request = VideoRequest(
        model=args.model or DEFAULT_VIDEO_MODEL, prompt=args.prompt, first_frame_image=args.first_frame,
        last_frame_image=args.last_frame, subject_image=args.subject_image, duration=args.duration,
        resolution=args.resolution, prompt_optimizer=False if args.no_prompt_optimizer else None,
    )
    with _client(args) as client:
        try:
            if args.no_wait:
                print(client.create_video(request))
                return 0
            result = client.generate_video(request, Path(args.output), deadline_s=args.timeout, on_status=_print_status)
        except MiniMaxError as e:
            print(f"kinema minimax generate: {e}", file=sys.stderr)
            return 1
    print(f"{result.path} ({result.video_width}x{result.video_height}, {result.bytes} bytes, task {result.task_id})")
    return 0


def run_wait(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kinema.clients.errors import MiniMaxError

    with _client(args) as client:
        try:
            status = client.wait_for_video(args.task_id, deadline_s=args.timeout, on_status=_print_status)
            assert status.file_id is not None
            client.download_file(status.file_id, Path(args.output))
        except MiniMaxError as e:
            print(f"kinema minimax wait: {e}", file=sys.stderr)
            return 1
    print(args.output)
    return 0


def run_caption_media(args: argparse.Namespace) -> int:
    from kinema.caption.frames import load_image, sample_video_frames
    from kinema.caption.minimax import MiniMaxChat
    from kinema.caption.vlm import CaptionError, caption_with_vlm
    from kinema.clients.errors import MiniMaxError
    from kinema.clients.minimax import DEFAULT_CHAT_MODEL

    try:
        frames, is_image = [load_image(args.media)], True
    except ValueError:
        frames, is_image = sample_video_frames(args.media, count=args.frames), False
    with _client(args) as client:
        try:
            result = caption_with_vlm(MiniMaxChat(client, model=args.model or DEFAULT_CHAT_MODEL), frames, is_image=is_image)
        except (MiniMaxError, CaptionError) as e:
            print(f"kinema minimax caption: {e}", file=sys.stderr)
            return 1
    print(result.caption.model_dump_json(indent=2, exclude_none=True))
    u = result.usage
    print(f"{result.replies} replies, {u.prompt_tokens} prompt + {u.completion_tokens} completion tokens", file=sys.stderr)
    return 0
