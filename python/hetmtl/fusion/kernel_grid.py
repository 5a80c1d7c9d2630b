"""The shared grid of nuisance fusion: where the sites evaluate their kernel sums.

All sites and the center must use the same :class:`KernelGrid` (axes, kernel, local fit). The
axes come from ranges the sites agree on, for instance from site-level marginal quantiles
(:func:`site_quantiles` at each site, :meth:`KernelGrid.from_site_quantiles` at the center).
Bandwidths are not part of the grid: a rule of thumb per site (:func:`silverman_bandwidth`)
gives a starting value, and the center chooses among candidate bandwidths by summary-level
cross-validation (:class:`~hetmtl.fusion.nuisance_fusion.NuisanceFusion`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._util.io import atomic_write_json, read_json
from .._util.validation import (ArgumentError, as_float_array, check_choice, check_positive,
                                check_positive_number)
from .kernel_grid_core import FITS, KERNELS, GridSumsResult, check_axes, grid_interpolate, grid_sums

OUTSIDE = ("error", "clip")


def site_quantiles(X, probs: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Marginal quantiles of a site's covariates, to agree on the grid's range.

    Parameters
    ----------
    X : array_like of shape (n, d)
        The site's covariates used by the nuisance functions.
    probs : (float, float)
        Lower and upper probabilities; ``(0, 1)`` gives the minimum and maximum (the grid then
        covers every row; other values need ``outside="clip"`` in the grid).

    Returns
    -------
    ndarray of shape (d, 2)
    """
    x = as_float_array(X, "X")
    if x.ndim == 1:
        x = x[:, None]
    lo, hi = (float(p) for p in probs)
    if not (0.0 <= lo < hi <= 1.0):
        raise ArgumentError("probs", f"expected 0 <= lower < upper <= 1, got {probs!r}")
    return np.quantile(x, [lo, hi], axis=0).T


def silverman_bandwidth(X) -> np.ndarray:
    """Rule-of-thumb bandwidth per dimension for a product Gaussian kernel.

    ``h_j = (4 / (d + 2))^(1 / (d + 4)) n^(-1 / (d + 4)) s_j`` with ``s_j`` the smaller of the
    standard deviation and the interquartile range / 1.349 (Silverman's robust scale).

    Parameters
    ----------
    X : array_like of shape (n, d)
        A site's covariates.

    Returns
    -------
    ndarray of shape (d,)
    """
    x = as_float_array(X, "X")
    if x.ndim == 1:
        x = x[:, None]
    n, d = x.shape
    if n < 2:
        raise ArgumentError("X", f"needs at least 2 rows for a bandwidth, got {n}")
    sd = x.std(axis=0, ddof=1)
    q75, q25 = np.quantile(x, [0.75, 0.25], axis=0)
    iqr = (q75 - q25) / 1.349
    scale = np.where(iqr > 0, np.minimum(sd, iqr), sd)
    if np.any(scale <= 0):
        raise ArgumentError("X", f"column {int(np.argmin(scale))} is constant; no bandwidth can be derived")
    return (4.0 / (d + 2)) ** (1.0 / (d + 4)) * n ** (-1.0 / (d + 4)) * scale


@dataclass(frozen=True)
class KernelGrid:
    """A tensor grid with its kernel and local fit.

    Parameters
    ----------
    axes : sequence of 1 to 3 arrays
        Strictly increasing grid coordinates per dimension; the grid is their tensor product
        (G = product of the lengths), flattened in C order.
    kernel : {"gaussian", "epanechnikov"}
        Product kernel; both have ``k(0) = 1``, so the kernel sum S0 is a weighted row count.
    fit : {"constant", "linear"}
        Local-constant (Nadaraya-Watson) or local-linear regression at each grid point.
    support : float
        An observation counts toward a grid point's effective count when it lies within
        ``support`` bandwidths in every dimension (Gaussian; the Epanechnikov kernel's support is
        one bandwidth).
    outside : {"error", "clip"}
        What to do with rows outside the grid's range: raise, or clamp them to the range.
    """

    axes: tuple[np.ndarray, ...]
    kernel: str = "gaussian"
    fit: str = "constant"
    support: float = 3.0
    outside: str = "error"

    def __post_init__(self) -> None:
        axes = list(self.axes) if isinstance(self.axes, tuple) else self.axes
        object.__setattr__(self, "axes", tuple(check_axes(axes)))
        check_choice(self.kernel, "kernel", KERNELS)
        check_choice(self.fit, "fit", FITS)
        check_choice(self.outside, "outside", OUTSIDE)
        object.__setattr__(self, "support", check_positive_number(self.support, "support"))

    # ------------------------------------------------------------ construction
    @classmethod
    def from_ranges(cls, ranges, n_points: int | Sequence[int] = 20, **kwargs: Any) -> "KernelGrid":
        """Equally spaced axes over agreed ranges.

        Parameters
        ----------
        ranges : array_like of shape (d, 2)
            ``(lower, upper)`` per dimension.
        n_points : int or sequence of int
            Grid points per axis (at least 2).
        **kwargs
            Passed to :class:`KernelGrid` (kernel, fit, support, outside).
        """
        r = as_float_array(ranges, "ranges")
        if r.ndim == 1:
            r = r[None]
        if r.ndim != 2 or r.shape[1] != 2 or not 1 <= r.shape[0] <= 3:
            raise ArgumentError("ranges", f"expected shape (d, 2) with d in 1..3, got {r.shape}")
        if np.any(r[:, 1] <= r[:, 0]):
            raise ArgumentError("ranges", "every upper bound must exceed its lower bound")
        m = np.broadcast_to(np.asarray(n_points), (r.shape[0],))
        if np.any(m < 2) or not np.issubdtype(m.dtype, np.integer):
            raise ArgumentError("n_points", f"expected integers >= 2, got {n_points!r}")
        return cls(tuple(np.linspace(lo, hi, int(k)) for (lo, hi), k in zip(r, m)), **kwargs)

    @classmethod
    def from_site_quantiles(cls, quantiles: Sequence, n_points: int | Sequence[int] = 20, *,
                            cover: str = "union", **kwargs: Any) -> "KernelGrid":
        """Agree on the grid from each site's :func:`site_quantiles`.

        Parameters
        ----------
        quantiles : sequence of array_like of shape (d, 2)
            One per site.
        n_points : int or sequence of int
            Grid points per axis.
        cover : {"union", "intersection"}
            The range spanning every site's (``"union"``), or only the range common to all sites
            (``"intersection"``, the common support; rows outside are then clipped).
        **kwargs
            Passed to :class:`KernelGrid`.
        """
        check_choice(cover, "cover", ("union", "intersection"))
        if len(quantiles) == 0:
            raise ArgumentError("quantiles", "needs at least one site")
        q = np.stack([as_float_array(x, f"quantiles[{k}]").reshape(-1, 2) for k, x in enumerate(quantiles)])
        if cover == "union":
            ranges = np.column_stack([q[:, :, 0].min(0), q[:, :, 1].max(0)])
        else:
            ranges = np.column_stack([q[:, :, 0].max(0), q[:, :, 1].min(0)])
            kwargs.setdefault("outside", "clip")
            if np.any(ranges[:, 1] <= ranges[:, 0]):
                raise ArgumentError("quantiles", "the sites' ranges do not overlap in some dimension")
        return cls.from_ranges(ranges, n_points, **kwargs)

    # ------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        """Number of dimensions d."""
        return len(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        """Points per axis."""
        return tuple(a.size for a in self.axes)

    @property
    def n_points(self) -> int:
        """Number of grid points G."""
        return int(np.prod(self.shape))

    @property
    def points(self) -> np.ndarray:
        """Grid points, shape (G, d), in C order."""
        return np.stack(np.meshgrid(*self.axes, indexing="ij"), -1).reshape(-1, self.dim)

    # ------------------------------------------------------------ site side
    def prepare_points(self, X, name: str = "X") -> np.ndarray:
        """Validate points for this grid (shape, finiteness) and clip them when ``outside="clip"``."""
        x = as_float_array(X, name)
        if x.ndim == 1 and self.dim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ArgumentError(name, f"expected shape (n, {self.dim}) to match the grid, got {x.shape}")
        lo = np.array([a[0] for a in self.axes])
        hi = np.array([a[-1] for a in self.axes])
        if self.outside == "clip":
            return np.ascontiguousarray(np.clip(x, lo, hi))
        outside = np.flatnonzero(np.any((x < lo) | (x > hi), axis=1))
        if outside.size:
            raise ArgumentError(name, f"row {int(outside[0])} lies outside the grid's range (pass "
                                      "outside='clip' to clamp it, or widen the grid)")
        return np.ascontiguousarray(x)

    def sums(self, X, Y, bandwidth, *, folds=None, n_folds: int | None = None,
             n_threads: int = 1) -> GridSumsResult:
        """Kernel moments of ``(X, Y)`` per fold and grid point (see :func:`grid_sums`)."""
        return grid_sums(self.prepare_points(X), Y, self.axes, bandwidth, folds=folds, n_folds=n_folds,
                         kernel=self.kernel, fit=self.fit, support=self.support, n_threads=n_threads)

    def interpolate(self, values, X, *, n_threads: int = 1) -> np.ndarray:
        """Multilinear interpolation of grid values at ``X`` (see :func:`grid_interpolate`)."""
        return grid_interpolate(self.axes, values, self.prepare_points(X), n_threads=n_threads)

    # ------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"axes": [a.tolist() for a in self.axes], "kernel": self.kernel, "fit": self.fit,
                "support": float(self.support), "outside": self.outside}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "KernelGrid":
        """Inverse of :meth:`to_dict`."""
        if not isinstance(d, dict) or "axes" not in d:
            raise ArgumentError("grid", "expected an object with 'axes'")
        extra = set(d) - {"axes", "kernel", "fit", "support", "outside"}
        if extra:
            raise ArgumentError("grid", f"unknown field(s) {sorted(extra)}")
        return cls(tuple(np.asarray(a, float) for a in d["axes"]), kernel=d.get("kernel", "gaussian"),
                   fit=d.get("fit", "constant"), support=float(d.get("support", 3.0)),
                   outside=d.get("outside", "error"))

    def same_as(self, other: "KernelGrid") -> bool:
        """Whether two grids are identical (axes, kernel, fit, support)."""
        return (self.kernel == other.kernel and self.fit == other.fit and self.support == other.support
                and len(self.axes) == len(other.axes)
                and all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(self.axes, other.axes)))


GRID_SPEC_SCHEMA = "hetmtl.nuisance_grid_spec"


@dataclass(frozen=True)
class NuisanceGridSpec:
    """What the center hands every site of nuisance fusion: grid, candidate bandwidths, threshold.

    Parameters
    ----------
    grid : KernelGrid
        The shared grid.
    bandwidths : array_like of shape (B, d) or (B,)
        Candidate bandwidths, one row per candidate (a single value per candidate is used for
        every dimension).
    threshold : float, default 5.0
        Disclosure threshold: grid points with a smaller kernel sum or count in some fold are not
        released.

    Notes
    -----
    The file (:meth:`to_json`) is a JSON object ``{"schema": "hetmtl.nuisance_grid_spec",
    "grid": KernelGrid.to_dict(), "bandwidths": [[...], ...], "threshold": float}``.
    """

    grid: KernelGrid
    bandwidths: np.ndarray
    threshold: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.grid, KernelGrid):
            raise ArgumentError("grid", f"expected a KernelGrid, got {type(self.grid).__name__}")
        H = as_float_array(self.bandwidths, "bandwidths")
        if H.ndim == 1:
            H = np.repeat(H[:, None], self.grid.dim, axis=1)
        if H.ndim != 2 or H.shape[1] != self.grid.dim or H.shape[0] == 0:
            raise ArgumentError("bandwidths", f"expected shape (B, {self.grid.dim}), got {H.shape}")
        check_positive(H, "bandwidths")
        if not (np.isfinite(self.threshold) and self.threshold >= 0):
            raise ArgumentError("threshold", f"must be a finite number >= 0, got {self.threshold!r}")
        object.__setattr__(self, "bandwidths", H)
        object.__setattr__(self, "threshold", float(self.threshold))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (the file's content)."""
        return {"schema": GRID_SPEC_SCHEMA, "grid": self.grid.to_dict(),
                "bandwidths": self.bandwidths.tolist(), "threshold": self.threshold}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NuisanceGridSpec":
        """Inverse of :meth:`to_dict`."""
        if not isinstance(d, dict) or d.get("schema") != GRID_SPEC_SCHEMA:
            raise ArgumentError("grid spec", f"not a nuisance grid specification (schema "
                                             f"{GRID_SPEC_SCHEMA!r} expected)")
        missing = {"grid", "bandwidths", "threshold"} - set(d)
        if missing:
            raise ArgumentError("grid spec", f"missing field(s) {sorted(missing)}")
        return cls(KernelGrid.from_dict(d["grid"]), d["bandwidths"], d["threshold"])

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the specification to ``path`` (atomically)."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "NuisanceGridSpec":
        """Read a specification written by :meth:`to_json`."""
        return cls.from_dict(read_json(path))


def local_fit(M: np.ndarray, V: np.ndarray, rcond: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Value and curvature of the local fit at each grid point from its moments.

    For local-constant moments (P = 1) the value is ``S1 / S0`` and the curvature ``S0``. For
    local-linear moments the value is the intercept of the weighted least-squares fit and the
    curvature the Schur complement ``M00 - M0r Mrr^-1 Mr0``: the site's kernel loss, profiled over
    the local slope, is ``curvature * (a - value)^2 / 2`` plus a constant. Grid points whose
    moment matrix is (nearly) singular get curvature 0 (missing).

    Parameters
    ----------
    M : ndarray of shape (..., P, P)
    V : ndarray of shape (..., P, T)

    Returns
    -------
    value : ndarray of shape (..., T)
    curvature : ndarray of shape (...)
    """
    P = M.shape[-1]
    S0 = M[..., 0, 0]
    if P == 1:
        ok = S0 > 0
        value = np.where(ok[..., None], V[..., 0, :] / np.where(ok, S0, 1.0)[..., None], 0.0)
        return value, np.where(ok, S0, 0.0)
    # Scale rows/columns to unit diagonal before judging the conditioning.
    diag = np.sqrt(np.maximum(np.diagonal(M, axis1=-2, axis2=-1), 1e-300))
    Ms = M / diag[..., :, None] / diag[..., None, :]
    eig = np.linalg.eigvalsh(Ms)
    ok = (S0 > 0) & (eig[..., 0] > rcond * np.maximum(eig[..., -1], 1e-300))
    eye = np.broadcast_to(np.eye(P), M.shape)
    Msafe = np.where(ok[..., None, None], M, eye)
    beta = np.linalg.solve(Msafe, np.where(ok[..., None, None], V, 0.0))
    value = np.where(ok[..., None], beta[..., 0, :], 0.0)
    Mrr = Msafe[..., 1:, 1:]
    Mr0 = Msafe[..., 1:, :1]
    schur = Msafe[..., 0, 0] - (Mr0[..., 0] * np.linalg.solve(Mrr, Mr0)[..., 0]).sum(-1)
    return value, np.where(ok, np.maximum(schur, 0.0), 0.0)
