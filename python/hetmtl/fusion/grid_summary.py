"""Grid summaries: what a site sends for nuisance fusion, beside its SiteSummary.

For each nuisance function (e.g. ``"ml_l"`` = E[Y|X], ``"ml_m"`` = E[D|X]) and each candidate
bandwidth, the site sends per cross-fitting fold and grid point the kernel moments of its rows
(local constant: S0 and S1; local linear: the moment matrix and vector). Disclosure control: a
grid point is released only when, in every fold, both its kernel sum S0 and its count of rows with
non-negligible weight reach ``threshold``; unreleased points are sent as zeros and flagged, and
the center treats them as missing. The site's
:class:`~hetmtl.fusion.disclosure.DisclosurePolicy` refuses requests below its floors (threshold,
rows per fold, number of bandwidths and grid points) and, when it carries a privacy budget, adds
the Gaussian mechanism's noise (:mod:`hetmtl.fusion.privacy`). Summaries are versioned JSON
(``schema = "hetmtl.grid_summary"``) validated against the published schema
``schemas/grid_summary.schema.json`` and checked for consistency on load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .._util.display import ReportDisplay
from .._util.io import atomic_write_json, read_json
from .._util.validation import as_float_array, check_array
from ..persist.mixin import SchemaPersistable
from .crossfit import single_split_labels
from .display import grid_summary_report
from .disclosure import DisclosurePolicy, as_policy, check_metadata, validate_document
from .kernel_grid import KernelGrid
from .privacy import privatize_grid

SCHEMA_NAME = "hetmtl.grid_summary"
SCHEMA_VERSION = 1
_SCHEMA_FILE = "grid_summary"


@dataclass(frozen=True)
class NuisanceSums:
    """Kernel moments of one nuisance function at one site.

    Attributes
    ----------
    binary : bool
        Whether the target is coded 0/1 (a probability: predictions are kept in [0, 1]).
    n_rows : ndarray of shape (F,)
        Rows per fold that enter this nuisance (e.g. the treated only for ``"ml_g1"``).
    M : ndarray of shape (B, F, G, P, P)
        Moment matrices per bandwidth, fold and grid point (zero where not released).
    V : ndarray of shape (B, F, G, P)
        Moment vectors (zero where not released).
    released : ndarray of bool of shape (B, G)
        Grid points released under the disclosure threshold.
    """

    binary: bool
    n_rows: np.ndarray
    M: np.ndarray
    V: np.ndarray
    released: np.ndarray


def nuisance_targets(model: str, y, d) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """The nuisance functions of a SiteDML model as ``role -> (target, row subset)``.

    ``"plr"`` and ``"cate_linear"``: ``ml_l`` (outcome on X) and ``ml_m`` (treatment on X; a single
    treatment column). ``"irm"``: ``ml_g0``/``ml_g1`` (outcome among controls / treated) and
    ``ml_m`` (propensity).

    Parameters
    ----------
    model : {"plr", "irm", "cate_linear"}
        The SiteDML model.
    y : array_like of shape (n,)
        Outcome.
    d : array_like of shape (n,) or (n, 1)
        Treatment (a single column).

    Returns
    -------
    dict
        Nuisance role -> (target values, boolean row subset or None for all rows).
    """
    ya = as_float_array(y, "y", ndim=1)
    da = as_float_array(d, "d")
    if da.ndim == 2 and da.shape[1] == 1:
        da = da[:, 0]
    if da.ndim != 1:
        raise ValueError("d: nuisance fusion supports a single treatment column")
    if model in ("plr", "cate_linear"):
        return {"ml_l": (ya, None), "ml_m": (da, None)}
    if model == "irm":
        return {"ml_g0": (ya, da == 0), "ml_g1": (ya, da == 1), "ml_m": (da, None)}
    raise ValueError(f"model: must be one of ('plr', 'irm', 'cate_linear'), got {model!r}")


@dataclass(frozen=True, repr=False)
class GridSummary(ReportDisplay, SchemaPersistable):
    """A site's kernel grid moments for nuisance fusion.

    Build it with :meth:`compute` at the site; send it as JSON (:meth:`to_json`).

    Attributes
    ----------
    site : str
    grid : KernelGrid
    bandwidths : ndarray of shape (B, d)
        Candidate bandwidths (the center picks one by cross-validation).
    threshold : float
        Disclosure threshold used for ``released``.
    n_folds : int
    nuisances : dict of str to NuisanceSums
    metadata : dict
        Restricted to the fields the published schema declares (model, hetmtl_version, source).
    privacy : dict or None
        The differential-privacy guarantee of the sums (mechanism, epsilon, delta, sigma, bounds)
        when the site's policy carries a privacy budget.
    """

    site: str
    grid: KernelGrid
    bandwidths: np.ndarray
    threshold: float
    n_folds: int
    nuisances: dict[str, NuisanceSums]
    metadata: dict[str, Any] = field(default_factory=dict)
    privacy: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", check_metadata(self.metadata, _SCHEMA_FILE, "grid summary"))
        for role, s in self.nuisances.items():
            _check_consistent(role, s, self.threshold, self.grid.fit)

    @classmethod
    def compute(cls, grid: KernelGrid, X, targets: dict[str, tuple[Any, Any]], folds: Any,
                bandwidths, *, threshold: float = 5.0, site: str = "site", n_threads: int = 1,
                metadata: dict[str, Any] | None = None,
                policy: "DisclosurePolicy | dict | str | None" = None) -> "GridSummary":
        """Compute the grid moments of every nuisance on a site's rows.

        Parameters
        ----------
        grid : KernelGrid
            The grid all sites agreed on.
        X : array_like of shape (n, d)
            The site's covariates of the nuisance functions.
        targets : dict
            ``role -> (target (n,), subset (n,) bool or None)``, e.g. from :func:`nuisance_targets`.
        folds : list or ndarray of int
            The site's sample split: a list of test-index arrays (as ``SiteDML.fit(folds=...)``
            takes it) or a fold label per row. The same split must be used for the site's DML fit.
        bandwidths : array_like of shape (d,) or (B, d), or float
            One or several candidate bandwidths.
        threshold : float
            Disclosure threshold on the per-fold kernel sum S0 and count of each grid point, as
            requested by the center; refused when below the site policy's ``min_count``.
        site : str
        n_threads : int
        metadata : dict, optional
            Declared fields only (model, hetmtl_version, source).
        policy : DisclosurePolicy, dict or str, optional
            The site's disclosure settings (a policy, its settings, or its JSON file); default:
            :data:`~hetmtl.fusion.disclosure.DEFAULT_POLICY`.

        Returns
        -------
        GridSummary
        """
        pol = as_policy(policy)
        x = grid.prepare_points(X)
        n = x.shape[0]
        labels, F = single_split_labels(folds, n)
        H = _check_bandwidths(bandwidths, grid.dim)
        thr = pol.check_grid_request(threshold, H, grid)
        if not isinstance(targets, dict) or not targets:
            raise ValueError("targets: expected a non-empty dict role -> (target, subset)")
        budget = pol.privacy
        pol.check_release(None if budget is None else budget.epsilon)
        if budget is not None and grid.fit != "constant":
            raise ValueError("policy: differential privacy covers the local-constant fit only "
                             "(grid fit='constant')")
        raw = {role: _role_sums(grid, x, labels, F, H, role, spec, pol, n_threads)
               for role, spec in targets.items()}
        privacy = None
        if budget is not None:
            sigma = privatize_grid(budget, grid.axes, H, grid.kernel, raw)
            privacy = {"mechanism": "gaussian", "epsilon": budget.epsilon, "delta": budget.delta,
                       "sigma": sigma, "bounds": {k: list(v) for k, v in budget.bounds.items()}}
        out = {role: _release(r, thr, budget is None) for role, r in raw.items()}
        summary = cls(site=str(site), grid=grid, bandwidths=H, threshold=thr, n_folds=F, nuisances=out,
                      metadata=dict(metadata or {}), privacy=privacy)
        pol.record_release("grid_summary", None if budget is None else budget.epsilon)
        return summary

    # ------------------------------------------------------------ JSON
    def _display_report(self):
        return grid_summary_report(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict following the versioned schema (``privacy`` only when set)."""
        out = {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "site": self.site,
            "grid": self.grid.to_dict(),
            "bandwidths": self.bandwidths.tolist(),
            "threshold": self.threshold,
            "n_folds": self.n_folds,
            "nuisances": {role: {"binary": s.binary, "n_rows": s.n_rows.tolist(), "M": s.M.tolist(),
                                 "V": s.V.tolist(), "released": s.released.tolist()}
                          for role, s in self.nuisances.items()},
            "metadata": self.metadata,
        }
        if self.privacy is not None:
            out["privacy"] = self.privacy
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GridSummary":
        """Validate a schema dict and build the summary (inverse of :meth:`to_dict`)."""
        if not isinstance(d, dict) or d.get("schema") != SCHEMA_NAME:
            raise ValueError("grid summary: not a hetmtl grid summary "
                             f"(schema={d.get('schema') if isinstance(d, dict) else None!r})")
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"grid summary: unsupported schema_version {d.get('schema_version')!r} "
                             f"(this version of hetmtl reads {SCHEMA_VERSION})")
        validate_document(d, _SCHEMA_FILE, "grid summary")
        grid = KernelGrid.from_dict(d["grid"])
        H = _check_bandwidths(d["bandwidths"], grid.dim)
        F = int(d["n_folds"])
        G = grid.n_points
        P = 1 if grid.fit == "constant" else grid.dim + 1
        nuis = {}
        for role, s in d["nuisances"].items():
            M = as_float_array(s["M"], f"nuisances[{role!r}].M")
            V = as_float_array(s["V"], f"nuisances[{role!r}].V")
            rel = np.asarray(s["released"], bool)
            n_rows = as_float_array(s["n_rows"], f"nuisances[{role!r}].n_rows", ndim=1)
            B = H.shape[0]
            if M.shape != (B, F, G, P, P) or V.shape != (B, F, G, P) or rel.shape != (B, G) \
                    or n_rows.shape != (F,):
                raise ValueError(f"grid summary: nuisances[{role!r}] arrays do not match the grid "
                                 f"({B} bandwidths, {F} folds, {G} points, P={P})")
            nuis[role] = NuisanceSums(bool(s["binary"]), n_rows, M, V, rel)
        return cls(site=str(d["site"]), grid=grid, bandwidths=H, threshold=float(d["threshold"]),
                   n_folds=F, nuisances=nuis, metadata=dict(d.get("metadata", {})),
                   privacy=d.get("privacy"))

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the summary as versioned JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "GridSummary":
        """Load and validate a summary written by :meth:`to_json`."""
        return cls.from_dict(read_json(path))


def _role_sums(grid: KernelGrid, x: np.ndarray, labels: np.ndarray, F: int, H: np.ndarray, role: str,
               spec: tuple[Any, Any], policy: DisclosurePolicy, n_threads: int) -> dict[str, Any]:
    """Exact kernel moments of one nuisance (targets clipped first when privacy is on)."""
    target, subset = spec
    n = x.shape[0]
    t = as_float_array(target, f"targets[{role!r}]", ndim=1)
    if t.shape != (n,):
        raise ValueError(f"targets[{role!r}]: expected {n} values, got {t.shape}")
    rows = np.arange(n) if subset is None else np.flatnonzero(np.asarray(subset, bool))
    f_rows = labels[rows]
    n_rows = np.bincount(f_rows, minlength=F)
    if np.any(n_rows == 0):
        raise ValueError(f"targets[{role!r}]: fold {int(np.argmin(n_rows))} has no rows in this "
                         "nuisance's subset; use fewer folds")
    policy.check_grid_rows(role, n_rows)
    binary = bool(np.all((t[rows] == 0) | (t[rows] == 1)))
    scale = None
    if policy.privacy is not None:
        lo, hi = policy.privacy.target_bounds(role, binary)
        t = np.clip(t, lo, hi)
        scale = max(abs(lo), abs(hi))
    sums = [grid.sums(x[rows], t[rows], h, folds=f_rows, n_folds=F, n_threads=n_threads) for h in H]
    return {"binary": binary, "n_rows": n_rows.astype(float), "M": np.stack([r.M for r in sums]),
            "V": np.stack([r.V[..., 0] for r in sums]), "count": np.stack([r.count for r in sums]),
            "scale": scale}


def _release(sums: dict[str, Any], threshold: float, use_count: bool) -> NuisanceSums:
    """Zero and flag the grid points below the threshold in some fold.

    With privacy on, the decision uses the noisy kernel sums only (the exact counts stay home).
    """
    ok = np.all(sums["M"][..., 0, 0] >= threshold, axis=1)                 # (B, G)
    if use_count:
        ok &= np.all(sums["count"] >= threshold, axis=1)
    M = np.where(ok[:, None, :, None, None], sums["M"], 0.0)
    V = np.where(ok[:, None, :, None], sums["V"], 0.0)
    return NuisanceSums(sums["binary"], sums["n_rows"], M, V, ok)


def _check_consistent(role: str, s: NuisanceSums, threshold: float, fit: str) -> None:
    """Withheld points are all zeros, released kernel sums reach the threshold, sizes are positive."""
    where = f"grid summary: nuisances[{role!r}]"
    S0 = s.M[..., 0, 0]
    hidden = ~s.released[:, None, :]
    if np.any(np.where(hidden[..., None, None], s.M, 0.0) != 0) or \
            np.any(np.where(hidden[..., None], s.V, 0.0) != 0):
        raise ValueError(f"{where}: a grid point flagged as withheld carries non-zero sums")
    if np.any(np.where(~hidden, S0, threshold) < threshold):
        raise ValueError(f"{where}: a released grid point has a kernel sum below the threshold "
                         f"{threshold:g} (kernel sums are non-negative row weights)")
    if fit == "linear" and np.any(np.diagonal(s.M, axis1=-2, axis2=-1) < 0):
        raise ValueError(f"{where}: negative diagonal moments (kernel-weighted squares)")
    if np.any(s.n_rows <= 0):
        raise ValueError(f"{where}: n_rows must be positive")


def _check_bandwidths(bandwidths, d: int) -> np.ndarray:
    H = check_array(bandwidths, "bandwidths")
    if H.ndim == 0:
        H = np.full((1, d), float(H))
    elif H.ndim == 1:
        # One bandwidth vector (d,), or several scalar bandwidths of a one-dimensional grid.
        H = H.reshape(1, d) if H.size == d else (H[:, None] if d == 1 else H)
    if H.ndim != 2 or H.shape[1] != d or H.shape[0] == 0:
        raise ValueError(f"bandwidths: expected shape (d,) or (B, {d}), got {np.shape(bandwidths)}")
    if np.any(H <= 0):
        raise ValueError("bandwidths: all values must be positive")
    return H


def common_bandwidths(summaries_or_sizes: Sequence, factors: Sequence[float] = (0.5, 0.75, 1.0, 1.5, 2.0)):
    """Candidate bandwidths around a common rule of thumb.

    Parameters
    ----------
    summaries_or_sizes : sequence of array_like of shape (d,)
        Each site's :func:`~hetmtl.fusion.kernel_grid.silverman_bandwidth` (a summary-level
        number the site can share).
    factors : sequence of float
        Multiples of the median rule-of-thumb bandwidth to try.

    Returns
    -------
    ndarray of shape (len(factors), d)
    """
    h = np.stack([as_float_array(x, "bandwidth", ndim=1) for x in summaries_or_sizes])
    base = np.median(h, axis=0)
    f = as_float_array(factors, "factors", ndim=1)
    if np.any(f <= 0):
        raise ValueError("factors: all values must be positive")
    return f[:, None] * base[None, :]


def site_grid_summary(data, *, y: str, d: str, x: Sequence[str], grid: KernelGrid, bandwidths,
                      threshold: float = 5.0, model: str = "plr", n_folds: int = 5,
                      random_state: Any = None, site: str = "site", cluster: str | None = None,
                      n_threads: int = 1, policy: Any = None) -> tuple[GridSummary, list[np.ndarray]]:
    """A site's grid summary on the very sample split its ``SiteDML`` fit will use.

    The folds are those ``SiteDML(model, n_folds=n_folds, random_state=random_state)`` draws for
    these columns (:meth:`~hetmtl.fusion.site_dml.SiteDML.split`), so a later
    ``SiteDML(...).fit(..., folds=[folds], predictions=fused.predictions(X, folds))`` keeps
    cross-fitting intact.

    Parameters
    ----------
    data : pandas.DataFrame
        The site's rows.
    y, d : str
        Outcome and (single) treatment columns.
    x : sequence of str
        Covariate columns, in the grid's dimension order.
    grid, bandwidths, threshold, site, n_threads, policy
        As in :meth:`GridSummary.compute`.
    model, n_folds, random_state, cluster
        As in :class:`~hetmtl.fusion.site_dml.SiteDML` (one repetition).

    Returns
    -------
    summary : GridSummary
    folds : list of ndarray
        The sample split (test rows per fold).
    """
    from .site_dml import SiteDML

    cols = [x] if isinstance(x, str) else list(x)
    folds = SiteDML(model=model, n_folds=n_folds, random_state=random_state).split(
        data, y=y, d=d, x=cols, cluster=cluster)[0]
    X = as_float_array(data[cols].to_numpy(), "x")
    targets = nuisance_targets(model, data[y].to_numpy(), data[d].to_numpy())
    summary = GridSummary.compute(grid, X, targets, folds, bandwidths, threshold=threshold, site=site,
                                  n_threads=n_threads, policy=policy)
    return summary, folds
