"""The ``sparseae`` console script, run as a real subprocess against a loopback mirror."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from http_mirror import MNIST_TEST_FILES

from sparseae import cli

SCRIPT = Path(sys.executable).with_name("sparseae")


def run(*args, cwd):
    assert SCRIPT.exists(), f"console script {SCRIPT} is not installed (pip install -e .)"
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_help_lists_fetch(tmp_path):
    out = run("--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "fetch" in out.stdout and "download and verify a data source" in out.stdout
    sub = run("fetch", "--help", cwd=tmp_path)
    assert sub.returncode == 0
    for option in ("--dest", "--mirror", "--config", "--split"):
        assert option in sub.stdout
    assert "ufldl-images" in sub.stdout and "sample-photos" in sub.stdout


def test_fetch_mnist_through_loopback_mirror(mnist_mirror, tmp_path):
    dest = tmp_path / "data"
    out = run(
        "fetch",
        "mnist",
        "--dest",
        str(dest),
        "--mirror",
        mnist_mirror.url,
        "--split",
        "test",
        "--retries",
        "0",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(dest / name) for name in MNIST_TEST_FILES]
    assert sorted(p.name for p in dest.iterdir()) == sorted(MNIST_TEST_FILES)
    # One log line per file with size and rate.
    assert "downloaded t10k-images-idx3-ubyte.gz: 1.6 MB of 1.6 MB in" in out.stderr
    assert "MB/s)" in out.stderr
    again = run(
        "fetch",
        "mnist",
        "--dest",
        str(dest),
        "--split",
        "test",
        "--mirror",
        mnist_mirror.url,
        cwd=tmp_path,
    )
    assert again.returncode == 0 and "present and verified" in again.stderr
    assert mnist_mirror.downloads_of(MNIST_TEST_FILES[0]) == 1


def test_fetch_reads_mirrors_from_config(mnist_mirror, tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({"sources": {"mnist": {"mirrors": [mnist_mirror.url]}}}))
    out = run(
        "fetch",
        "mnist",
        "--dest",
        "d",
        "--config",
        str(config),
        "--file",
        MNIST_TEST_FILES[1],
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "d" / MNIST_TEST_FILES[1]).is_file()
    # config/config.yaml in the working folder is read by default.
    (tmp_path / "config").mkdir()
    config.rename(tmp_path / "config" / "config.yaml")
    out = run("fetch", "mnist", "--dest", "e", "--file", MNIST_TEST_FILES[1], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert mnist_mirror.downloads_of(MNIST_TEST_FILES[1]) == 2


def test_fetch_failure_is_one_clear_message(http_mirror, tmp_path):
    out = run(
        "fetch",
        "mnist",
        "--dest",
        "d",
        "--mirror",
        http_mirror.url,
        "--split",
        "test",
        "--retries",
        "0",
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert f"sparseae fetch: error: could not download {MNIST_TEST_FILES[0]}" in out.stderr
    assert f"{http_mirror.url}{MNIST_TEST_FILES[0]} (attempt 1): HTTP 404" in out.stderr
    assert "9fb629c4189551a2d022fa330f9573f3" in out.stderr


def test_usage_errors(tmp_path):
    out = run("fetch", "nope", cwd=tmp_path)
    assert out.returncode == 2 and "invalid choice: 'nope'" in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [unclosed\n")
    out = run("fetch", "mnist", "--config", str(bad), cwd=tmp_path)
    assert out.returncode == 1 and f"config file {bad} is not valid YAML" in out.stderr
    out = run("fetch", "image-folder", "--dest", str(tmp_path / "none"), cwd=tmp_path)
    assert out.returncode == 1 and "does not exist or is not a folder" in out.stderr


def test_help_lists_every_command(tmp_path):
    out = run("--help", cwd=tmp_path)
    assert out.returncode == 0
    # argparse lists each sub-command on a line of its own, indented by four spaces.
    listed = [
        line.split()[0]
        for line in out.stdout.splitlines()
        if line.startswith("    ") and not line.startswith("     ")
    ]
    assert listed == [command.name for command in cli.COMMANDS]
    assert {"fetch", "log", "log-sweep", "tracking-init", "tracking-uri"} <= set(listed)
    for name in listed:
        assert run(name, "--help", cwd=tmp_path).returncode == 0, name


def test_tracking_uri_command_reports_a_bad_uri(tmp_path):
    out = run("tracking-uri", "--tracking-uri", "sqlite://relative.db", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "sparseae tracking-uri: error: --tracking-uri: " in out.stderr
    out = run("tracking-uri", "--tracking-uri", f"sqlite:///{tmp_path}/m.db", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"sqlite:///{tmp_path}/m.db"
