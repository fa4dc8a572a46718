"""Rule plot_filters: results/{experiment}/filters.png, display_network of W1ᵀ."""

import logging

from sparseae.autoencoder import unpack
from sparseae.io import load_theta_npz
from sparseae.rulelog import log_to_rule_log
from sparseae.visualize import display_network, save_png

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
model = smk.params.model
theta, _ = load_theta_npz(smk.input.theta)
W1 = unpack(theta, model["visible_size"], model["hidden_size"])[0]
grid = display_network(W1.T)
save_png(grid, smk.output[0])
logging.info("filter grid of %d units: %s pixels -> %s", W1.shape[0], grid.shape, smk.output[0])
