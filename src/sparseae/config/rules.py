"""Cross-field rules: what no single-field schema rule can say, each rule written once.

Every function returns messages (empty: none) naming the dotted key, the value, what is
allowed and the fix; rules that need the images themselves reuse them where those are read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping


def _source(name: str):
    from sparseae.data import SOURCES

    return SOURCES.get(name)


def patch_fits_problem(key: str, size, source: str, rows: int, cols: int) -> str | None:
    """A patch side larger than the images (``key``: the experiment's dotted key)."""
    if size is None or (size <= rows and size <= cols):
        return None
    return (
        f"config key '{key}.patches.size' = {size} is larger than the images of source "
        f"'{source}' ({rows}x{cols}); allowed: 1 <= patches.size <= {min(rows, cols)}"
    )


def num_images_problem(key: str, wanted, held: int, where: str) -> str | None:
    """``dataset.num_images`` beyond what ``where`` holds: never silently fewer images."""
    if wanted is None or wanted <= held:
        return None
    return (
        f"config key '{key}.dataset.num_images' = {wanted} is more than {where} holds ({held}); "
        f"allowed: 1 <= num_images <= {held}, or null for all of them"
    )


def maxfun_problem(key: str, maxfun: int, planned: int, plan: str) -> str | None:
    """An evaluation budget smaller than the iterations planned (``plan`` says which)."""
    if maxfun >= planned:
        return None
    return (
        f"config key '{key}.optimizer.maxfun' = {maxfun} is smaller than the {planned} "
        f"iterations planned ({plan}; every iteration costs at least one evaluation, so "
        f"training would stop early); allowed: maxfun >= {planned}, e.g. {max(1000, 2 * planned)}"
    )


def examples_problem(key: str, num: int, available: int, what: str) -> str | None:
    """A gradient check on more examples than the training data has."""
    if num <= available:
        return None
    return (
        f"config key '{key}.gradcheck.num_examples' = {num} exceeds {what} ({available}); "
        f"allowed: 1 <= num_examples <= {available}"
    )


def physical_mb() -> int | None:
    """Memory of this machine in MB (None where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def experiment_problems(name: str, experiment: Mapping) -> list[str]:
    """Every cross-field rule of one experiment with defaults filled."""
    key = f"experiments.{name}"
    size, visible = experiment["patches"]["size"], experiment["model"]["visible_size"]
    channels = experiment["patches"].get("channels", 1)
    problems = []
    if size is not None and size * size * channels != visible:
        problems.append(
            f"config key '{key}.patches.size' = {size} gives {size}x{size}x{channels} = "
            f"{size * size * channels} inputs but '{key}.model.visible_size' = {visible}; "
            f"allowed: patches.size squared must equal model.visible_size / "
            f"patches.channels (e.g. size {int(round((visible / channels) ** 0.5))} for "
            f"{visible} inputs if that fits)"
        )
    problems += _dataset_problems(key, experiment)
    # Self-taught evaluation: labeled digits disjoint from the unlabeled dataset.digits.
    evaluation, source = experiment["evaluation"], _source(experiment["dataset"]["source"])
    unlabeled, labeled = experiment["dataset"]["digits"], evaluation["labeled_digits"]
    if not evaluation["enabled"] or source is None:
        pass
    elif source.loader != "mnist":
        problems.append(
            f"config key '{key}.evaluation.enabled' is true, but source '{source.name}' has no "
            f"labels; allowed: a digit source (mnist) or evaluation.enabled: false"
        )
    elif unlabeled is None:
        problems.append(
            f"config key '{key}.evaluation.enabled' is true, but '{key}.dataset.digits' is null "
            f"(the autoencoder would train on every digit, the labeled ones included); allowed: "
            f"dataset.digits set to the unlabeled digits, e.g. [5, 6, 7, 8, 9]"
        )
    elif overlap := sorted(set(unlabeled) & set(labeled)):
        problems.append(
            f"config key '{key}.evaluation.labeled_digits' = {labeled} shares {overlap} with "
            f"'{key}.dataset.digits' = {unlabeled} (the unlabeled digits the autoencoder trains "
            f"on); allowed: disjoint digit sets"
        )
    problems += cnn_problems(key, experiment)
    if size is not None:
        count = experiment["patches"]["count"]
        num = experiment["gradcheck"]["num_examples"]
        problems.append(examples_problem(key, num, count, f"'{key}.patches.count'"))
    training = experiment["training"]
    planned = training["chunks"] * training["iterations_per_chunk"]
    plan = (
        f"training.chunks {training['chunks']} x training.iterations_per_chunk "
        f"{training['iterations_per_chunk']}"
    )
    problems.append(maxfun_problem(key, experiment["optimizer"]["maxfun"], planned, plan))
    problems += memory_problems(name, experiment)
    return [problem for problem in problems if problem]


def _dataset_problems(key: str, experiment: Mapping) -> list[str | None]:
    """The source must exist, suit the patch setting, and use every dataset key given."""
    from sparseae.data import SOURCES

    dataset, size = experiment["dataset"], experiment["patches"]["size"]
    source = SOURCES.get(dataset["source"])
    if source is None:
        return [
            f"config key '{key}.dataset.source' = {dataset['source']!r} is not a known source; "
            f"allowed: one of {', '.join(sorted(SOURCES))}"
        ]
    digits, name, path = source.loader == "mnist", source.name, dataset["path"]
    problems: list[str | None] = []
    channels = experiment["patches"].get("channels", 1)
    if channels not in ((1, 3) if source.loader == "sample-photos" else (source.channels,)):
        problems.append(
            f"config key '{key}.patches.channels' = {channels}, but source '{name}' holds "
            f"images of {source.channels} channel(s); allowed: {source.channels} (or source "
            f"sample-photos, read in grey or in colour)"
        )
    if source.loader == "stl10" and dataset["num_images"] is None and not path:
        problems.append(
            f"config key '{key}.dataset.num_images' is null, but all images of source 'stl10' "
            f"would not fit in memory (100,000 unlabeled: 22 GB as float64); allowed: an "
            f"integer, e.g. 10000"
        )
    if not digits and size is None:
        problems.append(
            f"config key '{key}.patches.size' is null, but source '{name}' holds images to cut "
            f"patches from; allowed: an integer >= 1 (e.g. 8)"
        )
    if source.loader == "image-folder" and not path:
        problems.append(
            f"config key '{key}.dataset.path' is not set; allowed: the folder of images that "
            f"source 'image-folder' reads"
        )
    if dataset["digits"] is not None and not digits:
        problems.append(
            f"config key '{key}.dataset.digits' is set, but source '{name}' has no labels; "
            f"allowed: null for image sources"
        )
    if path and source.loader in ("mnist", "sample-photos"):
        problems.append(
            f"config key '{key}.dataset.path' = {path!r} is set, but source '{name}' does not "
            f"read a path (it would be ignored); allowed: null, or source image-folder for "
            f"your own images"
        )
    if dataset["split"] not in (source.splits or ["train"]):
        held = ", ".join(source.splits) or "no splits (it would be ignored)"
        allowed = " or ".join(source.splits) or "train (the default) for image sources"
        problems.append(
            f"config key '{key}.dataset.split' = {dataset['split']!r}, but source '{name}' has "
            f"{'splits ' if source.splits else ''}{held}; allowed: {allowed}"
        )
    held = source.images_held(dataset["split"])
    if held is not None and not path:  # a file of the user's own is checked once read
        where = f"source '{name}'" + (f" split {dataset['split']!r}" if source.splits else "")
        problems.append(num_images_problem(key, dataset["num_images"], held, where))
    if source.image_side is not None and not path:
        side = source.image_side
        problems.append(patch_fits_problem(key, size, name, side, side))
    return problems


def cnn_problems(key: str, experiment: Mapping) -> list[str]:
    """Convolution: features of the images' channels, a pool dividing the convolved side."""
    cnn = experiment.get("cnn")
    if cnn is None:
        return []
    features, images = _source(experiment["dataset"]["source"]), _source(cnn["images"]["source"])
    patch = experiment["patches"]["size"] or (features and features.image_side)
    if patch is None or images is None:
        return []  # an unknown source or a patch size of none: refused by the rules above
    channels = experiment["patches"].get("channels", 1)  # visible_size is checked against it
    if channels != images.channels:
        return [
            f"config key '{key}.cnn.images.source' = '{images.name}' holds images of "
            f"{images.channels} channel(s), but the features were learned on patches of "
            f"{channels} (patches.channels); allowed: a source of {channels}-channel images"
        ]
    stl10, given = images.loader == "stl10", cnn["images"]
    unused = [k for k in (("split",) if stl10 else ("classes", "size")) if given[k] is not None]
    if unused:
        return [
            f"config key '{key}.cnn.images.{unused[0]}' = {given[unused[0]]!r} is set, but "
            f"source '{images.name}' does not use it (it would be ignored); allowed: null "
            f"(split: mnist only; classes, size: stl10 only)"
        ]
    side = (given["size"] or images.image_side) - patch + 1
    if side < 1 or side % cnn["pool_size"]:
        return [
            f"config key '{key}.cnn.pool_size' = {cnn['pool_size']} does not divide the "
            f"convolved side {side} ({given['size'] or images.image_side} - patch {patch} + 1); "
            f"allowed: a divisor of {side}"
        ]
    problems = []
    for part in ("train", "test"):
        (start, stop), held = cnn_range(given, part), cnn_held(given, part)
        if not start < stop <= held:
            problems.append(
                f"config key '{key}.cnn.images.{part}' = {start}..{stop} is no range of the "
                f"{held} images it ranges over; allowed: 0 <= start < stop <= {held} (stop "
                f"null = to the end)"
            )
    (a1, b1), (a2, b2) = cnn_range(given, "train"), cnn_range(given, "test")
    if not stl10 and max(a1, a2) < min(b1, b2):
        problems.append(
            f"config key '{key}.cnn.images.test' ({a2}..{b2}) overlaps '{key}.cnn.images.train' "
            f"({a1}..{b1}); allowed: disjoint ranges, e.g. train 0..5000 and test 5000..null"
        )
    return problems


def cnn_held(images: Mapping, part: str) -> int:
    """The images that ``cnn.images.{part}`` ranges over: the mnist split's, or the stl10
    split ``part``'s images of ``classes`` (STL-10 holds as many of each of its 10 classes)."""
    source = _source(images["source"])
    if source.loader == "stl10":
        from sparseae.data.stl10 import CLASSES, TUTORIAL_CLASSES

        classes = images["classes"] or TUTORIAL_CLASSES
        return source.images_held(part) // len(CLASSES) * len(classes)
    return source.images_held(images["split"] or "test")


def cnn_range(images: Mapping, part: str) -> tuple[int, int]:
    """``(start, stop)`` of the ``train`` or ``test`` images of ``cnn.images`` (stop resolved)."""
    stop = images[part]["stop"]
    return int(images[part]["start"]), int(cnn_held(images, part) if stop is None else stop)


def memory_problems(
    name: str, experiment: Mapping, *, physical: int | None = None, job_limits: bool = False
) -> list[str]:
    """Jobs that would not fit this machine (``physical`` MB) or, with ``job_limits``, their
    ``resources.<kind>.mem_mb`` (a cluster job is killed beyond it). Each job's peak memory
    is a lower bound (arrays surely held at once), so a refusal is never a false alarm."""
    key = f"experiments.{name}."
    model, maxcor = experiment["model"], int(experiment["optimizer"]["maxcor"])
    v, h = int(model["visible_size"]), int(model["hidden_size"])
    dataset, source = experiment["dataset"], _source(experiment["dataset"]["source"])
    if experiment["patches"]["size"] is not None:  # m: training examples (columns of the data)
        m, m_key = int(experiment["patches"]["count"]), "patches.count"
    else:
        held = source.images_held(dataset["split"]) if source is not None else None
        m, m_key = int(dataset["num_images"] or held or 60_000), "dataset.num_images"
    theta = 2 * h * v + h + v
    mb = 8 / 2**20  # float64
    examples, visible = f"{key}{m_key} = {m}", f"{key}model.visible_size = {v}"
    hidden = f"{key}model.hidden_size = {h}"
    estimates = {  # MB per kind of job, and the settings that drive it
        # the patch matrix, its normalized copy and the saved array
        "data": (3 * m * v * mb, f"3 arrays of {examples} x {visible}, float64"),
        # data and a3 and delta3 (visible x m), a2 and delta2 (hidden x m), L-BFGS history
        "train": (
            (3 * m * v + 2 * m * h + (2 * maxcor + 4) * theta) * mb,
            f"{examples} examples x ({visible} + {hidden}) activations, and "
            f"2 x {key}optimizer.maxcor = {maxcor} + 4 parameter vectors of length "
            f"2 x {h} x {v} + {h} + {v} = {theta}",
        ),
    }
    if experiment["evaluation"]["enabled"]:
        estimates["evaluate"] = (
            (2 * m * v + 2 * m * h) * mb,
            f"{examples} examples x ({visible} + {hidden}) features",
        )
    physical = physical_mb() if physical is None else physical
    problems = []
    for kind, (needed, why) in estimates.items():
        limit = int(experiment["resources"][kind]["mem_mb"])
        needs = f"experiment '{name}' needs at least {needed:,.0f} MB in its {kind} job ({why})"
        if physical is not None and needed > physical:
            problems.append(
                f"{needs} but this machine has {physical:,} MB; allowed: settings whose "
                f"estimate fits; fix: lower the settings named here"
            )
        elif job_limits and needed > limit:
            problems.append(
                f"{needs} but config key '{key}resources.{kind}.mem_mb' is {limit:,} (a cluster "
                f"job is killed beyond it); fix: raise it to at least {math.ceil(needed)}, or "
                f"lower the settings named here"
            )
    return problems


def stacked_problems(name: str, experiment: Mapping) -> list[str]:
    """Every cross-field rule of one stacked experiment with defaults filled."""
    from sparseae.config.stacked import INPUT_SIZE, PER_LAYER, image_range, num_layers

    key = f"stacked_experiments.{name}"
    problems: list[str | None] = []
    count = num_layers(experiment)
    for setting in PER_LAYER:
        value = experiment["layers"][setting]
        if isinstance(value, list) and len(value) != count:
            problems.append(
                f"config key '{key}.layers.{setting}' lists {len(value)} values for {count} "
                f"layers (layers.hidden_sizes); allowed: one number for every layer, or a list "
                f"of {count}"
            )
    ranges = {}
    for part in ("train", "test"):
        split = experiment["dataset"][part]["split"]
        size = _source(experiment["dataset"]["source"]).images_held(split)
        start, stop = image_range(experiment, part)
        if stop > size:
            problems.append(
                f"config key '{key}.dataset.{part}.stop' = {stop}, but the {split} split has "
                f"{size} images; allowed: {part}.start < stop <= {size} (or null for all)"
            )
        if start >= stop:
            problems.append(
                f"config key '{key}.dataset.{part}.start' = {start} leaves no images before "
                f"stop = {stop}; allowed: 0 <= start < stop"
            )
        ranges[part] = (split, start, stop)
    (s1, a1, b1), (s2, a2, b2) = ranges["train"], ranges["test"]
    if s1 == s2 and max(a1, a2) < min(b1, b2):
        problems.append(
            f"config key '{key}.dataset.test' ({s2} images {a2}..{b2 - 1}) overlaps "
            f"'{key}.dataset.train' ({s1} images {a1}..{b1 - 1}); allowed: disjoint ranges of "
            f"one split, e.g. train start 0 stop 5000 and test start 5000 (stop null)"
        )
    stages = {
        s: experiment[s]["chunks"] * experiment[s]["iterations_per_chunk"]
        for s in ("pretraining", "finetuning")
    }
    stages["softmax"] = experiment["softmax"]["max_iter"]
    stage, planned = max(stages.items(), key=lambda item: item[1])
    plan = f"stage {stage}" if stage == "softmax" else f"{stage}.chunks x iterations_per_chunk"
    optimizer = experiment["optimizer"]
    problems.append(maxfun_problem(key, optimizer["maxfun"], planned, plan))
    examples = b1 - a1
    num = experiment["gradcheck"]["num_examples"]
    problems.append(examples_problem(key, num, examples, "the training images"))
    # The largest layer's L-BFGS pairs and activations against this machine's memory.
    sizes, maxcor = [INPUT_SIZE, *experiment["layers"]["hidden_sizes"]], optimizer["maxcor"]
    needed, physical = 0.0, physical_mb()
    for visible, hidden in zip(sizes[:-1], sizes[1:], strict=False):
        parameters = 2 * visible * hidden + visible + hidden
        needed = max(needed, 8 * ((2 * maxcor + 8) * parameters + 3 * hidden * examples) / 1e6)
    if physical is not None and needed > physical:
        problems.append(
            f"config key '{key}.layers.hidden_sizes' = {list(sizes[1:])} with "
            f"'{key}.optimizer.maxcor' = {maxcor} needs at least {needed:,.0f} MB (the largest "
            f"layer's L-BFGS pairs and activations) but this machine has {physical:,} MB; "
            f"allowed: smaller layers or fewer correction pairs"
        )
    return [problem for problem in problems if problem]
