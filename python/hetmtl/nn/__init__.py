"""Torch building blocks shared by the neural multi-task methods (dual encoder, block-wise missing).

* :class:`MultiTaskRegressor` -- the estimator base of every neural multi-task regressor: task
  labels, parameter checks, seeding, device and threads, ``predict``/``score``, feature names;
* :func:`train_epochs` with an :class:`EpochStep` (:class:`FullBatchStep`, :class:`MinibatchStep`
  or a method's own) and :class:`EarlyStopping` -- the one training loop, with early stopping per
  model for stacks of models trained together;
* :class:`TaskLayout` -- rows grouped by task into a padded (tasks x rows) index, so that one
  batched matrix product evaluates every task's own network at once;
* :class:`StackedMLP` -- R independent MLPs with stacked weights (``R = 1`` is a plain MLP);
* :func:`orthogonality_penalty`, :func:`task_mse` -- penalties and losses over padded task blocks;
* :func:`heads_objective`, :class:`TaskRows` -- the encoder-step objective of linear heads on a
  shared and a task-specific encoding (loss and orthogonality penalty) with a hand-written gradient;
* :func:`adam`, :func:`torch_threads`, :func:`torch_generator`, :func:`progress`,
  :class:`TorchDevice` -- the optimizer, threads, seeding and devices.

Importing this subpackage needs torch (``pip install hetmtl[torch]``); :data:`MISSING_TORCH` is the
message every torch-based part of the package raises without it.
"""

#: The ImportError message of every torch-based part of hetmtl when torch is not installed.
MISSING_TORCH = ("hetmtl's neural estimators (hetmtl.nn, hetmtl.dual and the networks of hetmtl.blockwise) "
                 "need torch; install the CPU build with `pip install hetmtl[torch]`")

try:
    import torch  # noqa: F401
except ImportError as exc:  # depends on the environment; tested with torch hidden in a subprocess
    raise ImportError(MISSING_TORCH) from exc

from .deprecation import DEPRECATED, RenamedParameters
from .._util.validation import check_fraction
from .estimator import MultiTaskRegressor
from .layout import TaskLayout
from .loop import Batching, EpochStep, FullBatchStep, MinibatchStep, TrainingRecord, epoch_batches, train_epochs
from .mlp import ACTIVATIONS, StackedMLP, hidden_widths
from .objective import TaskRows, heads_objective
from .penalties import ORTHOGONALITY_MODES, orthogonality_penalty, orthogonality_per_task, task_mse
from .runtime import TorchDevice, adam, progress, torch_generator, torch_threads
from .stopping import STOP_RULES, EarlyStopping, snapshot

__all__ = [
    "ACTIVATIONS",
    "Batching",
    "DEPRECATED",
    "EarlyStopping",
    "EpochStep",
    "FullBatchStep",
    "check_fraction",
    "MISSING_TORCH",
    "MinibatchStep",
    "MultiTaskRegressor",
    "ORTHOGONALITY_MODES",
    "RenamedParameters",
    "STOP_RULES",
    "StackedMLP",
    "TaskLayout",
    "TaskRows",
    "TorchDevice",
    "TrainingRecord",
    "adam",
    "epoch_batches",
    "heads_objective",
    "hidden_widths",
    "orthogonality_penalty",
    "orthogonality_per_task",
    "progress",
    "snapshot",
    "task_mse",
    "torch_generator",
    "torch_threads",
    "train_epochs",
]
