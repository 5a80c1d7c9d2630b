"""Sample splitting and cross-fitted nuisance predictions for site DML.

Folds are stored as a list over repetitions of lists of test-index arrays (sorted, forming a
partition of ``0..n-1``); the training rows of a fold are all other rows. Folds are drawn from a
:class:`numpy.random.SeedSequence`, one child stream per repetition, so a seed reproduces them bit
for bit and the first repetition does not change when ``n_rep`` grows.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import sklearn
from sklearn.base import clone

from .._util.seeds import child_rng
from .._util.validation import ArgumentError

Folds = list[list[np.ndarray]]


def make_folds(n_obs: int, n_folds: int, n_rep: int, seed: np.random.SeedSequence, *,
               groups: np.ndarray | None = None, strata: np.ndarray | None = None) -> Folds:
    """Draw ``n_rep`` random K-fold partitions of ``n_obs`` rows.

    Parameters
    ----------
    n_obs : int
        Number of rows.
    n_folds : int
        Number of folds K.
    n_rep : int
        Number of repetitions.
    seed : numpy.random.SeedSequence
        Root of the randomness; repetition r uses its r-th child stream.
    groups : ndarray of int of shape (n_obs,), optional
        Cluster codes ``0..G-1``. All rows of a cluster fall into one fold; clusters are shuffled
        and cut into K runs of about ``n_obs / K`` rows each.
    strata : ndarray of shape (n_obs,), optional
        Labels to balance across folds (used for a binary treatment when there are no clusters):
        every fold receives about the same share of each label.

    Returns
    -------
    list of list of ndarray
        ``folds[r][k]`` holds the sorted test rows of fold k in repetition r.
    """
    out: Folds = []
    for r in range(n_rep):
        rng = child_rng(seed, r)
        if groups is not None:
            labels = _group_fold_labels(groups, n_folds, rng)
        else:
            perm = rng.permutation(n_obs)
            if strata is not None:
                # Stable sort by stratum keeps the random order within each stratum; dealing the
                # rows out cyclically then balances every stratum across folds.
                perm = perm[np.argsort(strata[perm], kind="stable")]
            labels = np.empty(n_obs, dtype=np.intp)
            labels[perm] = np.arange(n_obs) % n_folds
        out.append(tests_from_labels(labels, n_folds))
    return out


def _group_fold_labels(groups: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    counts = np.bincount(groups)
    n_groups = counts.size
    n_obs = groups.size
    order = rng.permutation(n_groups)
    start = np.cumsum(counts[order]) - counts[order]
    group_label = np.empty(n_groups, dtype=np.intp)
    # Cut the shuffled clusters where the running row count crosses multiples of n / K.
    group_label[order] = np.minimum(start * n_folds // n_obs, n_folds - 1)
    if np.bincount(group_label, minlength=n_folds).min() == 0:
        # A cluster larger than a fold's share skipped a fold: fall back to equal cluster counts.
        group_label[order] = np.arange(n_groups) % n_folds
    return group_label[groups]


def tests_from_labels(labels: np.ndarray, n_folds: int) -> list[np.ndarray]:
    """Sorted test-index arrays from a fold label per row."""
    order = np.argsort(labels, kind="stable")
    bounds = np.cumsum(np.bincount(labels, minlength=n_folds))[:-1]
    return [np.sort(t) for t in np.split(order, bounds)]


def labels_from_tests(tests: Sequence[np.ndarray], n_obs: int) -> np.ndarray:
    """Fold label per row from a partition into test-index arrays."""
    labels = np.empty(n_obs, dtype=np.intp)
    for k, t in enumerate(tests):
        labels[t] = k
    return labels


def single_split_labels(folds: Any, n_obs: int) -> tuple[np.ndarray, int]:
    """Fold label per row and the number of folds of one sample split.

    ``folds`` is a fold label per row (an int array of length ``n_obs``) or the splits
    :func:`check_folds` accepts, with a single repetition.
    """
    if isinstance(folds, np.ndarray) and folds.ndim == 1 and folds.dtype.kind in "iu" \
            and folds.size == n_obs:
        labels = folds.astype(np.intp)
        return labels, int(labels.max()) + 1
    tests = check_folds(folds, n_obs)
    if len(tests) != 1:
        raise ArgumentError("folds", "nuisance fusion uses one sample split (n_rep = 1)")
    return labels_from_tests(tests[0], n_obs), len(tests[0])


def _is_index_vector(obj: Any) -> bool:
    if isinstance(obj, np.ndarray):
        return obj.ndim == 1 and (obj.dtype.kind in "iu" or (obj.size == 0))
    if isinstance(obj, (list, range)):
        return all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in obj)
    return False


def _parse_fold(entry: Any, where: str) -> tuple[np.ndarray | None, np.ndarray]:
    """One fold: a test-index vector, or a tuple ``(train, test)`` in DoubleML's format."""
    if isinstance(entry, tuple) and len(entry) == 2 and all(_is_index_vector(e) for e in entry):
        return np.asarray(entry[0], dtype=np.intp), np.asarray(entry[1], dtype=np.intp)
    if _is_index_vector(entry):
        return None, np.asarray(entry, dtype=np.intp)
    raise ArgumentError("folds", f"{where} is neither an array of test indices nor a (train, test) tuple")


def check_folds(folds: Any, n_obs: int, groups: np.ndarray | None = None) -> Folds:
    """Validate user-given sample splits and bring them to the list-of-test-arrays form.

    Parameters
    ----------
    folds : list
        Either a list over repetitions of lists of folds, or one repetition's list of folds. A
        fold is an array of test indices, or a tuple ``(train, test)`` as in DoubleML's
        ``set_sample_splitting`` (``train`` must then be the complement of ``test``).
    n_obs : int
        Number of rows.
    groups : ndarray of int, optional
        Cluster codes; when given, every cluster must lie in a single fold.

    Returns
    -------
    list of list of ndarray
    """
    if not isinstance(folds, (list, tuple)) or len(folds) == 0:
        raise ArgumentError("folds", "expected a non-empty list (over repetitions) of lists of folds")
    first = folds[0]
    single_rep = _is_index_vector(first) or (
        isinstance(first, tuple) and len(first) == 2 and all(_is_index_vector(e) for e in first))
    reps = [folds] if single_rep else list(folds)
    out: Folds = []
    n_folds = None
    for r, rep in enumerate(reps):
        if not isinstance(rep, (list, tuple)) or len(rep) < 2:
            raise ArgumentError("folds", f"repetition {r} must be a list of at least 2 folds")
        parsed = [_parse_fold(e, f"repetition {r}, fold {k}") for k, e in enumerate(rep)]
        if n_folds is None:
            n_folds = len(parsed)
        elif len(parsed) != n_folds:
            raise ArgumentError("folds", f"repetition {r} has {len(parsed)} folds, repetition 0 has {n_folds}")
        counts = np.zeros(n_obs, dtype=np.intp)
        tests = []
        for k, (train, test) in enumerate(parsed):
            if test.size == 0:
                raise ArgumentError("folds", f"repetition {r}, fold {k} has no test rows")
            if test.min() < 0 or test.max() >= n_obs:
                raise ArgumentError("folds", f"repetition {r}, fold {k} has indices outside 0..{n_obs - 1}")
            np.add.at(counts, test, 1)
            test = np.sort(test)
            if train is not None:
                expected = np.setdiff1d(np.arange(n_obs), test)
                if not np.array_equal(np.sort(train), expected):
                    raise ArgumentError("folds", f"repetition {r}, fold {k}: the training rows must be "
                                                 "exactly the rows outside the test fold")
            tests.append(test)
        if np.any(counts != 1):
            raise ArgumentError("folds", f"the test folds of repetition {r} must partition the "
                                         f"{n_obs} rows (each row in exactly one test fold)")
        if groups is not None:
            labels = labels_from_tests(tests, n_obs)
            per_group = np.zeros(int(groups.max()) + 1, dtype=np.intp) - 1
            per_group[groups] = labels
            if np.any(per_group[groups] != labels):
                raise ArgumentError("folds", f"repetition {r} splits a cluster across folds; all rows "
                                             "of a cluster must share a fold")
        out.append(tests)
    return out


@dataclass
class NuisanceSpec:
    """One nuisance function to cross-fit.

    Attributes
    ----------
    name : str
        Label used in messages and in the predictions dict (``"ml_l"``, ``"ml_g0"``, ...).
    learner : estimator
        Unfitted scikit-learn estimator, cloned per fold.
    target : ndarray of shape (n,) or (n, k)
        Regression or classification target; k columns are k nuisances fitted by clones of
        one learner (the predictions then have shape (n, k)).
    proba : bool
        Predict ``predict_proba(...)[:, 1]`` (classifier of a 0/1 target) instead of ``predict``.
    subset : ndarray of bool of shape (n,), optional
        Fit only on training rows where this is True (e.g. the treated); predict on all test rows.
    target_name : str
        Name of the argument the target came from, for error messages.
    subset_name : str
        What the subset is (e.g. ``"treated (d == 1)"``), for error messages.
    must_vary : bool
        Raise if the target is constant on a fold's training rows (treatments).
    label : str
        How messages name the nuisance (defaults to ``name``).
    column_labels : tuple of str
        How messages name each column of a 2-D target (defaults to ``label``).
    """

    name: str
    learner: Any
    target: np.ndarray
    proba: bool = False
    subset: np.ndarray | None = None
    target_name: str = "y"
    subset_name: str = ""
    must_vary: bool = False
    label: str = ""
    column_labels: tuple[str, ...] = ()

    def labels(self) -> list[str]:
        """Message names of the target's columns (one for a 1-D target)."""
        k = 1 if self.target.ndim == 1 else self.target.shape[1]
        return list(self.column_labels) or [self.label or self.name] * k


def crossfit_predict(specs: Sequence[NuisanceSpec], x: np.ndarray, tests: Sequence[np.ndarray],
                     rep: int = 0) -> dict[str, np.ndarray]:
    """Cross-fitted out-of-fold predictions of every nuisance in ``specs``.

    For each fold the training rows and their covariates are taken once and all nuisances are
    fitted on them (a fresh clone per fold and nuisance), then predicted on the fold's test rows.

    Parameters
    ----------
    specs : sequence of NuisanceSpec
    x : ndarray of shape (n, q)
        Covariates.
    tests : sequence of ndarray
        Test rows of each fold (a partition).
    rep : int
        Repetition number, for error messages.

    Returns
    -------
    dict
        ``name -> ndarray of shape (n,)`` (or (n, k) for a k-column target) of out-of-fold
        predictions.
    """
    n = x.shape[0]
    preds = {s.name: np.empty((n, *s.target.shape[1:])) for s in specs}
    labels = labels_from_tests(tests, n)
    # One clone per nuisance; each fold gets a deep copy of that unfitted clone, which is the same
    # as cloning again but skips re-validating the parameters (it matters for fast learners).
    templates = [clone(s.learner) for s in specs]
    # The inputs were checked for NaN and infinity once, so the learners need not check every fold;
    # the learners' parameters are validated by the first fold's fits and later folds fit copies
    # with the very same parameters.
    with sklearn.config_context(assume_finite=True):
        for k, test in enumerate(tests):
            with sklearn.config_context(skip_parameter_validation=k > 0):
                _fit_fold(specs, templates, x, labels, k, test, rep, preds)
    return preds


def _fit_fold(specs: Sequence[NuisanceSpec], templates: list[Any], x: np.ndarray,
              labels: np.ndarray, k: int, test: np.ndarray, rep: int,
              preds: dict[str, np.ndarray]) -> None:
    """Fit every nuisance on fold k's training rows and write its predictions on the test rows."""
    train_mask = labels != k
    train = np.flatnonzero(train_mask)
    x_train = x[train]
    x_test = x[test]
    where = f"fold {k} (repetition {rep})"
    for s, template in zip(specs, templates):
        if s.subset is None:
            rows, xs = train, x_train
        else:
            rows = np.flatnonzero(train_mask & s.subset)
            if rows.size == 0:
                raise ArgumentError(s.target_name, f"the training rows of {where} contain no "
                                                   f"{s.subset_name}, so {s.labels()[0]} cannot be "
                                                   "fitted; use fewer folds or check the treatment")
            xs = x[rows]
        targets = s.target[rows]
        out = preds[s.name]
        for j, label in enumerate(s.labels()):
            t = targets if targets.ndim == 1 else targets[:, j]
            if s.must_vary and np.ptp(t) == 0:
                raise ArgumentError(s.target_name, f"the treatment has no variation in the "
                                                   f"training rows of {where} (all equal to "
                                                   f"{t[0]:g}), so {label} cannot be fitted; use "
                                                   "fewer folds or check the treatment")
            pred = _fit_predict(copy.deepcopy(template), xs, t, x_test, s.proba)
            if out.ndim == 1:
                out[test] = pred
            else:
                out[test, j] = pred


def _fit_predict(model: Any, x_train: np.ndarray, target: np.ndarray, x_test: np.ndarray,
                 proba: bool) -> np.ndarray | float:
    model.fit(x_train, target)
    if not proba:
        return np.ravel(model.predict(x_test))
    classes = model.classes_
    if classes.size == 2:
        # classes_ are sorted, so column 1 is the probability of the label 1.
        return model.predict_proba(x_test)[:, 1]
    # A 0/1 outcome constant on these training rows: the fit is that constant.
    return float(classes[0] == 1)
