"""Rule plot_curves: cost_curve.png (chunk boundaries marked) and rhohat.png."""

import logging
import sys

import numpy as np
import pandas as pd

from sparseae.io import read_json
from sparseae.visualize import plot_cost_curve, plot_rhohat

smk = snakemake  # noqa: F821
logging.basicConfig(
    filename=smk.log[0],
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
# An error goes to this job's log too, where Snakemake's error report sends the user.
sys.excepthook = lambda *exc: (logging.critical("failed:", exc_info=exc), sys.__excepthook__(*exc))
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
