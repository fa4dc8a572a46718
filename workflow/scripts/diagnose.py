"""Rule diagnose: results/{experiment}/diagnostics.json and units.png from theta and patches.

What each hidden unit responds to (top-k examples, alignment of weights and examples, the role
of contrast), dead and saturated units, fraction of variance explained; the numerics live in
sparseae.diagnostics.
"""

import logging
import sys

from sparseae.diagnostics import DiagnosticsError, diagnose
from sparseae.rulelog import log_to_rule_log

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
try:
    record = diagnose(
        smk.input.theta,
        smk.input.patches,
        json_path=smk.output.json,
        png_path=smk.output.png,
        experiment=smk.wildcards.experiment,
        model=smk.params.model,
        settings=smk.params.settings,
        seed=smk.params.seed,
    )
except DiagnosticsError as error:
    logging.error("%s", error)
    sys.exit(f"experiment '{smk.wildcards.experiment}': {error}")
logging.info("%s", ", ".join(f"{k} {v:.4g}" for k, v in record["metrics"].items()))
