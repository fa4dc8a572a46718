"""Rule summarize_sweep: results/sweeps/{sweep}/summary.tsv, summary.html and summary.png.

One row per member (swept settings, final cost and its terms, rhohat, gradient check,
iterations, evaluations, training seconds); the numerics live in sparseae.sweep.
"""

import logging

from sparseae.rulelog import log_to_rule_log
from sparseae.sweep import sweep_table, write_sweep_summary

smk = snakemake  # noqa: F821
log_to_rule_log(smk.log[0])  # errors too: Snakemake points the user at this log
sweep = smk.wildcards.sweep
members = {name: f"results/{name}" for name in smk.params.members}
table = sweep_table(members, smk.params.parameters)
write_sweep_summary(
    table,
    tsv=smk.output.tsv,
    html_path=smk.output.html,
    png=smk.output.png,
    title=f"sweep {sweep}: {len(table)} members",
)
logging.info("sweep %s: %d members -> %s", sweep, len(table), smk.output.tsv)
