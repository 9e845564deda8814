"""Writing files and folders atomically: made under a temporary name beside the target, then renamed.

A reader never sees half a file, and a kill leaves the old file (or none) plus a hidden temporary one.
The temporary file or folder is created the way a plain `open()` or `mkdir()` would create it, so the
umask applies and the result is 0644 / 0755 under the usual umask 022. (`tempfile.mkstemp` and
`mkdtemp` create 0600 / 0700, and the rename keeps that mode: every file kinema wrote used to come out
private whatever the umask.)

    with atomic_path("out/video.mp4") as tmp:
        encode(tmp)            # tmp is ".video-1a2b3c4d.mp4" in out/; it becomes out/video.mp4
    with atomic_folder("out/model") as tmp:
        save(tmp / "config.json")   # tmp is ".model-1a2b3c4d" in out/; it becomes out/model
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

_ATTEMPTS = 100


def _temp_name(target: Path) -> Path:
    # Keep the target's suffix last: writers that pick a format from the extension still see it.
    return target.with_name(f".{target.stem}-{secrets.token_hex(4)}{target.suffix}")


def temp_file_beside(target: str | os.PathLike) -> Path:
    """Create an empty, uniquely named hidden file in `target`'s folder (made if missing).

    Its mode is what `open(path, "w")` gives: 0666 less the umask.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_ATTEMPTS):
        tmp = _temp_name(target)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {target}")


def temp_folder_beside(target: str | os.PathLike) -> Path:
    """Create an empty, uniquely named hidden folder in `target`'s parent (made if missing).

    Its mode is what `mkdir` gives: 0777 less the umask. Fill it, then rename it onto `target`.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_ATTEMPTS):
        tmp = target.with_name(f".{target.name}-{secrets.token_hex(4)}")
        try:
            tmp.mkdir()
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {target}")


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on a clean exit it replaces `target`.

    On an exception the temporary file is removed and `target` is left as it was.
    """
    target = Path(target)
    tmp = temp_file_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; on a clean exit it replaces `target`.

    An existing `target` is first renamed aside (hidden, ".NAME-old") and removed only once the new
    folder is in place, so a kill never leaves half a folder under `target`'s name. On an exception
    the temporary folder is removed and `target` is left as it was.
    """
    target = Path(target)
    tmp = temp_folder_beside(target)
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `target` atomically. Returns `target` as a Path."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `target` atomically. Returns `target` as a Path."""
    return write_bytes_atomic(target, text.encode())


def save_safetensors(tensors: dict[str, Tensor], target: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """safetensors' `save_file`, atomically, leaving the file with the mode `open()` gives.

    (`save_file` writes through a private temporary file of its own, so its files come out 0600.)
    """
    from safetensors.torch import save_file

    with atomic_path(target) as tmp:
        mode = tmp.stat().st_mode
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, mode)
    return Path(target)
