"""Rule plot_filters: results/{experiment}/filters.png, display_network of W1ᵀ."""

import logging
import sys

from sparseae.autoencoder import unpack
from sparseae.io import load_theta_npz
from sparseae.visualize import display_network, save_png

smk = snakemake  # noqa: F821
logging.basicConfig(
    filename=smk.log[0],
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
# An error goes to this job's log too, where Snakemake's error report sends the user.
sys.excepthook = lambda *exc: (logging.critical("failed:", exc_info=exc), sys.__excepthook__(*exc))
model = smk.params.model
theta, _ = load_theta_npz(smk.input.theta)
W1 = unpack(theta, model["visible_size"], model["hidden_size"])[0]
grid = display_network(W1.T)
save_png(grid, smk.output[0])
logging.info("filter grid of %d units: %s pixels -> %s", W1.shape[0], grid.shape, smk.output[0])
