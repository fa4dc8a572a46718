"""The config's rules applied once the data is read (rule scripts), with :mod:`.rules`."""

from __future__ import annotations

from collections.abc import Mapping

from sparseae.config.rules import num_images_problem, patch_fits_problem
from sparseae.config.schema import raise_problems


def check_loaded_images(name: str, experiment: Mapping, available: int, where: str) -> None:
    """``dataset.num_images`` must not exceed the ``available`` images of ``where``."""
    wanted = experiment["dataset"]["num_images"]
    raise_problems([num_images_problem(f"experiments.{name}", wanted, available, where)])


def check_patch_fits(name: str, experiment: Mapping, image_shape: tuple[int, ...]) -> None:
    """Refuse a patch larger than the images, once their ``(rows, cols)`` are known."""
    rows, cols = int(image_shape[0]), int(image_shape[1])
    source, size = experiment["dataset"]["source"], experiment["patches"]["size"]
    raise_problems([patch_fits_problem(f"experiments.{name}", size, source, rows, cols)])


def check_image_inputs(name: str, experiment: Mapping, num_pixels: int) -> None:
    """For whole-image experiments (``patches.size: null``): visible_size == pixels per image."""
    visible = experiment["model"]["visible_size"]
    if experiment["patches"]["size"] is None and visible != num_pixels:
        raise_problems(
            [
                f"config key 'experiments.{name}.model.visible_size' = {visible} but the images of "
                f"source '{experiment['dataset']['source']}' have {num_pixels} pixels; allowed: "
                f"model.visible_size = {num_pixels} when patches.size is null"
            ]
        )


def check_examples_left(name: str, experiment: Mapping, count: int) -> None:
    """After the label filter (``dataset.digits``) at least one example must remain."""
    if count < 1:
        dataset = experiment["dataset"]
        raise_problems(
            [
                f"config key 'experiments.{name}.dataset.digits' = {dataset['digits']} keeps no "
                f"image of the first {dataset['num_images']} (dataset.num_images); allowed: "
                f"digits present in the data, or a larger num_images (null = all)"
            ]
        )


def check_trained(name: str, iterations: int) -> None:
    """A finished training run must have made at least one L-BFGS iteration."""
    if iterations < 1:
        raise_problems(
            [
                f"experiment '{name}' made no L-BFGS iteration: L-BFGS stopped at the random "
                f"start; lower config key 'experiments.{name}.optimizer.gtol' (default "
                f"1.0e-9) or 'optimizer.ftol' (default 1.0e-12), then rerun"
            ]
        )
