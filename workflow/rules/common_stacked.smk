# Input functions of the stacked experiments (`stacked_experiments` in the config), used by
# workflow/rules/stacked.smk. Each chunked stage's params hold only what decides its result
# (sparseae.config.stacked.stage_trajectory), so a change reruns exactly the stages it affects.
from sparseae.config.stacked import gradcheck_settings, stage_trajectory

STACKED = CONFIG.stacked_experiments
RUN_STACKED = CONFIG.run_stacked


def stacked_resource(kind, field):
    """threads/resources: stacked_experiments.<exp>.resources.<kind>.<field>."""
    return lambda wildcards: STACKED[wildcards.experiment].resources[kind][field]


def stacked_trajectory(stage):
    """Params function: the trajectory of `stage` (layer{l} from the wildcards, softmax, finetune)."""

    def params(wildcards):
        name = stage if stage != "layer" else f"layer{wildcards.layer}"
        return stage_trajectory(STACKED[wildcards.experiment], name)

    return params


def stacked_gradcheck(wildcards):
    return gradcheck_settings(STACKED[wildcards.experiment])


def stacked_fetched(wildcards):
    """The download marker of the MNIST split the train or test images come from."""
    dataset = STACKED[wildcards.experiment].dataset
    return (
        f"resources/{dataset['source']}/fetched-{dataset[wildcards.part]['split']}.json"
    )


def stacked_layers(wildcards):
    return len(STACKED[wildcards.experiment].layers["hidden_sizes"])


def layer_input(wildcards):
    """Layer 1 trains on the images, layer l on layer l-1's features."""
    layer = int(wildcards.layer)
    if layer == 1:
        return f"results/{wildcards.experiment}/stacked_train.npz"
    return f"results/{wildcards.experiment}/layer{layer - 1}/features.npz"


def previous_layer_chunk(wildcards):
    k = int(wildcards.k)
    folder = f"results/{wildcards.experiment}/layer{wildcards.layer}/chunks"
    return [f"{folder}/{k - 1}.npz"] if k > 1 else []


def chunk_files(name, stage):
    """The chunk checkpoints of a chunked stage (layer{l} or finetune) of experiment `name`."""
    experiment = STACKED[name]
    section = "finetuning" if stage == "finetune" else "pretraining"
    return [
        f"results/{name}/{stage}/chunks/{k}.npz"
        for k in range(1, experiment[section]["chunks"] + 1)
    ]


def layer_chunks(wildcards):
    return chunk_files(wildcards.experiment, f"layer{wildcards.layer}")


def layer_thetas(wildcards):
    return [
        f"results/{wildcards.experiment}/layer{layer}/theta.npz"
        for layer in range(1, stacked_layers(wildcards) + 1)
    ]


def last_features(wildcards):
    return (
        f"results/{wildcards.experiment}/layer{stacked_layers(wildcards)}/features.npz"
    )


def previous_finetune_chunk(wildcards):
    k = int(wildcards.k)
    folder = f"results/{wildcards.experiment}/finetune/chunks"
    return [f"{folder}/{k - 1}.npz"] if k > 1 else []


def finetune_chunks(wildcards):
    return chunk_files(wildcards.experiment, "finetune")


def stage_chunks(wildcards):
    """{stage: [its checkpoints]} of every stage, in order (params of the figures/evaluation)."""
    name = wildcards.experiment
    stages = {
        f"layer{layer}": chunk_files(name, f"layer{layer}")
        for layer in range(1, stacked_layers(wildcards) + 1)
    }
    stages["softmax"] = [f"results/{name}/softmax.npz"]
    stages["finetune"] = chunk_files(name, "finetune")
    return stages


def all_stage_chunks(wildcards):
    return [path for paths in stage_chunks(wildcards).values() for path in paths]


STACKED_FILES = (
    "stacked_config.json",
    "stacked_gradcheck.json",
    "stack.npz",
    "stacked_evaluation.json",
    "confusion_before.png",
    "confusion_after.png",
    "filters_before.png",
    "filters_after.png",
    "stacked_cost_curves.png",
)


def stacked_logs(wildcards):
    """The logs of a stacked experiment's jobs that exist before log_stacked runs."""
    name = wildcards.experiment
    experiment = STACKED[name]
    logs = [
        f"logs/{name}/{rule}.log"
        for rule in (
            "write_stacked_config",
            "write_finetune_trajectory",
            "prepare_stacked_data-train",
            "prepare_stacked_data-test",
            "check_stacked_gradient",
            "train_stacked_softmax",
            "finalize_stacked",
            "evaluate_stacked",
            "plot_stacked",
        )
    ]
    for layer in range(1, stacked_layers(wildcards) + 1):
        logs.append(f"logs/{name}/finalize_layer-{layer}.log")
        logs += [
            f"logs/{name}/train_layer_chunk-{layer}-{k}.log"
            for k in range(1, experiment["pretraining"]["chunks"] + 1)
        ]
    logs += [
        f"logs/{name}/finetune_chunk-{k}.log"
        for k in range(1, experiment["finetuning"]["chunks"] + 1)
    ]
    return logs


def stacked_targets():
    """Targets of the all-rule for the stacked experiments in `run`."""
    return [
        f"results/{name}/{f}"
        for name in RUN_STACKED
        for f in (*STACKED_FILES, "stacked_mlflow.json")
    ]


def stacked_success_lines():
    """Closing-message lines: each stacked experiment's accuracies before/after fine-tuning."""
    lines = []
    for name in RUN_STACKED:
        path = Path(f"results/{name}/stacked_evaluation.json")
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
            lines.append(
                f"  {name}: test accuracy {100 * result['accuracy_before']:.2f}% before "
                f"fine-tuning, {100 * result['accuracy_after']:.2f}% after, "
                f"{100 * result['accuracy_raw']:.2f}% softmax on raw pixels ({path})"
            )
        except (OSError, ValueError, KeyError, TypeError):
            lines.append(f"  {name}: {path} (not readable)")
    return lines
