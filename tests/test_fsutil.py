"""kinema.fsutil: atomic writes that leave nothing half-written and give files the umask's mode."""

import os
import stat

import pytest

from kinema.fsutil import atomic_folder, atomic_path, temp_folder_beside, write_text_atomic


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_final_file_has_the_mode_open_would_give(tmp_path, umask_027):
    target = write_text_atomic(tmp_path / "sub" / "a.json", "{}")
    assert target.read_text() == "{}" and mode(target) == 0o640
    assert mode(temp_folder_beside(tmp_path / "folder")) == 0o750


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_text_atomic(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".a-") and tmp.suffix == ".txt"
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with atomic_folder(target) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "a").write_text("half")
        raise RuntimeError("killed")
    assert (target / "a").read_text() == "old"
    with atomic_folder(target) as tmp:
        (tmp / "b").write_text("new")
    assert [p.name for p in target.iterdir()] == ["b"]  # replaced, not merged
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary or old folder left


def test_temporary_names_never_collide(tmp_path):
    folders = {temp_folder_beside(tmp_path / "x") for _ in range(50)}
    assert len(folders) == 50 and all(f.name.startswith(".x-") and f.is_dir() for f in folders)


def test_safetensors_files_get_the_mode_open_gives(tmp_path):
    import torch
    from safetensors.torch import load_file

    from kinema.fsutil import save_safetensors

    old = os.umask(0o022)
    try:
        path = save_safetensors({"x": torch.arange(3)}, tmp_path / "w.safetensors", metadata={"k": "v"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # safetensors' own save_file gives 0600
    assert torch.equal(load_file(path)["x"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary file left
