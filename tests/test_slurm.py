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
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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
    user = os.environ.get("USER") or _query("id", "-un").stdout.strip()
    accounts = _query("sacctmgr", "-n", "-P", "-s", "list", "user", user, "format=account")
    account = accounts.stdout.split()[0] if accounts.stdout.split() else ""
    return {"partition": default[0], "account": account}


# --- running Snakemake ----------------------------------------------------------------------


def job_environment(**extra: str) -> dict[str, str]:
    """This environment with the venv first on PATH: Slurm jobs inherit it (sbatch --export=ALL)
    and run ``python -m snakemake`` and the rules' tools from there."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(extra)
    return env


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
        "--slurm-init-seconds-before-status-checks",
        "1",
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
