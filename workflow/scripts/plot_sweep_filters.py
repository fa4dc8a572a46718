"""Rule plot_sweep_filters: results/sweeps/{sweep}/filters.png, every member's filter grid.

A contact sheet labelled with each member's swept values (read from the sweep's table):
MLflow has no side-by-side view of artifact images, so the sweep's parent run holds this one.
"""

import logging

from sparseae.rulelog import log_to_rule_log
from sparseae.sweep import plot_sweep_filters, read_sweep_table

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
table = read_sweep_table(smk.input.tsv)
plot_sweep_filters(
    table,
    list(smk.input.filters),
    smk.output[0],
    title=f"sweep {smk.wildcards.sweep}: learned filters of its {len(table)} members",
)
logging.info(
    "sweep %s: contact sheet of %d members -> %s", smk.wildcards.sweep, len(table), smk.output[0]
)
