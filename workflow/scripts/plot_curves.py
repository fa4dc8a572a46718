"""Rule plot_curves: cost_curve.png (chunk boundaries marked) and rhohat.png."""

import logging

import numpy as np
import pandas as pd

from sparseae.io import read_json
from sparseae.rulelog import log_to_rule_log
from sparseae.visualize import plot_cost_curve, plot_rhohat

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
history = pd.read_csv(smk.input.history, sep="\t")
summary = read_json(smk.input.summary)
boundaries = summary["chunk_ends"][:-1]
plot_cost_curve(
    history["iteration"].to_numpy(),
    history["cost"].to_numpy(),
    smk.output.cost,
    chunk_boundaries=boundaries,
    title=f"{smk.wildcards.experiment}: sparse autoencoder training cost",
)
plot_rhohat(
    np.asarray(summary["rhohat"]),
    smk.params.model["rho"],
    smk.output.rhohat,
    title=f"{smk.wildcards.experiment}: mean activation of each hidden unit",
)
logging.info("wrote %s and %s", smk.output.cost, smk.output.rhohat)
