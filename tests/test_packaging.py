"""The wheel stands alone: built from the source, installed into a fresh virtual environment, it
generates with the shipped toy model from a folder outside the repository.

The fresh environment sees this environment's dependencies (torch, transformers, ...) through a
`.pth` line, so nothing is downloaded; kinema itself comes only from the wheel (the editable install's
own `.pth` is not read from there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_wheel_generates_from_any_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # 1. Build from a copy of the source, so the build leaves nothing in the repository.
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", str(dist), str(source)], tmp_path, env)
    (wheel,) = dist.glob("kinema-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kinema/checkpoints/toy/pipeline.json" in names and "kinema/configs/curate.yaml" in names

    # 2. A fresh environment that sees this one's dependencies, and kinema from the wheel only.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path, env).strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "project-deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], tmp_path, env)

    # 3. Generate from a folder outside the repository, with the default (shipped) model.
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(python), "-c", "import kinema; print(kinema.__file__)"], work, env).strip()
    assert Path(where).is_relative_to(venv), where
    out = _run([str(venv / "bin" / "kinema"), "generate", "a red circle moves to the right", "--steps", "2",
                "-o", "clip.mp4"], work, env)
    assert (work / "clip.mp4").stat().st_size > 1000, out
