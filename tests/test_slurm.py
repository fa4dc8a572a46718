"""Real Slurm: workflows sent with ``--profile profiles/slurm`` run as Slurm jobs.

These tests need a responding Slurm cluster with accounting (``sinfo`` and ``sacct`` answer);
``.ci/slurm.sh up`` starts a single-node one on this machine. Without one they are skipped with
the reason, unless ``SPARSEAE_REQUIRE_SLURM=1`` (set by ``.ci/run``) turns the skip into a
failure, so CI cannot pass by skipping them.

Proof that a job went through Slurm: Snakemake's log names the Slurm job id it got from
``sbatch``; ``sacct`` (the accounting database) must hold that job, completed, in the run's
name, with the rule and wildcards the executor wrote into the job comment; and the job's own
output names the ``SLURM_JOB_ID`` it ran under.
"""

from __future__ import annotations

import contextlib
import csv
import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from workflow_helpers import workflow_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILE = REPO_ROOT / "profiles" / "slurm"
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slurm

SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")
RUN_ID = re.compile(r"SLURM run ID: ([0-9a-f-]{36})")


# --- cluster discovery ----------------------------------------------------------------------


def _query(*command: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def slurm_problem() -> str | None:
    """Why Slurm cannot be used here, or ``None`` when it can."""
    for tool in ("sinfo", "sbatch", "sacct", "sacctmgr"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (start a test cluster with .ci/slurm.sh up)"
    try:
        info = _query("sinfo", "-h", "-o", "%T")
        acct = _query("sacct", "-n", "-X", "-S", "now-1minutes")
    except subprocess.TimeoutExpired as exc:
        return f"Slurm did not answer in time: {exc.cmd}"
    if info.returncode != 0:
        return f"no responding Slurm controller: sinfo: {info.stderr.strip()}"
    states = set(info.stdout.split())
    if not states & {"idle", "mixed", "allocated"}:
        return f"no usable Slurm node (states: {sorted(states) or 'none'})"
    if acct.returncode != 0:
        return f"Slurm accounting (sacct) does not answer: {acct.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def cluster() -> dict[str, str]:
    """The default partition and the user's first account, or skip (fail on CI)."""
    reason = slurm_problem()
    if reason is not None:
        if os.environ.get("SPARSEAE_REQUIRE_SLURM") == "1":
            pytest.fail(f"SPARSEAE_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    partitions = _query("sinfo", "-h", "-o", "%P").stdout.split()
    default = [p.rstrip("*") for p in partitions if p.endswith("*")] or [partitions[0]]
    user = getpass.getuser()  # as the executor plugin asks sacctmgr
    accounts = _query("sacctmgr", "-n", "-P", "-s", "list", "user", user, "format=account")
    account = accounts.stdout.split()[0] if accounts.stdout.split() else ""
    return {"partition": default[0], "account": account}


# --- running Snakemake ----------------------------------------------------------------------


def job_environment(**extra: str) -> dict[str, str]:
    """This environment with the venv first on PATH: Slurm jobs inherit it (sbatch --export=ALL)
    and run ``python -m snakemake`` and the rules' tools from there."""
    return workflow_environment(**extra)


def slurm_resources(cluster: dict[str, str], mem_mb: int = 500, runtime: int = 10) -> list[str]:
    """``--default-resources`` for this cluster (replaces the profile's list as a whole)."""
    resources = [
        f"slurm_partition={cluster['partition']}",
        f"mem_mb={mem_mb}",
        f"runtime={runtime}",
    ]
    if cluster["account"]:
        resources.append(f"slurm_account={cluster['account']}")
    return ["--default-resources", *resources]


def run_snakemake(args: list[str], workdir: Path, env: dict[str, str], timeout: float):
    """Run ``snakemake --profile profiles/slurm ARGS`` in ``workdir``; return (returncode, log).

    Snakemake runs in its own session. On timeout it gets SIGINT (it then cancels its Slurm jobs)
    and then SIGKILL, both sent to the process group of the PID started here; jobs of the run
    that are still queued are then cancelled by the run's job name.
    """
    log_path = workdir / "snakemake.log"
    command = [
        str(VENV_BIN / "snakemake"),
        "--profile",
        str(PROFILE),
        # Polls then come 2, 14, 36 ... s after a submission: short jobs are seen at 14 s
        # (with 1 s: 1, 12, 33, so a 13 s job waits until 33 s).
        "--slurm-init-seconds-before-status-checks",
        "2",
        *args,
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        returncode = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_group(process)
        text = log_path.read_text(errors="replace")
        _cancel_run(text)
        pytest.fail(f"snakemake did not finish in {timeout} s; log tail:\n{text[-4000:]}")
    except BaseException:
        _stop_group(process)
        _cancel_run(log_path.read_text(errors="replace"))
        raise
    return returncode, log_path.read_text(errors="replace")


def _stop_group(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)
            return


def _cancel_run(log: str) -> None:
    match = RUN_ID.search(log)
    if match:
        _query("scancel", "--name", match.group(1))


def sacct_jobs(run_id: str) -> dict[str, dict[str, str]]:
    """Accounting records of every job named ``run_id`` (the executor names jobs by run)."""
    fields = ["JobIDRaw", "JobName", "State", "ExitCode", "Partition", "Account", "Comment"]
    result = _query(
        "sacct",
        "-X",
        "-n",
        "-P",
        "-S",
        "now-1days",
        "--name",
        run_id,
        "-o",
        ",".join(f"{f}%200" for f in fields),
    )
    assert result.returncode == 0, result.stderr
    rows = [
        dict(zip(fields, line.split("|"), strict=True))
        for line in result.stdout.splitlines()
        if line.strip()
    ]
    return {row["JobIDRaw"]: row for row in rows}


def assert_all_through_slurm(log: str, cluster: dict[str, str]) -> dict[str, dict[str, str]]:
    """Every job Snakemake submitted is in sacct, completed, and sacct has no other job of the
    run; returns the records by Slurm job id."""
    run_id = RUN_ID.search(log)
    assert run_id, "Snakemake's log names no SLURM run ID: the slurm executor did not run"
    submitted = SUBMITTED.findall(log)
    assert submitted, "no job was submitted to Slurm"
    assert len(set(submitted)) == len(submitted), f"a Slurm job id repeats: {submitted}"
    records = sacct_jobs(run_id.group(1))
    assert set(records) == set(submitted), (
        f"sacct knows jobs {sorted(records)} for run {run_id.group(1)}, "
        f"Snakemake submitted {sorted(submitted)}"
    )
    for job_id, record in records.items():
        assert record["State"] == "COMPLETED", f"Slurm job {job_id}: {record}"
        assert record["ExitCode"] == "0:0", f"Slurm job {job_id}: {record}"
        assert record["Partition"] == cluster["partition"], record
        if cluster["account"]:
            assert record["Account"] == cluster["account"], record
    return records


# --- tests ----------------------------------------------------------------------------------

TOY_SNAKEFILE = textwrap.dedent(
    """
    localrules: all

    rule all:
        input: expand("out/{i}.txt", i=range(3))

    rule work:
        output: "out/{i}.txt"
        resources: mem_mb=200, runtime=5
        shell: "echo $SLURM_JOB_ID $(command -v python) > {output}"
    """
)


@pytest.mark.slow
def test_toy_workflow_runs_every_job_through_slurm(cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(TOY_SNAKEFILE)
    returncode, log = run_snakemake(slurm_resources(cluster), tmp_path, job_environment(), 600)
    assert returncode == 0, log[-4000:]

    records = assert_all_through_slurm(log, cluster)
    # Three `work` jobs, one per wildcard value; the local rule `all` is not submitted.
    by_comment = {r["Comment"]: job_id for job_id, r in records.items()}
    assert set(by_comment) == {f"rule_work_wildcards_{i}" for i in range(3)}, by_comment
    for i in range(3):
        slurm_job_id, python = (tmp_path / "out" / f"{i}.txt").read_text().split()
        # The job ran inside the allocation sacct recorded for its wildcard, with the venv's
        # python first on PATH.
        assert slurm_job_id == by_comment[f"rule_work_wildcards_{i}"]
        assert Path(python).parent == VENV_BIN


# --- a sweep of the real workflow -----------------------------------------------------------

SWEEP = "slurmsweep"
# Per member, the compute rules that must run as Slurm jobs (train_chunk once per chunk). The
# light rules (`all`, `fetch`, figures, MLflow logging, ...) are the workflow's `localrules`.
MEMBER_RULES = ["sample_patches", "check_gradient", "finalize"]
CHUNKS = 2


def sweep_config() -> dict:
    """Two tiny natural-image experiments: few patches, 2 chunks x 5 iterations, 1 core each."""
    return {
        "run": [SWEEP],
        "sweeps": {
            SWEEP: {
                "base": "natural",
                "overrides": {
                    "patches": {"count": 2000},
                    "training": {"chunks": CHUNKS, "iterations_per_chunk": 5},
                    "resources": {"train": {"threads": 1, "mem_mb": 500, "runtime": 10}},
                },
                "grid": {"beta": [1, 3]},
            }
        },
    }


def sweep_members(config: dict) -> list[str]:
    """Member names as the workflow expands them (sparseae.config, the workflow's own code)."""
    import yaml

    from sparseae.sweep import expand_sweep

    defaults = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    return list(expand_sweep(SWEEP, config["sweeps"][SWEEP], defaults["experiments"]))


@pytest.mark.slow
def test_sweep_runs_through_slurm_and_logs_to_mlflow_server(cluster, mlflow_server, tmp_path):
    import yaml
    from mlflow.tracking import MlflowClient

    workdir = tmp_path / "work"
    workdir.mkdir()
    config = sweep_config()
    (workdir / "sweep.yaml").write_text(yaml.safe_dump(config))
    members = sweep_members(config)
    assert len(members) == 2, members

    args = [
        "--snakefile", str(REPO_ROOT / "Snakefile"), "--directory", str(workdir),
        # --configfile replaces the Snakefile's `configfile:`; name the defaults as well.
        "--configfile", str(REPO_ROOT / "config" / "config.yaml"), str(workdir / "sweep.yaml"),
        *slurm_resources(cluster),
    ]  # fmt: skip
    env = job_environment(MLFLOW_TRACKING_URI=mlflow_server.uri)
    returncode, log = run_snakemake(args, workdir, env, timeout=1200)
    assert returncode == 0, log[-6000:]

    # Every compute job of every member went through Slurm: sacct holds each, completed.
    records = assert_all_through_slurm(log, cluster)
    comments = {r["Comment"] for r in records.values()}
    for member in members:
        expected = {f"rule_{rule}_wildcards_{member}" for rule in MEMBER_RULES}
        expected |= {f"rule_train_chunk_wildcards_{member}_{k}" for k in range(1, CHUNKS + 1)}
        assert expected <= comments, f"{member}: not run through Slurm: {expected - comments}"
    # ... and none of them also ran locally: each finished compute job had been submitted.
    finished = re.findall(r"^Finished jobid: (\d+) \(Rule: (\w+)\)", log, flags=re.MULTILINE)
    via_slurm = set(re.findall(r"^Job (\d+) has been submitted with SLURM", log, flags=re.M))
    compute = {*MEMBER_RULES, "train_chunk"}
    ran_locally = [(j, rule) for j, rule in finished if rule in compute and j not in via_slurm]
    assert not ran_locally, f"compute jobs that did not go through Slurm: {ran_locally}"
    assert sum(rule in compute for _, rule in finished) == len(members) * (3 + CHUNKS)

    # Every member's run is on the tracking server (never in a local sqlite file), tagged with
    # the sweep, and holds the member's final cost.
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    run_ids = {}
    for member in members:
        logged = json.loads((workdir / "results" / member / "mlflow.json").read_text())
        assert logged["tracking_uri"] == mlflow_server.uri, logged
        run = client.get_run(logged["run_id"])
        assert run.info.status == "FINISHED", run.info
        assert run.data.tags.get("sparseae.sweep") == SWEEP, run.data.tags
        summary = json.loads((workdir / "results" / member / "summary.json").read_text())
        assert run.data.metrics["final_cost"] == pytest.approx(summary["final_cost"], rel=1e-12)
        assert summary["iterations"] == CHUNKS * 5
        run_ids[member] = run.info.run_id
    assert not list(workdir.glob("**/*.db")), "an sqlite store was written in the work folder"
    tagged = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`sparseae.sweep` = '{SWEEP}'",
    )
    roles = {r.info.run_id: r.data.tags.get("sparseae.sweep_role") for r in tagged}
    member_runs = {run_id for run_id, role in roles.items() if role != "parent"}
    assert member_runs == set(run_ids.values()), roles
    parent = json.loads((workdir / "results" / "sweeps" / SWEEP / "mlflow.json").read_text())
    assert roles.get(parent["run_id"]) == "parent", (parent, roles)

    # The sweep table lists every member once, with the numbers of its own result files.
    sweep_dir = workdir / "results" / "sweeps" / SWEEP
    with open(sweep_dir / "summary.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert sorted(row["experiment"] for row in rows) == sorted(members), rows
    for row in rows:
        summary = json.loads((workdir / "results" / row["experiment"] / "summary.json").read_text())
        assert float(row["final_cost"]) == pytest.approx(summary["final_cost"], rel=1e-9)
        assert int(row["iterations"]) == CHUNKS * 5
    assert (sweep_dir / "summary.html").stat().st_size > 0
    assert (sweep_dir / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_cluster_run_refuses_an_sqlite_tracking_store(cluster, tmp_path):
    """Under a cluster executor, the default sqlite store is refused before any job is sent."""
    import yaml

    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "sweep.yaml").write_text(yaml.safe_dump(sweep_config()))
    args = [
        "--snakefile", str(REPO_ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(REPO_ROOT / "config" / "config.yaml"), str(workdir / "sweep.yaml"),
        *slurm_resources(cluster),
    ]  # fmt: skip
    returncode, log = run_snakemake(args, workdir, job_environment(), timeout=300)
    assert returncode != 0, log[-4000:]
    assert "sqlite file" in log and "MLFLOW_TRACKING_URI" in log, log[-4000:]
    assert "has been submitted with SLURM" not in log, log[-4000:]
    assert not (workdir / "results").exists() or not any((workdir / "results").rglob("*.npz"))
