"""Simulation studies: run many configurations and replications in parallel, reproducibly and
resumably, and summarize them with Monte-Carlo standard errors."""

from .checkpoint import CheckpointBusyError, CheckpointWarning
from .runner import config_grid, load_checkpoint, run_study, task_seed
from .tables import summarize_study

__all__ = ["CheckpointBusyError", "CheckpointWarning", "config_grid", "load_checkpoint",
           "run_study", "summarize_study", "task_seed"]
