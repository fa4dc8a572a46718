"""A sweep of 8 natural-image experiments on Slurm, one job per step versus grouped, and locally.

Runs the same sweep in fresh folders, one after the other in this process (so that machine load
from other work hits all of them alike):

- ``local``: ``snakemake --cores 2``;
- ``per-step`` (before): one Slurm job per compute step, as before grouping (profiles/slurm-chunks
  with its ``groups`` removed: sample_patches, check_gradient, each train_chunk, finalize);
- ``slurm`` (after): ``--profile profiles/slurm``, one Slurm job per experiment;
- ``chunks`` (only when named in ``--modes``): ``--profile profiles/slurm-chunks``;
- ``pairs`` (only when named): profiles/slurm with ``--group-components experiment=2``, two
  members' chains in one Slurm job.

All Slurm modes use the cluster that answers ``sinfo`` (on this machine the single-node test
cluster of ``.ci/slurm.sh up``); all runs log to one MLflow server on 127.0.0.1 under
different experiment prefixes. Prints the wall time of each mode, its ratio to the local run,
the number of Slurm jobs it submitted (checked against ``sacct``), and per Slurm job

- queue: sbatch submission until the job starts (sacct Submit -> Start),
- in allocation: the job's wall time inside Slurm (sacct Start -> End); this includes the
  ``snakemake --executor slurm-jobstep`` start-up that every job pays, and, inside a group
  job, one more Snakemake start-up per step (the jobstep executor runs each step as its own
  ``srun ... snakemake`` job step),
- poll lag: the job's end until Snakemake notices it (sacct End -> the "Finished jobid" line
  of the job's last step; the plugin polls sacct, first after
  ``slurm-init-seconds-before-status-checks``, then 10 s later after each poll that found
  nothing finished).

Timestamps are whole seconds (Slurm's and Snakemake's), so per-job figures are means.

Both kinds of runs have 2 cores for the compute rules, but under Slurm the workflow's local
rules (figures, MLflow logging, ...) run on the submit host beside the 2 Slurm CPUs, so on this
single machine the Slurm runs have more processes at once; machine load from other work moves
every figure, hence the load average in the output.

Usage::

    .ci/slurm.sh up            # as root, once
    .venv/bin/python bench/sweep_slurm.py [--iterations 50] [--patches 10000] [--keep DIR]
                                          [--modes local,per-step,slurm]

Without a responding Slurm cluster it says so and exits 0 (``make bench`` runs every bench).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests"))

from mlflow_server import MlflowServer  # noqa: E402  (the tests' real-server helper)

SWEEP = "bench8"
GRID = {"lambda_": [1.0e-4, 3.0e-4], "beta": [1, 3], "rho": [0.01, 0.05]}

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]")
JOB_START = re.compile(r"^(?:Job (\d+): |(?:local)?rule \w+:$)")
JOBID_LINE = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
GROUP_HEADER = re.compile(r"Group job \S+ \(jobs in lexicogr\. order\):$")
GROUP_MEMBER = re.compile(r"^\s+Job (\d+): ")
# A single job is named by its Snakemake job id, a group job by a UUID.
SUBMITTED = re.compile(r"^Job (\S+) has been submitted with SLURM jobid (\d+)")
RUN_ID = re.compile(r"SLURM run ID: ([0-9a-f-]{36})")
COMPUTE = {"sample_patches", "check_gradient", "train_chunk", "finalize", "evaluate"}
# Mode: (profile, extra arguments); None runs locally, "per-step" is per_step_profile().
MODES = {
    "local": (None, ["--cores", "2"]),
    "per-step": ("per-step", []),
    "slurm": (REPO / "profiles" / "slurm", []),
    "chunks": (REPO / "profiles" / "slurm-chunks", []),
    # Two members' chains in one Slurm job (Snakemake's group components).
    "pairs": (REPO / "profiles" / "slurm", ["--group-components", "experiment=2"]),
}


def slurm_problem() -> str | None:
    """Why no Slurm cluster can be used, or ``None``."""
    for tool in ("sinfo", "sbatch", "sacct"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (start the test cluster with .ci/slurm.sh up)"
    info = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    if info.returncode != 0 or not set(info.stdout.split()) & {"idle", "mixed", "allocated"}:
        return f"no responding Slurm node: {info.stderr.strip() or info.stdout.strip()}"
    return None


def sweep_config(prefix: str, patches: int, iterations: int) -> dict:
    return {
        "run": [SWEEP],
        "tracking": {"experiment_prefix": prefix},
        "sweeps": {
            SWEEP: {
                "base": "natural",
                "overrides": {
                    "patches": {"count": patches},
                    "training": {"chunks": 2, "iterations_per_chunk": iterations},
                    # One core per training job: two jobs at a time on both sides.
                    "resources": {"train": {"threads": 1, "mem_mb": 1000, "runtime": 30}},
                },
                "grid": GRID,
            }
        },
    }


def per_step_profile(folder: Path) -> Path:
    """profiles/slurm-chunks without its groups: one Slurm job per step, as before grouping."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm-chunks" / "profile.yaml").read_text())
    profile.pop("groups", None)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.yaml").write_text(yaml.safe_dump(profile))
    return folder


def run_workflow(workdir: Path, extra: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run the repository's workflow in ``workdir``; return (wall seconds, log text)."""
    command = [
        str(VENV_BIN / "snakemake"),
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        # --configfile replaces the Snakefile's `configfile:`, so name the defaults too.
        "--configfile", str(REPO / "config" / "config.yaml"), str(workdir / "sweep.yaml"),
        *extra,
    ]  # fmt: skip
    log_path = workdir / "snakemake.log"
    start = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)  # fmt: skip
        try:
            returncode = process.wait()
        except BaseException:
            os.killpg(process.pid, 2)  # SIGINT: Snakemake cancels its Slurm jobs
            process.wait(timeout=60)
            raise
    wall = time.monotonic() - start
    text = log_path.read_text(errors="replace")
    if returncode != 0:
        raise SystemExit(f"snakemake failed in {workdir} ({returncode}); log tail:\n{text[-3000:]}")
    return wall, text


def job_times(log: str) -> tuple[dict[int, dict], dict[str, list[int]]]:
    """From a Snakemake log: per job id its rule, start and finish timestamps; and per Slurm
    job id the Snakemake job ids it ran (one, or the jobs of a group)."""
    jobs: dict[int, dict] = defaultdict(dict)
    slurm: dict[str, list[int]] = {}
    groups: list[list[int]] = []  # listed groups not yet submitted, in order
    stamp = None
    pending_start = None
    for line in log.splitlines():
        if GROUP_HEADER.search(line):
            groups.append([])
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        if m := FINISHED.match(line):
            jobs[int(m.group(1))].update(rule=m.group(2), finished=stamp)
        elif (m := GROUP_MEMBER.match(line)) and groups:
            groups[-1].append(int(m.group(1)))
            jobs[int(m.group(1))]["started"] = stamp
        elif m := JOB_START.match(line):
            if m.group(1):
                jobs[int(m.group(1))]["started"] = stamp
            else:
                pending_start = stamp
        elif (m := JOBID_LINE.match(line)) and pending_start is not None:
            jobs[int(m.group(1))]["started"] = pending_start
            pending_start = None
        elif m := SUBMITTED.match(line):
            job, slurm_id = m.groups()
            slurm[slurm_id] = [int(job)] if job.isdigit() else groups.pop(0)
    return dict(jobs), slurm


def seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def report(walls: dict[str, float], logs: dict[str, str], meta: dict) -> None:
    """Print wall times, ratios to the local run, Slurm job counts and per-job figures."""
    local_jobs, _ = job_times(logs["local"])
    local_compute = [
        seconds(info["started"], info["finished"])
        for info in local_jobs.values()
        if info.get("rule") in COMPUTE and "started" in info
    ]
    print()
    print(
        f"sweep {SWEEP}: 8 experiments, {meta['patches']} patches, 2 chunks x "
        f"{meta['iterations']} iterations; load average before: {meta['load']:.1f}, "
        f"after: {meta.get('load_after', float('nan')):.1f} on {os.cpu_count()} cores"
    )
    print(f"local compute steps: {len(local_compute)}, {sum(local_compute):.0f} s in all")
    header = "mode", "wall s", "/ local", "Slurm jobs", "queue s", "in-alloc s", "poll lag s"
    print("{:<10}{:>9}{:>9}{:>12}{:>10}{:>12}{:>12}".format(*header))
    print("{:<10}{:>9.1f}{:>9.2f}".format("local", walls["local"], 1.0))
    for mode in walls:
        if mode == "local":
            continue
        jobs, slurm = job_times(logs[mode])
        run_id = RUN_ID.search(logs[mode]).group(1)
        recorded = sacct_run(run_id)
        if set(recorded) != set(slurm):
            raise SystemExit(f"{mode}: sacct has jobs {sorted(recorded)}, log {sorted(slurm)}")
        queue, alloc, lag = [], [], []
        for slurm_id, members in slurm.items():
            times = recorded[slurm_id]
            queue.append(seconds(times["submit"], times["start"]))
            alloc.append(seconds(times["start"], times["end"]))
            seen = max(jobs[j]["finished"] for j in members)
            lag.append(seconds(times["end"], seen))
        print(
            "{:<10}{:>9.1f}{:>9.2f}{:>12d}{:>10.1f}{:>12.1f}{:>12.1f}".format(
                mode,
                walls[mode],
                walls[mode] / walls["local"],
                len(slurm),
                statistics.fmean(queue),
                statistics.fmean(alloc),
                statistics.fmean(lag),
            )
        )


def sacct_run(run_id: str) -> dict[str, dict[str, datetime]]:
    """Submit, start and end of every Slurm job named ``run_id`` (the executor's run ID)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "now-1days", "--name", run_id,
         "-o", "JobIDRaw,Submit,Start,End"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    times = {}
    for line in out.splitlines():
        job, *stamps = line.split("|")
        parsed = [datetime.fromisoformat(s) for s in stamps]
        times[job] = dict(zip(("submit", "start", "end"), parsed, strict=True))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=50, help="L-BFGS iterations per chunk")
    parser.add_argument("--patches", type=int, default=10000, help="patches per experiment")
    parser.add_argument(
        "--modes",
        default="local,per-step,slurm",
        help=f"comma-separated, run in this order; 'local' is always run (of {', '.join(MODES)})",
    )
    parser.add_argument("--keep", type=Path, help="keep the run folders here (default: temp)")
    parser.add_argument(
        "--analyze", type=Path, help="only print the figures of a run kept with --keep DIR"
    )
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"--modes: unknown {unknown}; choose from {', '.join(MODES)}")
    if "local" not in modes:
        modes.insert(0, "local")

    problem = slurm_problem()
    if problem:
        print(f"sweep_slurm: skipped, {problem}")
        return 0
    if args.analyze:
        saved = json.loads((args.analyze / "walls.json").read_text())
        logs = {m: (args.analyze / m / "snakemake.log").read_text() for m in saved["walls"]}
        report(saved["walls"], logs, saved["meta"])
        return 0

    base = args.keep or Path(tempfile.mkdtemp(prefix="sweep_slurm-"))
    meta = {"patches": args.patches, "iterations": args.iterations, "load": os.getloadavg()[0]}
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    walls, logs = {}, {}
    with MlflowServer(base / "mlflow") as server:
        env["MLFLOW_TRACKING_URI"] = server.uri
        for mode in modes:
            workdir = base / mode
            workdir.mkdir(parents=True, exist_ok=True)
            profile, extra = MODES[mode]
            if profile == "per-step":
                profile = per_step_profile(base / "profile-per-step")
            if profile is not None:
                extra = ["--profile", str(profile), *extra]
            config = sweep_config(f"{mode}-", args.patches, args.iterations)
            (workdir / "sweep.yaml").write_text(yaml.safe_dump(config))
            print(f"running the sweep {mode} in {workdir} ...", flush=True)
            walls[mode], logs[mode] = run_workflow(workdir, extra, env)
    meta["load_after"] = os.getloadavg()[0]
    (base / "walls.json").write_text(json.dumps({"walls": walls, "meta": meta}))
    report(walls, logs, meta)
    if args.keep is None:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
