"""Block-wise missing sources with one response mapping shared by every task.

A design where imputing a missing source can help: every task draws its response from the same
function of all sources, each source carries information about the response beyond the anchor,
and part of each source is predictable from the anchor. Task t observes the anchor and the sources
listed for it in ``observes`` (by default, with two sources: task 1 source 1, task 2 source 2,
task 3 both). For every row::

    x_0 ~ N(mu_t, I)                        (anchor, p_anchor columns; mu_t a task's mean shift)
    x_s = [x_0 A_s + sigma_p e_s,  u_s]     (source s: a predictable part of share ``predictable``
                                             of its columns, then an unpredictable part u_s ~ N(0, I))
    y = b_0' x_0 + sum_s (b_s' x_s + c_s' tanh(x_s)) + noise

with A_s scaled so that the predictable columns have unit variance and b, c drawn once per data
set (the same for every task). A task missing source s can recover its predictable part from the
anchor, but only through the link between x_s and y that the tasks observing s have learned.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._util.seeds import as_seed_sequence
from .._util.validation import check_fraction
from ..blockwise.layout import BlockLayout
from ._random import child_rng, task_sizes
from .blockwise import BlockwiseTasks, add_task_rows, stacked_rows

__all__ = ["make_shared_mapping_tasks"]

_COEF, _LINK, _TASK = 0, 1, 2
_T_SHIFT, _T_X, _T_E, _T_SPLIT = range(4)


def _default_observes(n_sources: int) -> tuple[tuple[int, ...], ...]:
    """Task s observes source s alone, and one last task observes them all."""
    return tuple((s,) for s in range(1, n_sources + 1)) + (tuple(range(1, n_sources + 1)),)


def make_shared_mapping_tasks(n_per_task: int | Sequence[int] = 200, *, p_anchor: int = 10,
                              p_source: int = 20, n_sources: int = 2, predictable: float = 0.5,
                              observes: Sequence[Sequence[int]] | None = None, link_noise: float = 0.3,
                              shift: float = 0.3, signal: float = 2.0, noise: float = 0.5,
                              test_fraction: float = 0.3, random_state: Any = None) -> BlockwiseTasks:
    """Simulate tasks that share one response mapping over block-wise missing sources.

    Parameters
    ----------
    n_per_task : int or sequence of int
        Rows per task before the test split.
    p_anchor, p_source : int
        Columns of the anchor and of each other source.
    n_sources : int
        Sources besides the anchor.
    predictable : float
        Share of each source's columns that are a noisy linear function of the anchor, in (0, 1).
    observes : sequence of sequences of int, optional
        The sources (1-based) each task observes besides the anchor; default: task s observes
        source s, and one more task observes every source (three tasks with two sources).
    link_noise : float
        Noise SD of the predictable columns given the anchor, in [0, 1) (their variance is 1).
    shift : float
        SD of each task's mean shift of the anchor (distribution heterogeneity).
    signal : float
        Scale of the response coefficients.
    noise : float
        SD of the response noise.
    test_fraction : float
        Share of each task's rows held out as test rows.
    random_state : None, int or SeedSequence

    Returns
    -------
    BlockwiseTasks
        Sources ``"x0"`` (anchor), ``"x1"``, ... by column position; ``v_shared`` holds the linear
        response coefficients, ``v_task`` the task's anchor means, ``rho`` zeros, ``alpha`` the
        predictable share.
    """
    for name, val in (("p_anchor", p_anchor), ("p_source", p_source), ("n_sources", n_sources)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < 1:
            raise ValueError(f"{name}: must be a positive int, got {val!r}")
    check_fraction(predictable, "predictable")
    check_fraction(test_fraction, "test_fraction")
    for name, val in (("shift", shift), ("signal", signal), ("noise", noise)):
        if not (np.isfinite(val) and val >= 0):
            raise ValueError(f"{name}: must be a finite non-negative number, got {val!r}")
    if not (np.isfinite(link_noise) and 0 <= link_noise < 1):
        raise ValueError(f"link_noise: must lie in [0, 1), got {link_noise!r}")
    obs = _default_observes(int(n_sources)) if observes is None else tuple(tuple(int(s) for s in o) for o in observes)
    if not obs or any(not all(1 <= s <= n_sources for s in o) for o in obs):
        raise ValueError(f"observes: each task lists sources among 1..{n_sources}, got {observes!r}")
    T, S, p0, ps = len(obs), int(n_sources), int(p_anchor), int(p_source)
    sizes = task_sizes(n_per_task, T)
    k = max(1, min(ps - 1, int(round(predictable * ps))))  # predictable columns per source
    p = p0 + S * ps
    root = as_seed_sequence(random_state)
    links = child_rng(root, _LINK).normal(size=(S, p0, k))
    links *= np.sqrt(1 - link_noise**2) / np.linalg.norm(links, axis=1, keepdims=True)  # unit variance
    coef = child_rng(root, _COEF)
    b = coef.normal(size=p) * signal / np.sqrt(p)
    c = coef.normal(size=p) * signal / np.sqrt(p)
    c[:p0] = 0.0  # the anchor enters linearly, the sources also through tanh
    sources = {"x0": list(range(p0))}
    for s in range(S):
        sources[f"x{s + 1}"] = list(range(p0 + s * ps, p0 + (s + 1) * ps))
    layout = BlockLayout(sources, "x0", {t: [f"x{s}" for s in o] for t, o in enumerate(obs)})
    observed = layout.observed_matrix()
    cols = [np.asarray(layout.columns(s)) for s in layout.sources]
    parts: dict[str, list] = {}
    means = np.empty((T, p0))
    for t in range(T):  # data generation only
        n = int(sizes[t])
        means[t] = child_rng(root, _TASK, t, _T_SHIFT).normal(scale=shift, size=p0)
        rng = child_rng(root, _TASK, t, _T_X)
        x0 = means[t] + rng.normal(size=(n, p0))
        blocks = [x0]
        for s in range(S):
            pred = x0 @ links[s] + link_noise * rng.normal(size=(n, k))
            blocks.append(np.hstack([pred, rng.normal(size=(n, ps - k))]))
        x = np.hstack(blocks)
        f = x @ b + np.tanh(x) @ c
        y = f + noise * child_rng(root, _TASK, t, _T_E).normal(size=n)
        add_task_rows(parts, t, x, f, y, observed[t], cols, child_rng(root, _TASK, t, _T_SPLIT), test_fraction)
    return BlockwiseTasks(**stacked_rows(parts), layout=layout, v_shared=b, v_task=means, rho=np.zeros(T),
                          alpha=float(predictable), noise=float(noise))
