"""The config's rules applied once the data is read (rule scripts), with :mod:`.rules`."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import numpy as np

from sparseae.config.rules import num_images_problem, patch_fits_problem
from sparseae.config.schema import raise_problems
from sparseae.errors import ConfigError


def check_loaded_images(name: str, experiment: Mapping, shape: tuple[int, ...], where: str):
    """Images of ``shape`` (rows, cols, …, n) read from ``where``: as many as
    ``dataset.num_images`` asks, and the patch fits them (known only now for a folder)."""
    key, dataset, size = f"experiments.{name}", experiment["dataset"], experiment["patches"]["size"]
    fits = patch_fits_problem(key, size, dataset["source"], int(shape[0]), int(shape[1]))
    raise_problems([num_images_problem(key, dataset["num_images"], shape[-1], where), fits])


def check_image_inputs(name: str, experiment: Mapping, num_pixels: int) -> None:
    """For whole-image experiments (``patches.size: null``): visible_size == pixels per image."""
    visible = experiment["model"]["visible_size"]
    if experiment["patches"]["size"] is None and visible != num_pixels:
        problem = (
            f"config key 'experiments.{name}.model.visible_size' = {visible} but the images of "
            f"source '{experiment['dataset']['source']}' have {num_pixels} pixels; allowed: "
            f"model.visible_size = {num_pixels} when patches.size is null"
        )
        raise_problems([problem])


def check_examples_left(name: str, experiment: Mapping, count: int) -> None:
    """After the label filter (``dataset.digits``) at least one example must remain."""
    if count < 1:
        dataset = experiment["dataset"]
        problem = (
            f"config key 'experiments.{name}.dataset.digits' = {dataset['digits']} keeps no "
            f"image of the first {dataset['num_images']} (dataset.num_images); allowed: "
            f"digits present in the data, or a larger num_images (null = all)"
        )
        raise_problems([problem])


def check_trained(name: str, iterations: int) -> None:
    """A finished training run must have made at least one L-BFGS iteration."""
    if iterations < 1:
        problem = (
            f"experiment '{name}' made no L-BFGS iteration: L-BFGS stopped at the random "
            f"start; lower config key 'experiments.{name}.optimizer.gtol' (default "
            f"1.0e-9) or 'optimizer.ftol' (default 1.0e-12), then rerun"
        )
        raise_problems([problem])


#: A name ending in a part repeated 20 times: Snakemake's wildcard matching takes it for a
#: runaway recursion (its PeriodicWildcardError) and stops mid-run.
PERIODIC = re.compile(r"(.+?)\1{19,}$")


def name_problems(config: Mapping, folder: str | os.PathLike = ".") -> list[str]:
    """Experiment, stacked and sweep names become folder names (``results/{name}``) and
    wildcard values: refuse those the file system or Snakemake would refuse mid-run."""
    limit = os.pathconf(folder, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    problems = []
    sections = ("experiments", "stacked_experiments", "sweeps")
    for section, name in ((s, n) for s in sections for n in config.get(s) or {}):
        if len(name.encode()) > limit:
            why = f"is {len(name.encode())} bytes long; the file system allows {limit} per name"
        elif tail := PERIODIC.search(name):
            why = f"ends in {tail.group(1)!r} repeated: Snakemake's PeriodicWildcardError"
        else:
            continue
        problems.append(
            f"config key '{section}.{name}': the name {why}; it becomes a folder name and a "
            f"wildcard value: rename it"
        )
    return problems


#: A patch whose values spread less than this (times the data's largest magnitude, at least
#: 1) is constant; training data of (almost, FLAT_SHARE) only such patches teaches nothing.
FLAT_SPREAD, FLAT_SHARE = 1e-6, 0.99


def check_training_data(name: str, data: Mapping, X: np.ndarray) -> None:
    """Refuse training data (visible × m) that preprocessing left non-finite or (almost) all
    constant, naming the settings that made it: every source and preprocessing path."""
    spread = X.max(axis=0) - X.min(axis=0)
    bad = int(np.count_nonzero(~np.isfinite(spread)))
    flat = int(np.count_nonzero(spread <= FLAT_SPREAD * max(1.0, float(np.abs(X).max()))))
    if not bad and flat < FLAT_SHARE * X.shape[1]:
        return
    dataset, patches = data["dataset"], data["patches"]
    what = f"{bad} hold NaN or inf" if bad else f"{flat} are constant"
    raise ConfigError(
        f"experiment '{name}': the training data gives no usable patches: {what} of its "
        f"{X.shape[1]} patches after preprocessing (dataset.source {dataset['source']!r}, "
        f"dataset.path {dataset['path']!r}, dataset.whiten {dataset['whiten']!r}, patches.size "
        f"{patches['size']}, patches.whitening.method {patches['whitening']['method']!r}, "
        f"patches.normalize {patches['normalize']} under 'experiments.{name}'); use images "
        f"with contrast or change these settings"
    )
