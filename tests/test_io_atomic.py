"""Atomic writes: the final name only ever holds a complete file, with ordinary permissions."""

import os
import stat

import pytest

from sparseae.io import atomic_path, atomic_write, read_json, write_json

pytestmark = pytest.mark.fast


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("half")
        raise RuntimeError("crash in the middle")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"], "temporary file left behind"

    with atomic_write(target) as handle:
        handle.write("new")
    assert target.read_text() == "new"


def test_atomic_path_keeps_the_suffix_and_creates_parents(tmp_path):
    target = tmp_path / "deep" / "folder" / "theta.npz"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp.suffix == ".npz"
        assert not target.exists()
        tmp.write_bytes(b"data")
    assert target.read_bytes() == b"data"


def test_atomic_files_get_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == 0o644
    assert read_json(tmp_path / "a.json") == {"x": 1}
