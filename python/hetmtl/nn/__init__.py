"""Torch building blocks shared by the neural multi-task methods (dual encoder, block-wise missing).

* :class:`TaskLayout` -- rows grouped by task into a padded (tasks x rows) index, so that one
  batched matrix product evaluates every task's own network at once;
* :class:`StackedMLP` -- R independent MLPs with stacked weights (``R = 1`` is a plain MLP);
* :func:`orthogonality_penalty`, :func:`task_mse` -- penalties and losses over padded task blocks;
* :func:`heads_objective`, :class:`TaskRows` -- the encoder-step objective of linear heads on a
  shared and a task-specific encoding (loss and orthogonality penalty) with a hand-written gradient;
* :func:`adam`, :class:`EarlyStopping`, :class:`PerTaskBest`, :func:`torch_threads`,
  :func:`torch_generator`, :func:`progress` -- the pieces of a reproducible training loop;
  :class:`TorchDevice` -- the ``device`` handling shared by the torch estimators.

Importing this subpackage needs torch (``pip install hetmtl[torch]``).
"""

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "hetmtl.nn needs torch; install the CPU build with `pip install hetmtl[torch]`"
    ) from exc

from .layout import TaskLayout
from .mlp import ACTIVATIONS, StackedMLP
from .objective import TaskRows, heads_objective
from .penalties import ORTHOGONALITY_MODES, orthogonality_penalty, orthogonality_per_task, task_mse
from .training import EarlyStopping, PerTaskBest, TorchDevice, adam, progress, torch_generator, torch_threads

__all__ = [
    "ACTIVATIONS",
    "EarlyStopping",
    "ORTHOGONALITY_MODES",
    "PerTaskBest",
    "StackedMLP",
    "TaskLayout",
    "TaskRows",
    "TorchDevice",
    "adam",
    "heads_objective",
    "orthogonality_penalty",
    "orthogonality_per_task",
    "progress",
    "task_mse",
    "torch_generator",
    "torch_threads",
]
