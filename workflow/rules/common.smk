# Config loading and input functions shared by every rule file. The config is checked once,
# by sparseae.config.resolve_config (YAML of each file, schema, cross-field rules, sweeps);
# what lies outside it (environment, tracking store, input files) right after.
import copy
import json
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError

from sparseae.config import ConfigError, resolve_config, trajectory_config
from sparseae.config.environment import cluster_memory_problems, dataset_path_problem
from sparseae.config.environment import device_problems
from sparseae.config.environment import input_path_problems, workflow_input_problems
from sparseae.config.sweeps import grid_settings
from sparseae.data import SOURCES, DatasetError, dataset_checksum
from sparseae.pipeline.cnn import pooling_config
from sparseae.pipeline.cnn import num_pooled_chunks as pooled_chunk_count
from sparseae.pipeline.experiment import EVALUATION_FILES, RESULT_FILES, data_config
from sparseae.tracking.settings import SWEEP_TAG, resolve_tracking_uri, sqlite_path
from sparseae.tracking.store import store_marker

ENV = "../envs/sparseae.yaml"

try:
    CONFIG = resolve_config(config, files=workflow.configfiles)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

EXPERIMENTS = CONFIG.experiments
RUN = CONFIG.run
# Environment variables, the tracking store and the input folders: checked before any job.
# The device is checked in preflight(): only then does Snakemake know whether jobs run here.
_input_problems = workflow_input_problems(CONFIG, local=False)
if _input_problems:
    raise WorkflowError("invalid configuration:\n  - " + "\n  - ".join(_input_problems))
try:
    TRACKING_URI = resolve_tracking_uri(CONFIG.tracking["uri"])
except ValueError as error:
    raise WorkflowError(f"config key 'tracking.uri': {error}") from None
# The init marker is named after the store's identity token (read-only here): a store that is
# moved away or replaced gets a new marker name, so init_store runs again and every log job
# (whose input the marker is) refills the store from the result files. Parsing writes nothing.
TRACKING_MARKER = store_marker(TRACKING_URI, "results/_tracking").as_posix()


# ------------------------------------------------------------------ config access


def section(name):
    """Input/params function returning one config section of the experiment."""
    return lambda wildcards: copy.deepcopy(EXPERIMENTS[wildcards.experiment][name])


def resource(kind, field):
    """threads/resources function: experiments.<exp>.resources.<kind>.<field>."""
    return lambda wildcards: EXPERIMENTS[wildcards.experiment].resources[kind][field]


def num_chunks(wildcards):
    return EXPERIMENTS[wildcards.experiment].training["chunks"]


def experiment_mlflow_name(name):
    """MLflow experiment of a config experiment, or of a sweep: a sweep member logs into its
    sweep's experiment, so the members compare in one runs table."""
    return CONFIG.tracking["experiment_prefix"] + SWEEP_OF.get(name, name)


SWEEP_OF = {m: s for s, members in CONFIG.sweep_members.items() for m in members}


def mlflow_tags(name):
    """Run tags: the sweep a member belongs to, so the MLflow UI can compare members."""
    return {SWEEP_TAG: SWEEP_OF[name]} if name in SWEEP_OF else {}


# ------------------------------------------------------------------ sweeps

SWEEPS = CONFIG.sweeps
# Sweeps named in `run` get a summary table and a parent MLflow run (CONFIG.run lists
# their members instead of the sweep names, so the names come from the config as given).
_run_given = config.get("run", [])
RUN_SWEEPS = [
    s
    for s in ([_run_given] if isinstance(_run_given, str) else _run_given)
    if s in CONFIG.sweep_members
]


def sweep_members(wildcards):
    """The member experiments of the sweep named by the wildcards, in grid order."""
    if wildcards.sweep not in CONFIG.sweep_members:
        raise WorkflowError(
            f"no sweep named {wildcards.sweep!r} under 'sweeps' in the config; defined: "
            f"{', '.join(sorted(CONFIG['sweep_members'])) or '(none)'}"
        )
    return list(CONFIG.sweep_members[wildcards.sweep])


def sweep_member_files(filename):
    """Input function: results/{member}/<filename> of every member of the sweep."""
    return lambda wildcards: [
        f"results/{m}/{filename}" for m in sweep_members(wildcards)
    ]


def sweep_parameters(wildcards):
    """{table column: setting path} of the sweep's grid, in member-naming order."""
    sweep_members(wildcards)  # a clear error for an unknown sweep
    return grid_settings(SWEEPS[wildcards.sweep]["grid"])


def sweep_settings(wildcards):
    """The sweep as written (base, overrides, grid): params of its parent MLflow run."""
    sweep_members(wildcards)
    return SWEEPS[wildcards.sweep].to_dict()


def sweep_targets():
    """Table, figure and parent MLflow run of every sweep named in `run`."""
    return [
        f"results/sweeps/{s}/{f}"
        for s in RUN_SWEEPS
        for f in (
            "summary.tsv",
            "summary.html",
            "summary.png",
            "filters.png",
            "mlflow.json",
        )
    ]


# ------------------------------------------------------------------ input functions


def fetched_marker(wildcards):
    """The download marker of the experiment's source (and split, for split sources)."""
    dataset = EXPERIMENTS[wildcards.experiment].dataset
    loader = SOURCES[dataset["source"]].loader
    if dataset["path"] and loader in ("image-folder", "stl10"):
        return []  # the user's own folder or .mat file (dataset.path): nothing to fetch
    return f"resources/{dataset['source']}/fetched-{dataset['split']}.json"


def previous_chunk(wildcards):
    """Chunk k starts from chunk k-1's checkpoint; chunk 1 from the seeded initial theta."""
    k = int(wildcards.k)
    return [f"results/{wildcards.experiment}/chunks/{k - 1}.npz"] if k > 1 else []


def all_chunks(wildcards):
    return [
        f"results/{wildcards.experiment}/chunks/{k}.npz"
        for k in range(1, num_chunks(wildcards) + 1)
    ]


def trajectory(wildcards):
    """Params: the experiment's trajectory, the settings that can change its numbers.

    Only these reach the numeric steps as params, so that a change of anything else
    (progress output, resources, gradient-check or evaluation settings, descriptions) never
    makes Snakemake recompute a result; see config/README.md for what each key recomputes.
    """
    return trajectory_config(EXPERIMENTS[wildcards.experiment])


def data_settings(wildcards):
    """Params of sample_patches: the settings that decide the training data alone."""
    return data_config(EXPERIMENTS[wildcards.experiment])


def progress_every(wildcards):
    return EXPERIMENTS[wildcards.experiment].training["progress_every"]


def folder_checksum(wildcards):
    """sha256 of the files of a user-given dataset.path (an image folder or a .mat file).

    Downloaded sources are checked by their fetch markers; a path of the user's own is no
    file Snakemake tracks, so its contents enter sample_patches' params instead.
    """
    dataset = EXPERIMENTS[wildcards.experiment].dataset
    if dataset["path"] is None:
        return None
    try:
        return dataset_checksum(dataset["source"], path=dataset["path"])
    except (DatasetError, OSError) as error:
        problem = dataset_path_problem(wildcards.experiment, dataset["path"], error)
        raise path_refusal(wildcards.experiment, problem) from None


def path_refusal(name, fallback):
    """The error for a user's file of experiment `name` that cannot be hashed: the
    message of the check made while the workflow is read (`run`), else `fallback`."""
    problems = input_path_problems({name: EXPERIMENTS[name]})
    return WorkflowError("\n".join(problems) or fallback)


def rule_logs(wildcards):
    """The logs of an experiment's jobs that exist before log_mlflow runs."""
    name = wildcards.experiment
    logs = [
        f"logs/{name}/write_config.log",
        f"logs/{name}/write_trajectory.log",
        f"logs/{name}/sample_patches.log",
        f"logs/{name}/check_gradient.log",
        f"logs/{name}/finalize.log",
        f"logs/{name}/plot_filters.log",
        f"logs/{name}/plot_curves.log",
        f"logs/{name}/diagnose.log",
    ]
    logs += [
        f"logs/{name}/train_chunk-{k}.log" for k in range(1, num_chunks(wildcards) + 1)
    ]
    if evaluates(name):
        # The evaluation's log; its files are log_mlflow's input `evaluation`.
        logs.append(f"logs/{name}/evaluate.log")
    return logs


def evaluates(name):
    """Whether experiment `name` has the self-taught evaluation (evaluation.enabled)."""
    return bool(EXPERIMENTS[name].evaluation["enabled"])


def evaluation_outputs(wildcards):
    """Input function: the evaluation files of the experiment, if it evaluates."""
    name = wildcards.experiment
    return [f"results/{name}/{f}" for f in EVALUATION_FILES] if evaluates(name) else []


def cnn_targets(name):
    """cnn_evaluation.json of an experiment with a `cnn` section (none else)."""
    return (
        [f"results/{name}/cnn_evaluation.json"] if EXPERIMENTS[name].get("cnn") else []
    )


def cnn_outputs(wildcards):
    return cnn_targets(wildcards.experiment)


def cnn_fetched(wildcards):
    """The download markers of the splits whose images are convolved (cnn.images): stl10
    reads train and test (not a part read from a .mat file), mnist one split."""
    images = EXPERIMENTS[wildcards.experiment].cnn["images"]
    splits = [images["split"] or "test"]
    if images["source"] == "stl10":
        splits = [part for part in ("train", "test") if not images[part].get("path")]
    return [f"resources/{images['source']}/fetched-{split}.json" for split in splits]


def cnn_mat_checksums(wildcards):
    """The checksum of each .mat file cnn.images names (train, test), as for dataset.path:
    no file Snakemake tracks, so its contents (not time stamp) rerun prepare_images."""
    images = EXPERIMENTS[wildcards.experiment].cnn["images"]
    paths = [images[part].get("path") for part in ("train", "test")]
    try:
        return [path and dataset_checksum("stl10", path=path) for path in paths]
    except (DatasetError, OSError) as error:
        raise path_refusal(wildcards.experiment, f"cnn.images: {error}") from None


def num_pooled_chunks(wildcards):
    return pooled_chunk_count(EXPERIMENTS[wildcards.experiment])


def pooled_chunks(wildcards):
    return [
        f"results/{wildcards.experiment}/pooled/{k}.npz"
        for k in range(1, num_pooled_chunks(wildcards) + 1)
    ]


def pooling_settings(wildcards):
    """Params of the pooled chunks: the `cnn` settings but the classifier's."""
    return pooling_config(EXPERIMENTS[wildcards.experiment])


def cnn_softmax(wildcards):
    return copy.deepcopy(EXPERIMENTS[wildcards.experiment].cnn["softmax"])


def final_targets():
    """Targets of the all-rule: every result file of each experiment in `run`, and its MLflow log."""
    targets = []
    for name in RUN:
        targets += [f"results/{name}/{f}" for f in RESULT_FILES]
        if evaluates(name):
            targets += [f"results/{name}/{f}" for f in EVALUATION_FILES]
        targets += cnn_targets(name)
        targets.append(f"results/{name}/mlflow.json")
    return targets


# ------------------------------------------------------------------ preflight

# Folders the jobs write to. A job finds out on its own only when it runs, which for the last
# training chunk or the MLflow logging can be hours in; they are all checked before any job.
WRITABLE_FOLDERS = {
    "results": "results folder",
    "logs": "log folder",
    "resources": "downloads folder",
    "benchmarks": "benchmarks folder",
}


def output_folders():
    """(absolute folder, what it is) for every folder a run writes, local MLflow store included.

    A tracking server checks its own artifact store; init_store (priority 100) asks it first.
    """
    folders = [(Path.cwd() / name, what) for name, what in WRITABLE_FOLDERS.items()]
    db = sqlite_path(TRACKING_URI)
    if db is not None:
        folders.append((db.resolve().parent, "folder of the MLflow database"))
        folders.append(
            (db.resolve().parent / "mlartifacts", "MLflow artifact location")
        )
    return folders


def blocked_folders():
    """Messages for output folders whose path runs through a regular file (nothing written).

    Checked while the workflow is parsed, dry runs included: Snakemake itself would otherwise
    stop with a NotADirectoryError traceback while building the DAG.
    """
    problems = []
    for folder, what in output_folders():
        existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
        if existing is not None and not existing.is_dir():
            problems.append(
                f"{what} {folder} cannot be used: {existing} is a file, not a folder; move "
                f"that file away (or run in another folder)"
            )
    return problems


def preflight():
    """Raise WorkflowError if an output folder, or a local MLflow store, cannot be written.

    A real write probe (sparseae.tracking.store.check_writable_folder), not os.access: root
    passes permission checks yet cannot write on a read-only mount. Run from onstart, so
    only real runs with jobs to do check (and create) the folders.
    """
    from sparseae.tracking.store import TrackingError, check_writable_folder

    problems = blocked_folders() + cluster_tracking_problems()
    # On a cluster each chunk job finds its node's GPU (or stops with the same message).
    problems += device_problems(CONFIG) if workflow.local_exec else []
    for folder, what in output_folders():
        try:
            check_writable_folder(folder, what)
        except TrackingError as error:
            problems.append(str(error))
    if problems:
        raise WorkflowError(
            "sparseae: cannot start, nothing was run:\n  - "
            + "\n  - ".join(dict.fromkeys(problems))
        )


def cluster_tracking_problems():
    """A cluster run must log to a tracking server, never to an sqlite file.

    Results live on a shared filesystem there, where sqlite's locking is unreliable and
    several workflow runs may write at once; `mlflow server` serialises the writes.
    """
    if workflow.local_exec:
        return []
    memory = cluster_memory_problems(CONFIG)  # a job beyond its mem_mb is killed
    if sqlite_path(TRACKING_URI) is None:
        return memory
    return memory + [
        f"the MLflow store is an sqlite file ({TRACKING_URI}) but jobs run through a "
        "cluster executor: start `mlflow server` on a host the nodes reach and set "
        "MLFLOW_TRACKING_URI=http://HOST:PORT (or config key tracking.uri); see docs/slurm.md"
    ]


_blocked = blocked_folders()
if _blocked:
    raise WorkflowError(
        "sparseae: cannot start, nothing was run:\n  - " + "\n  - ".join(_blocked)
    )


# ------------------------------------------------------------------ console messages


def startup_message():
    lines = [
        "sparseae: running " + ", ".join(RUN + RUN_STACKED),
        f"  tracking store: {TRACKING_URI}",
    ]
    return "\n".join(lines)


def success_message():
    """Each experiment's key numbers, figures and MLflow page; also the landing page of
    `make report` for this config file, named after it (sparseae.analysis.summary)."""
    from sparseae.analysis.summary import closing_summary, write_report_page

    intro = Path(workflow.basedir, "workflow/report/workflow.rst").read_text()
    write_report_page(RUN, REPORT_PAGE, intro)
    summary = closing_summary(RUN, RUN_SWEEPS, TRACKING_URI)
    return "\n".join([summary, *stacked_success_lines()])


def error_message():
    from sparseae.analysis.summary import missing_downloads

    # Every missing download at once: the fetch job names only the first file it missed.
    missing = missing_downloads(EXPERIMENTS[name]["dataset"] for name in RUN)
    return "\n".join(
        [
            "sparseae: a job failed; its log is named above (logs/<experiment>/<rule>.log).",
            *(f"  {line}" for line in missing),
            "  Finished results are kept: rerun the same command to resume (training restarts at",
            "  the first missing chunk; MLflow logging fills in what is missing).",
        ]
    )


def fitted_zca(wildcards):
    """Input of plot_filters where patches.npz holds a fitted ZCA (zca-mean-patch): the
    filters are shown through it, as the linear-decoder exercise shows W1 * ZCAWhite."""
    name = wildcards.experiment
    if EXPERIMENTS[name].patches["whitening"]["method"] != "zca-mean-patch":
        return {}
    return {"patches": f"results/{name}/patches.npz"}
