"""The workflow's fetch rule on source stl10: a small archive in the real format
(tests/stl10_archive.py) on the loopback HTTP mirror, accepted through the config's
``sources.stl10.md5`` and extracted member by member (only those of the split)."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
import yaml
from stl10_archive import make_archive
from workflow_helpers import BIN, copy_workflow, workflow_environment

pytestmark = pytest.mark.full


def test_fetch_rule_extracts_the_split_with_the_configured_checksums(http_mirror, tmp_path):
    archive = make_archive(http_mirror.root)
    workdir = copy_workflow(tmp_path / "work")
    (workdir / "stl10.yaml").write_text(yaml.safe_dump(archive.config(http_mirror.url)))
    target = "resources/stl10/fetched-test.json"
    command = [str(BIN / "snakemake"), target, "--cores", "1", "--configfile", "stl10.yaml"]
    result = subprocess.run(
        command, cwd=workdir, env=workflow_environment(), capture_output=True, text=True
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    folder = workdir / "resources" / "stl10"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["stl10_binary.tar.gz", "test_X.bin", "test_y.bin", "fetched-test.json"])
    for name in ("test_X.bin", "test_y.bin"):
        assert hashlib.md5((folder / name).read_bytes()).hexdigest() == archive.md5[name]
    assert json.loads((folder / "fetched-test.json").read_text())["source"] == "stl10"
    assert http_mirror.requests == [("stl10_binary.tar.gz", 200)]
