"""Is a task worse off in the multi-task fit than on its own? A paired test on validation rows.

For every task the multi-task model and a single-task reference MLP predict the same validation
rows. The reference never sees those rows: it early-stops on an inner split of the task's
training rows and is then refitted on all of them for the chosen number of epochs. Per task the
one-sided hypothesis

    H0: E[e_mtl^2] <= (1 + tol) E[e_single^2]    against    H1: E[e_mtl^2] > (1 + tol) E[e_single^2]

is tested with a paired t-test on the per-row differences ``e_mtl^2 - (1 + tol) e_single^2``,
and Holm's step-down procedure controls the chance of flagging any task wrongly (family-wise
error rate) at ``level`` across the tasks.

The multi-task model's own choices (early stopping, ``lam_beta``, the specific encoders) did use
the validation rows; that favours the multi-task side, so the test errs toward not flagging.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .._util.tasks import random_first_per_task
from ._data import Prepared, Split
from .baselines import SingleTaskMLP

__all__ = ["TransferTest", "fit_reference", "holm_adjust", "paired_transfer_test"]


@dataclass(frozen=True)
class TransferTest:
    """Per-task outcome of the negative-transfer test.

    Attributes
    ----------
    difference : ndarray of shape (R,)
        Mean over the task's validation rows of ``e_mtl^2 - (1 + tol) e_single^2`` (> 0: the
        multi-task fit is worse by more than the margin).
    p_value, p_adjusted : ndarray of shape (R,)
        One-sided p-value of the paired t-test and its Holm adjustment (NaN for a task with fewer
        than two validation rows: no decision).
    flagged : ndarray of bool, shape (R,)
        Tasks with ``p_adjusted <= level``.
    """

    difference: np.ndarray
    p_value: np.ndarray
    p_adjusted: np.ndarray
    flagged: np.ndarray


def holm_adjust(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and do not count as tests).

    Parameters
    ----------
    p : ndarray of shape (m,)

    Returns
    -------
    ndarray of shape (m,)
        Rejecting where the adjusted p-value is at most ``level`` controls the family-wise error
        rate at ``level``.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    m = tested.size
    if m == 0:
        return out
    order = tested[np.argsort(p[tested], kind="stable")]
    steps = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(steps)
    return out


def paired_transfer_test(sq_multi: np.ndarray, sq_single: np.ndarray, codes: np.ndarray, n_tasks: int,
                         tol: float = 0.0, level: float = 0.05) -> TransferTest:
    """One-sided paired t-tests of every task's squared validation errors, Holm across tasks.

    Parameters
    ----------
    sq_multi, sq_single : ndarray of shape (n,)
        Squared errors of the multi-task and the single-task model on the same validation rows.
    codes : ndarray of int, shape (n,)
        Task of each row.
    n_tasks : int
    tol : float
        Relative margin: a task counts as worse off only when its multi-task MSE exceeds
        ``(1 + tol)`` times its single-task MSE.
    level : float
        Family-wise error rate across tasks.

    Returns
    -------
    TransferTest
    """
    diff = sq_multi - (1.0 + tol) * sq_single
    n = np.bincount(codes, minlength=n_tasks).astype(float)
    mean = np.bincount(codes, diff, minlength=n_tasks) / np.maximum(n, 1)
    ss = np.bincount(codes, (diff - mean[codes]) ** 2, minlength=n_tasks)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(ss / (n - 1) / n)
        t = mean / se
    # identical differences on every row: the sign of the mean decides
    t = np.where(se > 0, t, np.where(mean > 0, np.inf, -np.inf))
    p = np.where(n >= 2, stats.t.sf(t, np.maximum(n - 1, 1)), np.nan)
    adjusted = holm_adjust(p)
    flagged = np.isfinite(adjusted) & (adjusted <= level)
    return TransferTest(difference=mean, p_value=p, p_adjusted=adjusted, flagged=flagged)


def _inner_split(train: Split, fraction: float, seed: np.random.SeedSequence, n_tasks: int) -> tuple[Split, Split]:
    """A per-task random split of the training rows (at least one row on each side)."""
    n = train.sizes
    n_inner = np.clip(np.rint(fraction * n).astype(int), 1, np.maximum(n - 1, 1))
    order, first = random_first_per_task(train.codes, n_inner, seed)

    def part(idx: np.ndarray) -> Split:
        c = train.codes[idx]
        return Split(X=train.X[idx], y=train.y[idx], codes=c, sizes=np.bincount(c, minlength=n_tasks))

    return part(order[~first]), part(order[first])


def fit_reference(single: SingleTaskMLP, prep: Prepared, seed: np.random.SeedSequence) -> SingleTaskMLP:
    """The single-task reference, chosen without the validation rows of ``prep``.

    Each task's MLP early-stops on an inner split of its training rows (``single.validation_fraction``);
    then ``single`` is refitted on all training rows, each task for the number of epochs its inner
    fit chose, from the same initial weights. ``validation_loss_`` of the result is measured on
    ``prep.val``, which neither fit used.

    Parameters
    ----------
    single : SingleTaskMLP
        Not fitted; its options are used for both fits.
    prep : Prepared
    seed : SeedSequence

    Returns
    -------
    SingleTaskMLP
        ``single``, fitted.
    """
    R = prep.n_tasks
    fit_rows, stop_rows = _inner_split(prep.train, float(single.validation_fraction), seed.spawn(1)[0], R)
    inner = Prepared(train=fit_rows, val=stop_rows, scaler=prep.scaler, classes=prep.classes,
                     n_features=prep.n_features)
    single.fit_prepared(inner, seed)
    epochs = single.best_epoch_.copy()
    return single.fit_epochs(prep, seed, epochs)
