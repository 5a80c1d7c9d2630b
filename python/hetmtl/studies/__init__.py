"""Simulation studies: run many configurations and replications in parallel, reproducibly and
resumably, and summarize them with Monte-Carlo standard errors."""

from .runner import config_grid, load_checkpoint, run_study, task_seed
from .tables import summarize_study

__all__ = ["config_grid", "load_checkpoint", "run_study", "summarize_study", "task_seed"]
