"""A sweep of 8 natural-image experiments on Slurm versus locally with ``--cores 2``.

Runs the same sweep twice in fresh folders, once with ``snakemake --cores 2`` and once with
``snakemake --profile profiles/slurm`` on the cluster that answers ``sinfo`` (on this machine
the single-node test cluster of ``.ci/slurm.sh up``), both logging to one MLflow server on
127.0.0.1 under different experiment prefixes. Prints the wall time of each, their ratio, and
the per-job overhead the Slurm executor adds, split into

- queue: sbatch submission until the job starts (sacct Submit -> Start),
- in allocation: the job's wall time inside Slurm (sacct Start -> End); this includes the
  ``snakemake --executor slurm-jobstep`` start-up that every job pays,
- poll lag: the job's end until Snakemake notices it (sacct End -> "Finished jobid" in the log;
  the plugin polls sacct, first after ``slurm-init-seconds-before-status-checks``, then 10 s
  later after each poll that found nothing finished),

compared with the same rules' durations in the local run. Timestamps are whole seconds (Slurm's
and Snakemake's), so per-job figures are means over many jobs.

Both runs have 2 cores for the compute rules, but under Slurm the workflow's local rules
(figures, MLflow logging, ...) run on the submit host beside the 2 Slurm jobs, so on this
single machine the Slurm run has more processes at once; machine load from other work moves
every figure, hence the load average in the output.

Usage::

    .ci/slurm.sh up            # as root, once
    .venv/bin/python bench/sweep_slurm.py [--iterations 50] [--patches 10000] [--keep DIR]

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

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
JOB_START = re.compile(r"^(?:Job (\d+): |(?:local)?rule \w+:$)")
JOBID_LINE = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
SUBMITTED = re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\d+)")


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


def job_times(log: str) -> dict[int, dict]:
    """Per Snakemake job id: rule, start (printed) and finish timestamps from the log."""
    jobs: dict[int, dict] = defaultdict(dict)
    stamp = None
    pending_start = None
    for line in log.splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        if m := FINISHED.match(line):
            jobs[int(m.group(1))].update(rule=m.group(2), finished=stamp)
        elif m := JOB_START.match(line):
            if m.group(1):
                jobs[int(m.group(1))]["started"] = stamp
            else:
                pending_start = stamp
        elif (m := JOBID_LINE.match(line)) and pending_start is not None:
            jobs[int(m.group(1))]["started"] = pending_start
            pending_start = None
        elif m := SUBMITTED.match(line):
            jobs[int(m.group(1))]["slurm_id"] = m.group(2)
    return dict(jobs)


def sacct_times(slurm_ids: list[str]) -> dict[str, dict[str, datetime]]:
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(slurm_ids), "-o", "JobIDRaw,Submit,Start,End"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    times = {}
    for line in out.splitlines():
        job, *stamps = line.split("|")
        parsed = [datetime.fromisoformat(s) for s in stamps]
        times[job] = dict(zip(("submit", "start", "end"), parsed, strict=True))
    return times


def seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def report(walls: dict[str, float], logs: dict[str, str], meta: dict) -> None:
    """Print wall times, their ratio and the per-job breakdown of the Slurm run."""
    local_jobs = job_times(logs["local"])
    slurm_jobs = job_times(logs["slurm"])
    submitted = {j: info for j, info in slurm_jobs.items() if "slurm_id" in info}
    sacct = sacct_times([info["slurm_id"] for info in submitted.values()])

    local_by_rule = defaultdict(list)
    for info in local_jobs.values():
        if "started" in info and "finished" in info:
            local_by_rule[info["rule"]].append(seconds(info["started"], info["finished"]))
    rows = defaultdict(lambda: defaultdict(list))
    for info in submitted.values():
        times = sacct[info["slurm_id"]]
        row = rows[info["rule"]]
        row["queue"].append(seconds(times["submit"], times["start"]))
        row["alloc"].append(seconds(times["start"], times["end"]))
        row["lag"].append(seconds(times["end"], info["finished"]))
        row["total"].append(seconds(info["started"], info["finished"]))

    n = len(submitted)
    print()
    print(
        f"sweep {SWEEP}: 8 experiments, {meta['patches']} patches, 2 chunks x "
        f"{meta['iterations']} iterations; {n} Slurm jobs (+{len(local_jobs) - n} local rules); "
        f"load average before: {meta['load']:.1f} on {os.cpu_count()} cores"
    )
    print(f"wall time local --cores 2 : {walls['local']:8.1f} s")
    print(f"wall time slurm executor  : {walls['slurm']:8.1f} s")
    print(f"ratio slurm / local       : {walls['slurm'] / walls['local']:8.2f}")
    print()
    header = "rule", "jobs", "local s", "queue s", "in-alloc s", "poll lag s", "submit->seen s"
    print("{:<16}{:>6}{:>10}{:>10}{:>12}{:>12}{:>16}".format(*header))
    local_all, alloc_all, lag_all, queue_all = [], [], [], []
    for rule in sorted(rows):
        row = rows[rule]
        local = local_by_rule.get(rule, [])
        # Weight the local mean like the Slurm jobs (same rules, same counts).
        local_all += [statistics.fmean(local)] * len(row["total"]) if local else []
        alloc_all += row["alloc"]
        lag_all += row["lag"]
        queue_all += row["queue"]
        means = [statistics.fmean(row[k]) for k in ("queue", "alloc", "lag", "total")]
        local_mean = statistics.fmean(local) if local else float("nan")
        print(
            "{:<16}{:>6}{:>10.1f}{:>10.1f}{:>12.1f}{:>12.1f}{:>16.1f}".format(
                rule, len(row["total"]), local_mean, *means
            )
        )
    local_mean = statistics.fmean(local_all)
    startup = statistics.fmean(alloc_all) - local_mean
    lag = statistics.fmean(lag_all)
    print()
    print(f"mean job, local                         : {local_mean:6.1f} s")
    print(f"mean job in its Slurm allocation         : {statistics.fmean(alloc_all):6.1f} s")
    print(f"  -> job start-up inside Slurm (alloc - local): {startup:6.1f} s")
    print(f"mean poll lag (end -> seen by Snakemake)  : {lag:6.1f} s")
    print(f"per-job overhead of the executor (start-up + poll lag): {startup + lag:6.1f} s "
          f"(ratio {(local_mean + startup + lag) / local_mean:.2f} to the local job)")  # fmt: skip
    print(f"mean wait in the queue for a free CPU (not counted above): "
          f"{statistics.fmean(queue_all):6.1f} s")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=50, help="L-BFGS iterations per chunk")
    parser.add_argument("--patches", type=int, default=10000, help="patches per experiment")
    parser.add_argument("--keep", type=Path, help="keep the run folders here (default: temp)")
    parser.add_argument(
        "--analyze", type=Path, help="only print the figures of a run kept with --keep DIR"
    )
    args = parser.parse_args()

    problem = slurm_problem()
    if problem:
        print(f"sweep_slurm: skipped, {problem}")
        return 0
    if args.analyze:
        saved = json.loads((args.analyze / "walls.json").read_text())
        logs = {m: (args.analyze / m / "snakemake.log").read_text() for m in ("local", "slurm")}
        report(saved["walls"], logs, saved["meta"])
        return 0

    base = args.keep or Path(tempfile.mkdtemp(prefix="sweep_slurm-"))
    meta = {"patches": args.patches, "iterations": args.iterations, "load": os.getloadavg()[0]}
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    server = MlflowServer(base / "mlflow")
    server.start()
    env["MLFLOW_TRACKING_URI"] = server.uri
    try:
        walls, logs = {}, {}
        for mode, extra in (
            ("local", ["--cores", "2"]),
            ("slurm", ["--profile", str(REPO / "profiles" / "slurm")]),
        ):
            workdir = base / mode
            workdir.mkdir(parents=True, exist_ok=True)
            config = sweep_config(f"{mode}-", args.patches, args.iterations)
            (workdir / "sweep.yaml").write_text(yaml.safe_dump(config))
            print(f"running the sweep {mode} in {workdir} ...", flush=True)
            walls[mode], logs[mode] = run_workflow(workdir, extra, env)
    finally:
        server.stop()
    (base / "walls.json").write_text(json.dumps({"walls": walls, "meta": meta}))
    report(walls, logs, meta)
    if args.keep is None:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
