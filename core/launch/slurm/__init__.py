"""Runs beyond one server: a recipe with `[cluster] scheduler = "slurm"` is submitted to Slurm.

The pieces, each a small module: `render` turns the backend's single-node launch into an sbatch
script plus a per-node script (kept in the run directory); `client` runs Slurm's commands (argv
lists, time-outs) and `queue` shares one batched `squeue` per poll among every followed job;
`states` maps Slurm's job states onto zerodeck's outcomes; `follow` is the local process the
supervisor starts in place of the job (submit, follow, stream the node logs, scancel on stop);
`sampler` is the telemetry sampler every node runs into the run directory; `nodes` reads those
samples back. See ARCHITECTURE.md, "Slurm".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zerodeck.core.recipe.model import Recipe


def uses_slurm(recipe: Recipe) -> bool:
    return recipe.cluster.scheduler == "slurm"
