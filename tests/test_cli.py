"""The ``sparseae`` console script, run as a real subprocess against a loopback mirror."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from http_mirror import MNIST_TEST_FILES

from sparseae import cli

pytestmark = pytest.mark.fast

SCRIPT = Path(sys.executable).with_name("sparseae")


def run(*args, cwd):
    assert SCRIPT.exists(), f"console script {SCRIPT} is not installed (pip install -e .)"
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.full  # a subprocess
def test_help_lists_fetch(tmp_path):
    out = run("--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "fetch" in out.stdout and "download and verify a data source" in out.stdout
    sub = run("fetch", "--help", cwd=tmp_path)
    assert sub.returncode == 0
    for option in ("--dest", "--mirror", "--config", "--split"):
        assert option in sub.stdout
    assert "ufldl-images" in sub.stdout and "sample-photos" in sub.stdout


@pytest.mark.full  # a subprocess
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


@pytest.mark.full  # a subprocess
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


@pytest.mark.full  # a subprocess
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


@pytest.mark.full  # a subprocess
def test_usage_errors(tmp_path):
    out = run("fetch", "nope", cwd=tmp_path)
    assert out.returncode == 2 and "invalid choice: 'nope'" in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [unclosed\n")
    out = run("fetch", "mnist", "--config", str(bad), cwd=tmp_path)
    assert out.returncode == 1 and f"config file {bad} is not valid YAML" in out.stderr
    out = run("fetch", "image-folder", "--dest", str(tmp_path / "none"), cwd=tmp_path)
    assert out.returncode == 1 and "does not exist or is not a folder" in out.stderr


@pytest.mark.full  # a subprocess
def test_help_lists_every_command(tmp_path):
    out = run("--help", cwd=tmp_path)
    assert out.returncode == 0
    # argparse lists each sub-command on a line of its own, indented by four spaces.
    listed = [
        line.split()[0]
        for line in out.stdout.splitlines()
        if line.startswith("    ") and not line.startswith("     ")
    ]
    assert listed == [name for name, *_ in cli.COMMANDS]
    assert {"fetch", "log", "log-sweep", "tracking-init", "tracking-uri"} <= set(listed)
    for name in listed:
        assert run(name, "--help", cwd=tmp_path).returncode == 0, name


@pytest.mark.full  # a subprocess
def test_tracking_uri_command_reports_a_bad_uri(tmp_path):
    out = run("tracking-uri", "--tracking-uri", "sqlite://relative.db", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "sparseae tracking-uri: error: --tracking-uri: " in out.stderr
    out = run("tracking-uri", "--tracking-uri", f"sqlite:///{tmp_path}/m.db", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"sqlite:///{tmp_path}/m.db"


# --------------------------------------------------------------------------- bad flag values
# Each is refused where it enters, before any download or MLflow run: exit status 1, one
# message naming the flag and the value, no traceback.


DB = "sqlite:///{tmp}/mlflow.db"
LOG = ["log", "{tmp}/results", "--experiment", "e", "--tracking-uri", DB]
SWEEP = ["log-sweep", "s", "{tmp}/results", "--tracking-uri", DB]
UI = ["ui-url", "--tracking-uri", DB]

#: (arguments, flag, the bad value as the message shows it); {tmp} holds the file f.txt and
#: the folders A and results.
BAD_FLAGS = {
    "fetch-dest-under-a-file": (
        ["fetch", "mnist", "--split", "test", "--dest", "{tmp}/f.txt/sub"],
        "--dest",
        "{tmp}/f.txt",
    ),
    "fetch-dest-empty": (["fetch", "mnist", "--split", "test", "--dest", ""], "--dest", "''"),
    "fetch-dest-a-file": (["fetch", "mnist", "--dest", "{tmp}/f.txt"], "--dest", "f.txt"),
    "fetch-config-a-folder": (["fetch", "mnist", "--config", "{tmp}/A"], "--config", "{tmp}/A"),
    "fetch-config-missing": (
        ["fetch", "mnist", "--config", "{tmp}/none.yaml"],
        "--config",
        "none.yaml",
    ),
    "fetch-image-folder-without-dest": (["fetch", "image-folder"], "--dest", "image-folder"),
    "fetch-mirror-for-a-local-source": (
        ["fetch", "sample-photos", "--mirror", "http://example.org/"],
        "--mirror",
        "http://example.org/",
    ),
    "sweep-output-under-a-file": (
        [*SWEEP, "--output", "{tmp}/f.txt/out.json"],
        "--output",
        "{tmp}/f.txt",
    ),
    "sweep-output-a-folder": ([*SWEEP, "--output", "{tmp}/A"], "--output", "{tmp}/A"),
    "sweep-output-empty": ([*SWEEP, "--output", ""], "--output", "''"),
    "sweep-summary-a-folder": ([*SWEEP, "--summary", "{tmp}/A"], "--summary", "{tmp}/A"),
    "sweep-summary-missing": ([*SWEEP, "--summary", "{tmp}/no.tsv"], "--summary", "no.tsv"),
    "sweep-name-blank": (["log-sweep", " ", "{tmp}/results"], "SWEEP", "' '"),
    "log-dir-a-file": ([*LOG, "--log-dir", "{tmp}/f.txt"], "--log-dir", "{tmp}/f.txt"),
    "log-dir-under-a-file": ([*LOG, "--log-dir", "{tmp}/f.txt/l"], "--log-dir", "{tmp}/f.txt"),
    "log-dir-blank": ([*LOG, "--log-dir", " "], "--log-dir", "' '"),
    "log-parent-not-hex": ([*LOG, "--parent-run-id", "nothex"], "--parent-run-id", "nothex"),
    "log-parent-upper-hex": ([*LOG, "--parent-run-id", "A" * 32], "--parent-run-id", "A" * 32),
    "log-run-key-empty": ([*LOG, "--run-key", ""], "--run-key", "''"),
    "log-run-key-blank": ([*LOG, "--run-key", "  "], "--run-key", "'  '"),
    "log-results-dir-a-file": (
        ["log", "{tmp}/f.txt", "--experiment", "e", "--tracking-uri", DB],
        "RESULTS_DIR",
        "{tmp}/f.txt",
    ),
    "init-artifact-location-blank": (
        ["tracking-init", "e", "--tracking-uri", DB, "--artifact-location", " "],
        "--artifact-location",
        "' '",
    ),
    "init-artifact-location-under-a-file": (
        ["tracking-init", "e", "--tracking-uri", DB, "--artifact-location", "{tmp}/f.txt/a"],
        "--artifact-location",
        "{tmp}/f.txt",
    ),
    "ui-base-url-not-a-url": ([*UI, "--base-url", "not a url"], "--base-url", "not a url"),
    "ui-base-url-no-host": ([*UI, "--base-url", "http://"], "--base-url", "http://"),
    "ui-base-url-not-http": ([*UI, "--base-url", "ftp://h/"], "--base-url", "ftp://h/"),
}


def _bad_tree(tmp: Path) -> None:
    (tmp / "f.txt").write_text("a file\n")
    (tmp / "A").mkdir()
    (tmp / "results").mkdir()


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_flag_value_is_one_message(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _bad_tree(tmp_path)
    argv, flag, value = BAD_FLAGS[case]
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert status == 1, err
    assert "Traceback" not in err
    assert err.startswith(f"sparseae {argv[0]}: error: ") and err.count("\n") == 1, err
    assert flag in err and value.format(tmp=tmp_path) in err, err
    assert "allowed" in err or "give --dest" in err, err
    # refused before anything happened: no MLflow store, no file written, no download
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "resources").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A", "f.txt", "results"]
    assert list((tmp_path / "A").iterdir()) == []


@pytest.mark.full  # a subprocess
def test_bad_flag_value_through_the_console_script(tmp_path):
    _bad_tree(tmp_path)
    out = run(
        "log-sweep",
        "s",
        str(tmp_path / "results"),
        "--tracking-uri",
        f"sqlite:///{tmp_path}/mlflow.db",
        "--output",
        str(tmp_path / "f.txt" / "out.json"),
        cwd=tmp_path,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and "--output" in out.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_log_on_a_non_result_folder_names_the_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    status = cli.main(
        ["log", "empty", "--experiment", "e", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
    )
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert "--run-key" in err and "run_key" not in err.replace("--run-key", "")


def test_os_error_with_a_filename_is_one_message(tmp_path, capsys, monkeypatch):
    """The safety net of main(): an OSError naming a file no check foresaw is one message."""

    def fail(args):
        """print the tracking URI (here: fail on a file)"""
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.json"))

    commands = [(name, arguments, fail if name == "tracking-uri" else run)
                for name, arguments, run in cli.COMMANDS]  # fmt: skip
    monkeypatch.setattr(cli, "COMMANDS", tuple(commands))
    assert cli.main(["tracking-uri"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert str(tmp_path / "x.json") in err and "Permission denied" in err
