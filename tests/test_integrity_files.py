"""What the pipeline reads and writes is not trusted blindly: a full or read-only disk, a closed
or full stdout, result files damaged on disk, degenerate training data, names no file system or
Snakemake accepts. Each gives one line naming the file or key, never a traceback, and leaves
no half-written file. The table of such inputs is tests/bad_inputs.py; these are the cases
that need a real device (a small tmpfs, /dev/full) or a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bad_inputs import resolved_natural
from PIL import Image
from workflow_helpers import BIN, workflow_environment

from sparseae.config.checks import PERIODIC, check_training_data, name_problems
from sparseae.errors import ConfigError, ResultFileError
from sparseae.io import check_result_file, read_json, read_tsv

pytestmark = pytest.mark.fast


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs at ``tmp_path/disk`` (root only: mounting needs it)."""
    if os.geteuid() != 0:
        pytest.skip("a disk-full case mounts a small tmpfs, which needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def _images(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        pixels = (rng.random((32, 32)) * 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")
    return folder


def _run_step(tmp_path: Path, output: Path, log: Path) -> subprocess.CompletedProcess:
    """The sample_patches step of 'natural' on an image folder, as its rule script runs it."""
    script = (
        "import json, sys\n"
        "from sparseae.rulelog import run_rule\n"
        "from sparseae.pipeline.experiment import sample_patches\n"
        "run_rule(sys.argv[1], sample_patches, sys.argv[2], name='natural',\n"
        "         data=json.loads(sys.argv[3]))\n"
    )
    from sparseae.pipeline.experiment import data_config

    experiment = resolved_natural()
    experiment["dataset"].update(source="image-folder", path=str(_images(tmp_path / "images")))
    data = data_config(experiment)
    return subprocess.run(
        [sys.executable, "-c", script, str(log), str(output), __import__("json").dumps(data)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.full  # a subprocess
def test_a_full_disk_during_a_step_is_one_line_and_leaves_no_file(tmp_path, small_disk):
    output = small_disk / "results" / "natural" / "patches.npz"
    log = small_disk / "sample_patches.log"  # the log's own disk is full too
    result = _run_step(tmp_path, output, log)
    assert result.returncode == 1
    assert result.stderr == (
        f"sparseae: error: {output}: No space left on device; free space on that file system, "
        f"then rerun\n"
    )
    leftovers = [p.name for p in output.parent.iterdir()]
    assert leftovers == [], f"half-written files left: {leftovers}"


@pytest.mark.full  # a subprocess
def test_a_read_only_disk_is_one_line(tmp_path, small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    output = small_disk / "patches.npz"
    result = _run_step(tmp_path, output, tmp_path / "rule.log")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{small_disk}" in result.stderr and "Read-only file system" in result.stderr
    assert "read-only: work in a writable folder" in (tmp_path / "rule.log").read_text()


@pytest.mark.full  # a subprocess
def test_fetch_onto_a_full_disk_is_not_called_a_broken_connection(small_disk):
    mirror = Path("/work/shared/data")
    if not (mirror / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("needs the MNIST t10k files of the shared fixtures")
    result = subprocess.run(
        [str(BIN / "sparseae"), "fetch", "mnist", "--split", "test", "--mirror", str(mirror),
         "--dest", str(small_disk / "mnist"), "--retries", "3"],
        capture_output=True, text=True, timeout=120, env=workflow_environment(),
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"sparseae fetch: error: {small_disk}/mnist/t10k-images-idx3-ubyte.gz: No space left "
        f"on device; free space on that file system, then rerun"
    )
    assert "connection broken" not in result.stderr  # no retries, no other mirror
    assert list((small_disk / "mnist").iterdir()) == []


@pytest.mark.full  # subprocesses
@pytest.mark.parametrize(
    ("shell", "status", "stderr"),
    [
        ("sparseae tracking-uri > /dev/full", 1,
         "sparseae: error: cannot write standard output: No space left on device\n"),
        ("sparseae tracking-uri | true", 141, ""),
    ],
)  # fmt: skip
def test_a_full_or_closed_stdout_exits_as_command_line_tools_do(tmp_path, shell, status, stderr):
    result = subprocess.run(
        ["bash", "-c", f"{shell}; exit ${{PIPESTATUS[0]}}"], capture_output=True, text=True,
        cwd=tmp_path, timeout=60, env=workflow_environment(),
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (status, stderr)


def test_damaged_results_are_refused_and_good_ones_pass(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(good)
    (tmp_path / "good.tsv").write_text("a\tb\n1\t2\n3\t4\n")
    (tmp_path / "good.json").write_text('{"trajectory_key": "k1", "x": [1, 2]}\n')
    for name in ("good.png", "good.tsv", "good.json"):
        check_result_file(tmp_path / name)
    table = read_tsv(tmp_path / "good.tsv", rows=2)
    np.testing.assert_array_equal(table["b"], [2.0, 4.0])
    assert read_json(tmp_path / "good.json", key="k1")["x"] == [1, 2]
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:-5])
    (tmp_path / "ragged.tsv").write_text("a\tb\n1\n")
    (tmp_path / "latin1.json").write_bytes(b'{"x": "caf\xe9"}')
    for name in ("cut.png", "ragged.tsv", "latin1.json"):
        with pytest.raises(ResultFileError, match=f"{tmp_path / name}.*delete it and rerun"):
            check_result_file(tmp_path / name)
    with pytest.raises(ResultFileError, match="holds a value that is not a number"):
        read_tsv(_text(tmp_path, "a\nx\n"))


def _text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "table.tsv"
    path.write_text(text)
    return path


def test_training_data_with_contrast_passes_and_flat_data_names_the_settings():
    data = {"dataset": resolved_natural()["dataset"], "patches": resolved_natural()["patches"]}
    rng = np.random.default_rng(0)
    check_training_data("natural", data, rng.random((64, 1000)))
    mostly_flat = np.full((64, 1000), 0.5)
    mostly_flat[:, :20] = rng.random((64, 20))  # 2 % with contrast: enough to learn from
    check_training_data("natural", data, mostly_flat)
    mostly_flat[:, 5:20] = 0.5  # 0.5 %: (almost) all constant
    with pytest.raises(ConfigError, match=r"995 are constant .* patches\.normalize True"):
        check_training_data("natural", data, mostly_flat)


def test_names_are_refused_as_snakemake_and_the_file_system_refuse_them(tmp_path):
    from snakemake.io import PeriodicityDetector  # the rule our PERIODIC restates

    detector = PeriodicityDetector()
    for name in ("a" * 19, "a" * 20, "exp-" + "ab" * 20, "x" + "abc" * 19, "natural", "b" * 300):
        assert (PERIODIC.search(name) is not None) == (detector.is_periodic(name) is not None)
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    longest = "".join(chr(97 + i % 26) for i in range(limit))  # 26 letters ~10 times: fine
    problems = name_problems({"experiments": {longest: {}, longest + "z": {}}}, tmp_path)
    assert len(problems) == 1 and f"'experiments.{longest}z'" in problems[0]
