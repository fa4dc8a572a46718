"""Rule check_gradient: numerical vs analytic gradient on a small sub-problem of the data.

The sub-problem uses the experiment's visible size, ``gradcheck.num_examples`` of its own
patches and ``gradcheck.hidden_size`` hidden units, with the experiment's λ, β and ρ. The job
fails (and so the pipeline stops before training) when the difference exceeds the bound.
"""

import logging
import sys

import numpy as np

from sparseae.autoencoder import set_num_threads
from sparseae.config import rng
from sparseae.gradcheck import check_gradient
from sparseae.io import write_json
from sparseae.rulelog import log_to_rule_log

smk = snakemake  # noqa: F821
set_num_threads(smk.threads)  # the cost's own thread pool: stay within the job's threads
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
model, settings = smk.params.model, smk.params.gradcheck

with np.load(smk.input.patches, allow_pickle=False) as archive:
    # float64 whatever training.dtype: the check compares gradients to 1e-9.
    data = archive["data"][:, : settings["num_examples"]].astype(np.float64)
result = check_gradient(
    hidden_size=settings["hidden_size"],
    lambda_=model["lambda_"],
    beta=model["beta"],
    rho=model["rho"],
    rng=rng(smk.params.seed, "gradcheck"),
    data=data,
    epsilon=settings["epsilon"],
    bound=settings["bound"],
)
logging.info("quadratic sanity check: %.4e (expected about 2.1e-12)", result["quadratic"])
logging.info(
    "autoencoder: ||num - ana|| / ||num + ana|| = %.4e (bound %.1e, %d parameters)",
    result["autoencoder"],
    result["bound"],
    result["num_parameters"],
)
if not result["passed"]:
    message = (
        f"gradient check FAILED for experiment '{smk.wildcards.experiment}': relative "
        f"difference {result['autoencoder']:.3e} exceeds the bound {result['bound']:.1e} "
        f"(config key experiments.{smk.wildcards.experiment}.gradcheck.bound); the analytic "
        f"gradient disagrees with central differences, so training would not be trustworthy"
    )
    logging.error(message)
    sys.exit(message)
write_json(smk.output[0], result)
