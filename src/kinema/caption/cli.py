"""`kinema caption DIR`: write structured captions into a dataset's manifest."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING

from kinema.errors import UsageError

if TYPE_CHECKING:
    from kinema.caption.vlm import ChatBackend

BACKENDS = ("offline", "minimax", "openai")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "caption",
        help="caption every kept clip and image of a dataset (JSON captions into its manifest)",
        description="Caption every kept clip and image of a dataset with a VLM or offline, writing JSON "
        "captions into DIR/manifest.parquet. Resumable: captioned rows are skipped on rerun.",
    )
    p.add_argument("dataset", metavar="DIR", help="dataset folder holding manifest.parquet")
    p.add_argument("--backend", choices=BACKENDS, default="offline",
                   help="offline: from measurements, no network; minimax: MiniMax vision chat "
                   "(MINIMAX_API_KEY, MINIMAX_API_HOST); openai: an OpenAI-compatible endpoint (--base-url)")
    p.add_argument("--model", help="chat model (minimax default: MiniMax-Text-01; required for openai)")
    p.add_argument("--base-url", help="API root: MiniMax host, or the OpenAI-compatible URL including /v1")
    p.add_argument("--api-key-env", default=None,
                   help="environment variable holding the key (default MINIMAX_API_KEY / OPENAI_API_KEY)")
    p.add_argument("--response-format", choices=("json_schema", "json_object", "none"), default="json_schema",
                   help="how the openai backend asks for JSON (default json_schema)")
    p.add_argument("--concurrency", type=int, default=4, help="rows captioned at once (default 4)")
    p.add_argument("--rpm", type=float, default=None, help="at most this many requests per minute")
    p.add_argument("--frames", type=int, default=4, help="frames sampled per clip (default 4)")
    p.add_argument("--max-side", type=int, default=512, help="long side of sampled frames (default 512)")
    p.add_argument("--max-attempts", type=int, default=3, help="replies per row before giving up (default 3)")
    p.add_argument("--camera-threshold", type=float, default=0.8,
                   help="minimum classifier confidence to put camera motion in the caption (default 0.8)")
    p.add_argument("--recaption", action="store_true", help="caption rows that already have a caption too")
    p.add_argument("--limit", type=int, default=None, help="caption at most N rows")
    p.add_argument("--usd-per-mtok-input", type=float, default=None, help="price per million prompt tokens")
    p.add_argument("--usd-per-mtok-output", type=float, default=None, help="price per million completion tokens")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_caption)


def run_caption(args: argparse.Namespace) -> int:
    from kinema.caption.dataset import CaptionRunConfig, caption_dataset
    from kinema.caption.item import Captioner, VLMCaptioner
    from kinema.caption.offline import OfflineCaptioner
    from kinema.caption.ratelimit import RateLimitedChat, RateLimiter
    from kinema.caption.openai_compat import OpenAICompatError
    from kinema.clients.errors import MiniMaxError

    config = CaptionRunConfig(
        frames=args.frames, max_side=args.max_side, concurrency=args.concurrency,
        camera_threshold=args.camera_threshold, recaption=args.recaption, limit=args.limit,
        usd_per_mtok_input=args.usd_per_mtok_input, usd_per_mtok_output=args.usd_per_mtok_output,
        progress=not args.no_progress,
    )
    if args.max_attempts < 1:
        raise UsageError(f"--max-attempts must be at least 1, got {args.max_attempts}")
    with ExitStack() as stack:
        captioner: Captioner
        if args.backend == "offline":
            captioner = OfflineCaptioner()
        else:
            chat = _chat_backend(args, stack)
            if args.rpm is not None:
                chat = RateLimitedChat(chat, RateLimiter(args.rpm))
            captioner = VLMCaptioner(chat, max_attempts=args.max_attempts)
        try:
            summary = caption_dataset(args.dataset, captioner, config)
        except (MiniMaxError, OpenAICompatError) as e:
            print(f"kinema caption: stopped: {e} (captions written so far are saved)", file=sys.stderr)
            return 1
    for line in summary.lines():
        print(line)
    return 1 if summary.todo and not summary.captioned else 0


def _chat_backend(args: argparse.Namespace, stack: ExitStack) -> ChatBackend:
    from kinema.caption.minimax import MiniMaxChat
    from kinema.caption.openai_compat import OpenAIChat, OpenAIChatConfig
    from kinema.clients.minimax import DEFAULT_CHAT_MODEL, MiniMaxClient, MiniMaxConfig

    if args.backend == "minimax":
        key = os.environ.get(args.api_key_env, "") if args.api_key_env else None
        if args.api_key_env and not key:
            raise UsageError(f"--api-key-env names {args.api_key_env}, which is not set")
        config = MiniMaxConfig.from_env(api_key=key, base_url=args.base_url)
        client = stack.enter_context(MiniMaxClient(config))
        return MiniMaxChat(client, model=args.model or DEFAULT_CHAT_MODEL)
    if not args.base_url:
        raise UsageError("--backend openai needs --base-url, e.g. http://127.0.0.1:8000/v1")
    if not args.model:
        raise UsageError("--backend openai needs --model, the name the server serves")
    key = os.environ.get(args.api_key_env or "OPENAI_API_KEY", "")
    config = OpenAIChatConfig(base_url=args.base_url, model=args.model, api_key=key,
                              response_format=args.response_format)
    return stack.enter_context(OpenAIChat(config))
