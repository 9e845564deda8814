"""The `kinema` command line: one thin layer mapping subcommands to typed functions.

Each area registers its own subcommands (`register(subparsers)` in its `cli.py`); heavy imports
happen inside the handlers so `kinema --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from kinema import __version__
from kinema.errors import UsageError
from kinema.caption import cli as caption_cli
from kinema.clients import cli as clients_cli
from kinema.models import cli as models_cli
from kinema.data import cli as data_cli
from kinema import generate_cli
from kinema.train import cli as train_cli
from kinema.toyworld import cli as toyworld_cli
from kinema.toyworld import eval_cli
from kinema.serve import cli as serve_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kinema",
        description="kinema: an open HunyuanVideo text-to-video system. Curate and caption video data, train the "
        "causal VAE and the diffusion transformer, generate, and serve a MiniMax-compatible API.",
    )
    parser.add_argument("--version", action="version", version=f"kinema {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    models_cli.register(sub)
    caption_cli.register(sub)
    clients_cli.register(sub)
    data_cli.register(sub)
    generate_cli.register(sub)
    train_cli.register(sub)
    toyworld_cli.register(sub)
    eval_cli.register(sub)
    serve_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (UsageError, FileNotFoundError, ValueError) as e:
        print(f"kinema {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kinema {args.command}: interrupted", file=sys.stderr)
        return 130
