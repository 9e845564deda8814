"""`kinema curate` and `kinema dataset stats|report`."""

from __future__ import annotations

import argparse

from kinema.errors import UsageError

# `kinema curate` names each failed file and its error up to this many; the manifest holds them all.
MAX_FAILURE_LINES = 20


def failure_lines(failures: tuple[tuple[str, str], ...], limit: int = MAX_FAILURE_LINES) -> list[str]:
    """One line per failed input file, its manifest error (which names the file; "SOURCE: " is put in front
    when it does not), the first `limit` of them, then how many more."""
    lines = [f"  {error}" if source in error else f"  {source}: {error}" for source, error in failures[:limit]]
    if len(failures) > limit:
        lines.append(f"  ... and {len(failures) - limit} more; see the manifest's error column")
    return lines


def _curate(args: argparse.Namespace) -> int:
    from kinema.data.config import load_config
    from kinema.data.pipeline import curate

    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    config = load_config(args.config)
    summary = curate(args.inputs, args.out, config, workers=args.workers, ray_address=args.ray,
                     write_images=not args.no_images, progress=False if args.no_progress else None)
    print(f"videos: {summary.videos} ({summary.failed} unreadable, {summary.skipped} done by an earlier run)")
    for line in failure_lines(summary.failures):
        print(line)
    print(f"video clips: {summary.clips} (kept {summary.kept}, rejected {summary.clips - summary.kept}), "
          f"images: {summary.images}")
    print(f"manifest: {summary.manifest}")
    # Non-zero only when nothing could be processed at all.
    return 1 if summary.failed == summary.videos else 0


def _stats(args: argparse.Namespace) -> int:
    from kinema.data.manifest import read_manifest
    from kinema.data.report import stats_table

    print(stats_table(read_manifest(args.dataset)))
    return 0


def _report(args: argparse.Namespace) -> int:
    from kinema.data.report import write_report

    print(write_report(args.dataset, args.out))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the curation subcommands to the `kinema` parser."""
    p = sub.add_parser("curate", help="turn raw videos into staged, bucketed training sets")
    p.add_argument("inputs", nargs="+", help="video files, folders, or .txt files listing paths")
    p.add_argument("--out", required=True, help="dataset folder to write (reruns resume)")
    p.add_argument("--config", default=None, help="curation YAML (default: the shipped kinema/configs/curate.yaml; copy it to change it)")
    p.add_argument("--workers", type=int, default=None, help="parallel videos (default: one per core; decoder threads fill the cores left over)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray Data (a local instance, or the cluster at ADDRESS)")
    p.add_argument("--no-images", action="store_true", help="do not extract the image sets' frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown when stderr is a terminal)")
    p.set_defaults(run=_curate)

    d = sub.add_parser("dataset", help="inspect a dataset folder")
    dsub = d.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    s = dsub.add_parser("stats", help="print a summary table")
    s.add_argument("dataset")
    s.set_defaults(run=_stats)
    r = dsub.add_parser("report", help="write a self-contained HTML report")
    r.add_argument("dataset")
    r.add_argument("--out", default=None, help="HTML file (default: DATASET/report.html)")
    r.set_defaults(run=_report)
