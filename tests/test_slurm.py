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
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from workflow_helpers import workflow_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILE = REPO_ROOT / "profiles" / "slurm"
VENV_BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.full, pytest.mark.slurm]

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
    # Started in the background of a shell (`make test-all` runs these tests with `&`), pytest
    # inherits SIGINT ignored, and so would every Snakemake it starts: the Ctrl-C the cancel
    # test sends would never arrive. A handler here is reset to the default in each child.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
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


def start_snakemake(
    args: list[str], workdir: Path, env: dict[str, str], profile: Path = PROFILE
) -> tuple[subprocess.Popen, Path]:
    """Start ``snakemake --profile PROFILE ARGS`` in ``workdir`` in its own session; return the
    process and its log file."""
    log_path = workdir / "snakemake.log"
    command = [
        str(VENV_BIN / "snakemake"),
        "--profile",
        str(profile),
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
    return process, log_path


def wait_snakemake(process: subprocess.Popen, log_path: Path, timeout: float) -> tuple[int, str]:
    """Wait for a run of :func:`start_snakemake`; return (returncode, log).

    On timeout Snakemake gets SIGINT (it then cancels its Slurm jobs) and then SIGKILL, both
    sent to the process group of the PID started here; jobs of the run that are still queued
    are then cancelled by the run's job name.
    """
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


def run_snakemake(
    args: list[str], workdir: Path, env: dict[str, str], timeout: float, profile: Path = PROFILE
) -> tuple[int, str]:
    """Run ``snakemake --profile PROFILE ARGS`` in ``workdir``; return (returncode, log)."""
    process, log_path = start_snakemake(args, workdir, env, profile)
    return wait_snakemake(process, log_path, timeout)


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
    fields += ["Start", "End", "Timelimit", "ReqMem", "ReqCPUS"]
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
# Per member, the compute rules that must run inside Slurm (train_chunk once per chunk). The
# light rules (`all`, `fetch`, figures, MLflow logging, ...) are the workflow's `localrules`.
MEMBER_RULES = ["sample_patches", "check_gradient", "finalize", "diagnose"]
COMPUTE = {*MEMBER_RULES, "train_chunk"}
CHUNKS = 2
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", flags=re.MULTILINE)


def sweep_config(
    name: str = SWEEP, grid: dict | None = None, chunks: int = CHUNKS, iterations: int = 5
) -> dict:
    """Tiny natural-image experiments: few patches, ``chunks`` x ``iterations``, 1 core each."""
    return {
        "run": [name],
        "sweeps": {
            name: {
                "base": "natural",
                "overrides": {
                    "patches": {"count": 2000},
                    "training": {"chunks": chunks, "iterations_per_chunk": iterations},
                    # Distinct numbers per kind, so that the group job's request shows
                    # which kind each step read (see STEP_RESOURCES).
                    "resources": {
                        "data": {"mem_mb": 1100, "runtime": 11},
                        "check": {"mem_mb": 1200, "runtime": 12},
                        "light": {"runtime": 13},
                        "train": {"threads": 1, "mem_mb": 500, "runtime": 10},
                    },
                },
                "grid": grid or {"beta": [1, 3]},
            }
        },
    }


def sweep_members(config: dict) -> list[str]:
    """Member names as the workflow expands them (sparseae.config, the workflow's own code)."""
    import yaml

    from sparseae.config.sweeps import expand_sweep

    defaults = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    (name,) = config["sweeps"]
    return list(expand_sweep(name, config["sweeps"][name], defaults["experiments"]))


# The `resources` kinds each compute step of a natural-image member requests (memory, runtime),
# as the rules declare them.
STEP_RESOURCES = {
    "sample_patches": ("data", "data"),
    "check_gradient": ("check", "check"),
    "train_chunk": ("train", "train"),
    "finalize": ("data", "light"),
    "diagnose": ("data", "light"),
}


def group_request(config: dict, member: str) -> dict[str, int]:
    """What the member's one Slurm job must ask for: the summed runtime of its steps (minutes)
    and their largest memory (MB) and threads, from the member's resolved config."""
    import yaml

    from sparseae.config import resolve_config

    defaults = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    schema = REPO_ROOT / "src" / "sparseae" / "schemas" / "config.schema.yaml"
    resources = resolve_config({**defaults, **config}, schema)["experiments"][member]["resources"]
    steps = [*STEP_RESOURCES] + ["train_chunk"] * (config_chunks(config) - 1)
    return {
        "runtime": sum(resources[STEP_RESOURCES[s][1]]["runtime"] for s in steps),
        "mem_mb": max(resources[STEP_RESOURCES[s][0]]["mem_mb"] for s in steps),
        "threads": max(resources[STEP_RESOURCES[s][0]]["threads"] for s in steps),
    }


def config_chunks(config: dict) -> int:
    (sweep,) = config["sweeps"].values()
    return sweep["overrides"]["training"]["chunks"]


def slurm_minutes(limit: str) -> int:
    """sacct's Timelimit ([D-]HH:MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    hours, minutes, seconds = (int(x) for x in clock.split(":"))
    return int(days or 0) * 1440 + hours * 60 + minutes + (seconds > 0)


def workflow_args(workdir: Path, config: dict, *targets: str) -> list[str]:
    """Snakemake arguments running the repository's workflow in ``workdir`` with ``config``."""
    import yaml

    (workdir / "sweep.yaml").write_text(yaml.safe_dump(config))
    return [
        *targets,  # first: --configfile takes every argument that follows it
        "--snakefile", str(REPO_ROOT / "Snakefile"), "--directory", str(workdir),
        # --configfile replaces the Snakefile's `configfile:`; name the defaults as well.
        "--configfile", str(REPO_ROOT / "config" / "config.yaml"), str(workdir / "sweep.yaml"),
    ]  # fmt: skip


@dataclass
class LocalRun:
    """A local run (``--cores 2``) of the config a Slurm run trains, started beside that run:
    it is only needed at the end, and the Slurm run spends most of its time waiting on jobs
    and status polls, so the two overlap instead of adding up."""

    process: subprocess.Popen
    log_path: Path
    members: list[str]

    def thetas(self, timeout: float = 900) -> dict[str, dict]:
        """The members' final thetas, once the run has finished."""
        returncode, log = wait_snakemake(self.process, self.log_path, timeout)
        assert returncode == 0, log[-4000:]
        results = self.log_path.parent / "results"
        return {m: load_theta(results / m / "theta.npz") for m in self.members}


def start_local(workdir: Path, config: dict, members: list[str]) -> LocalRun:
    """Start the local run of ``config`` that trains ``members`` into ``workdir``."""
    workdir.mkdir()
    targets = [f"results/{m}/theta.npz" for m in members]
    command = [str(VENV_BIN / "snakemake"), "--cores", "2"]
    command += workflow_args(workdir, config, *targets)
    log_path = workdir / "snakemake.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=job_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return LocalRun(process, log_path, members)


@pytest.fixture
def local_run(tmp_path):
    """``start(config, members)``: :func:`start_local` into ``tmp_path / "local"``; a run the
    test left unfinished (it failed first) is stopped with the test."""
    runs: list[LocalRun] = []

    def start(config: dict, members: list[str]) -> LocalRun:
        runs.append(start_local(tmp_path / "local", config, members))
        return runs[-1]

    yield start
    for run in runs:
        if run.process.poll() is None:
            _stop_group(run.process)


def load_theta(path: Path) -> dict:
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def assert_bit_identical(ours: dict, reference: dict, what: str) -> None:
    assert ours.keys() == reference.keys(), what
    for key in ours:
        assert ours[key].dtype == reference[key].dtype, (what, key)
        assert ours[key].tobytes() == reference[key].tobytes(), f"{what}: {key} differs"


def slurm_log(workdir: Path, job_id: str) -> str:
    """The Slurm job's own output (written by slurmd), kept by --slurm-keep-successful-logs."""
    (path,) = (workdir / ".snakemake" / "slurm_logs").rglob(f"{job_id}.log")
    return path.read_text(errors="replace")


def log_window(path: Path) -> tuple[datetime, datetime]:
    """First and last timestamp a rule script wrote to its log."""
    stamps = [datetime.fromisoformat(s) for s in STAMP.findall(path.read_text())]
    assert stamps, f"{path} has no timestamped line"
    return min(stamps), max(stamps)


def compute_jobs_ran_locally(log: str) -> list[tuple[str, str]]:
    """Compute jobs that finished in the submitting Snakemake without being in a job it sent to
    Slurm (a group's jobs are listed, indented, under its "Group job" heading)."""
    submitted = set(re.findall(r"^Job (\d+) has been submitted", log, flags=re.MULTILINE))
    grouped, in_group = set(), False
    for line in log.splitlines():
        if re.search(r"Group job \S+ \(jobs in lexicogr\. order\):$", line):
            in_group = True
        elif in_group and line.strip() and not line.startswith((" ", "Shell command")):
            in_group = False
        elif in_group and (m := re.match(r"^\s+Job (\d+): ", line)):
            grouped.add(m.group(1))
    finished = re.findall(r"^Finished jobid: (\d+) \(Rule: (\w+)\)", log, flags=re.MULTILINE)
    return [(j, r) for j, r in finished if r in COMPUTE and j not in grouped | submitted]


@pytest.mark.slow
def test_sweep_goes_to_slurm_as_one_job_per_member(
    cluster, shared_mlflow_server, local_run, tmp_path
):
    """profiles/slurm: each member's compute chain is one Slurm job; runs reach the server;
    the thetas are those of a local run."""
    from mlflow.tracking import MlflowClient

    workdir = tmp_path / "work"
    workdir.mkdir()
    config = sweep_config()
    members = sweep_members(config)
    assert len(members) == 2, members
    local = local_run(config, members)  # the reference, compared at the end

    mlflow_server = shared_mlflow_server  # the sweep's runs are told apart by its tag
    args = [*workflow_args(workdir, config), *slurm_resources(cluster)]
    args.append("--slurm-keep-successful-logs")
    env = job_environment(MLFLOW_TRACKING_URI=mlflow_server.uri)
    returncode, log = run_snakemake(args, workdir, env, timeout=1200)
    assert returncode == 0, log[-6000:]

    # At most 2 Slurm jobs per member (here: one each), every one in sacct and completed.
    records = assert_all_through_slurm(log, cluster)
    assert len(records) <= 2 * len(members), records
    # Each Slurm job's own output names one member; each compute rule of that member wrote its
    # log while that Slurm job ran (sacct Start..End, whole seconds).
    job_of = {}
    for job_id, record in records.items():
        named = [m for m in members if m in slurm_log(workdir, job_id)]
        assert len(named) == 1, (job_id, named)
        job_of[named[0]] = record
    assert set(job_of) == set(members), job_of
    # Each member's job asked Slurm for the sum of its steps' runtimes and their largest memory
    # and threads, each step sized from the resources kind its rule reads.
    for member, record in job_of.items():
        request = group_request(config, member)
        asked = {
            "runtime": slurm_minutes(record["Timelimit"]),
            "mem_mb": int(re.fullmatch(r"(\d+)M", record["ReqMem"]).group(1)),
            "threads": int(record["ReqCPUS"]),
        }
        assert asked == request, (member, record)
    for member, record in job_of.items():
        start, end = (datetime.fromisoformat(record[k]) for k in ("Start", "End"))
        logs = [f"{rule}.log" for rule in MEMBER_RULES]
        logs += [f"train_chunk-{k}.log" for k in range(1, CHUNKS + 1)]
        for name in logs:
            first, last = log_window(workdir / "logs" / member / name)
            assert start <= first and last <= end + timedelta(seconds=1), (member, name, record)
    # ... and no compute job ran in the submitting Snakemake.
    assert not compute_jobs_ran_locally(log), compute_jobs_ran_locally(log)
    finished = re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)", log, flags=re.MULTILINE)
    assert sum(rule in COMPUTE for rule in finished) == len(members) * (4 + CHUNKS), finished

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
        assert run.data.metrics["cost"] == pytest.approx(summary["final_cost"], rel=1e-9)
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
    assert (sweep_dir / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The same config run locally trains to the same bits.
    reference = local.thetas()
    for member in members:
        theta = load_theta(workdir / "results" / member / "theta.npz")
        assert_bit_identical(theta, reference[member], member)


@pytest.mark.slow
def test_cancelled_group_job_resumes_at_the_chunk_in_progress(
    cluster, shared_mlflow_server, local_run, tmp_path
):
    """scancel the member's group job while chunk 2 of 3 is under way; the rerun trains chunks
    2 and 3 only, and the final theta is bit-identical to an uninterrupted run."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = sweep_config("cancelme", grid={"beta": [3]}, chunks=3, iterations=20)
    (member,) = sweep_members(config)
    local = local_run(config, [member])  # the uninterrupted reference, compared at the end
    result = workdir / "results" / member
    target = f"results/{member}/theta.npz"
    args = [*workflow_args(workdir, config, target), *slurm_resources(cluster)]
    env = job_environment(MLFLOW_TRACKING_URI=shared_mlflow_server.uri)

    process, log_path = start_snakemake(args, workdir, env)
    deadline = time.monotonic() + 900
    while not (result / "chunks" / "1.npz").exists():
        assert process.poll() is None, log_path.read_text()[-4000:]
        assert time.monotonic() < deadline, "chunk 1 was not written in 900 s"
        time.sleep(0.2)
    (job_id,) = SUBMITTED.findall(log_path.read_text())
    assert _query("scancel", job_id).returncode == 0
    first_chunk = (result / "chunks" / "1.npz").read_bytes()

    def state() -> str:
        return _query("sacct", "-X", "-n", "-P", "-o", "State", "-j", job_id).stdout.strip()

    while not state().startswith("CANCELLED"):  # "CANCELLED by 0"
        assert time.monotonic() < deadline, state()
        time.sleep(0.5)
    # The executor plugin (2.8.0) compares sacct's state with "CANCELLED" exactly, reads
    # "CANCELLED by <uid>" as still running and would wait forever: stop Snakemake as a user
    # would (Ctrl-C), once Slurm has recorded the cancel. Snakemake then joins its status-poll
    # thread, which may be in a sleep of up to 180 s (the plugin's longest poll interval) and
    # is slower still on a loaded runner: the bound leaves room for both.
    os.killpg(process.pid, signal.SIGINT)
    returncode, log = wait_snakemake(process, log_path, timeout=600)
    assert returncode != 0, log[-4000:]
    # The finished steps are kept (the cancelled job cost only the chunk in progress).
    assert (result / "patches.npz").exists() and (result / "gradcheck.json").exists()
    assert (result / "chunks" / "1.npz").read_bytes() == first_chunk
    assert not (result / "chunks" / "2.npz").exists(), "chunk 2 finished before the cancel"
    assert not (result / "theta.npz").exists()

    returncode, log = run_snakemake(args, workdir, env, timeout=900)
    assert returncode == 0, log[-6000:]
    # One new Slurm job, holding chunks 2 and 3 and the final step only.
    assert len(SUBMITTED.findall(log)) == 1, log[-4000:]
    finished = re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)", log, flags=re.MULTILINE)
    assert sorted(r for r in finished if r in COMPUTE) == ["finalize", "train_chunk", "train_chunk"]
    assert (result / "chunks" / "1.npz").read_bytes() == first_chunk
    resumed = (workdir / "logs" / member / "train_chunk-2.log").read_text()
    assert "from iteration 20" in resumed, resumed

    reference = local.thetas()
    assert_bit_identical(load_theta(result / "theta.npz"), reference[member], member)


@pytest.mark.slow
def test_chunks_profile_submits_each_chunk_as_its_own_job(cluster, shared_mlflow_server, tmp_path):
    """profiles/slurm-chunks: every train_chunk is its own Slurm job (own sacct record)."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = sweep_config("perchunk", grid={"beta": [3]})
    (member,) = sweep_members(config)
    args = [*workflow_args(workdir, config, f"results/{member}/theta.npz")]
    args += slurm_resources(cluster)
    env = job_environment(MLFLOW_TRACKING_URI=shared_mlflow_server.uri)
    profile = REPO_ROOT / "profiles" / "slurm-chunks"
    returncode, log = run_snakemake(args, workdir, env, timeout=1200, profile=profile)
    assert returncode == 0, log[-6000:]

    records = assert_all_through_slurm(log, cluster)
    comments = sorted(r["Comment"] for r in records.values())
    chunk_jobs = [f"rule_train_chunk_wildcards_{member}_{k}" for k in range(1, CHUNKS + 1)]
    assert set(chunk_jobs) <= set(comments), comments
    # The steps before and after training share a job each: prepare, chunk 1, chunk 2, finish.
    assert len(records) == CHUNKS + 2, comments
    for k in range(1, CHUNKS + 1):
        (job_id,) = [j for j, r in records.items() if r["Comment"] == chunk_jobs[k - 1]]
        start, end = (datetime.fromisoformat(records[job_id][x]) for x in ("Start", "End"))
        first, last = log_window(workdir / "logs" / member / f"train_chunk-{k}.log")
        assert start <= first and last <= end + timedelta(seconds=1), (k, records[job_id])
    assert not compute_jobs_ran_locally(log), compute_jobs_ran_locally(log)


@pytest.mark.slow
def test_cluster_run_refuses_an_sqlite_tracking_store(cluster, tmp_path):
    """Under a cluster executor, the default sqlite store is refused before any job is sent."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    args = [*workflow_args(workdir, sweep_config()), *slurm_resources(cluster)]
    returncode, log = run_snakemake(args, workdir, job_environment(), timeout=300)
    assert returncode != 0, log[-4000:]
    assert "sqlite file" in log and "MLFLOW_TRACKING_URI" in log, log[-4000:]
    assert "has been submitted with SLURM" not in log, log[-4000:]
    assert not (workdir / "results").exists() or not any((workdir / "results").rglob("*.npz"))
