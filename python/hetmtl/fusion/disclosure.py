"""Site-side disclosure control: floors the data holder sets and no request from the center lowers.

A :class:`DisclosurePolicy` belongs to the site. It decides which fold summaries a
:class:`~hetmtl.fusion.summary.SiteSummary` may carry and which grid requests a site answers with
a :class:`~hetmtl.fusion.grid_summary.GridSummary`. A request below a floor (a disclosure threshold
under ``min_count``, more bandwidths than ``max_bandwidths``, a non-finite bandwidth, folds with
fewer rows than ``min_grid_fold_rows``) is refused with an error; a fold summary that would be
meaningless or invertible is withheld with a :class:`DisclosureWarning` and never written.

The fold-summary defaults are the lowest floors any policy may set, so a summary that passed the
site's policy also passes the checks the center makes when it loads the file. The grid threshold
may be lowered by the site itself (never by the center's request) down to one row.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Sequence

import numpy as np

from .._util.io import atomic_write_json
from .._util.validation import ArgumentError, check_int_at_least


# Hard floors (and ceilings) no site policy may go beyond. The fold floors equal the defaults, so
# the center's check of a loaded summary agrees with any site's; a site may lower its grid
# threshold below the default of 5 down to 1, by its own explicit choice only.
_FLOORS = {"min_fold_rows": 5, "rows_per_coef": 3.0, "fold_rcond": 1e-6, "min_count": 1.0,
           "min_grid_fold_rows": 1}
_CEILINGS = {"max_bandwidths": 10, "max_grid_points": 10000}


class DisclosureWarning(UserWarning):
    """A summary part was withheld by the site's disclosure policy."""


@dataclass(frozen=True)
class DisclosurePolicy:
    """Disclosure floors set by the site that holds the data.

    Parameters
    ----------
    min_fold_rows : int, default 5
        A fold summary is released only for folds of at least this many rows.
    rows_per_coef : float, default 3.0
        ... and of at least ``rows_per_coef * p`` rows (p coefficients): with p rows the fold's
        J and Omega are sums of the same p rank-one terms and give every row back; at three rows
        per coefficient they are a third of the numbers needed to pin the rows down.
    fold_rcond : float, default 1e-6
        A fold's Omega and J must be within this relative conditioning of the whole site's
        (eigenvalues of ``Omega^-1/2 Omega_f Omega^-1/2`` and singular values of ``J^-1 J_f`` in
        ``[fold_rcond, 1 / fold_rcond]``): a fold Omega made of rounding noise fails here.
    min_count : float, default 5.0
        Lowest disclosure threshold the site accepts for grid points (kernel sum S0 and count of
        rows within the kernel's support, in every fold); at least 1.
    min_grid_fold_rows : int, default 20
        Grid sums are computed only when every fold of every nuisance's rows has this many rows
        (a site may lower it, e.g. for simulated data where no person is at risk).
    max_bandwidths : int, default 10
        Most candidate bandwidths answered in one grid request.
    max_grid_points : int, default 10000
        Most grid points answered in one grid request.
    privacy : PrivacyBudget, optional
        Differential privacy of the released grid sums (see :mod:`hetmtl.fusion.privacy`).
    ledger : str, optional
        A file where the site logs every grid summary it releases (created when absent); needed
        by the two limits below, which hold across runs.
    max_releases : int, optional
        Most grid summaries released over the ledger's life (1 stops a center from differencing
        two releases of nearly the same rows).
    total_epsilon : float, optional
        Privacy budget over all private releases in the ledger (basic composition: the epsilons
        add up); a release that would exceed it is refused.
    """

    min_fold_rows: int = 5
    rows_per_coef: float = 3.0
    fold_rcond: float = 1e-6
    min_count: float = 5.0
    min_grid_fold_rows: int = 20
    max_bandwidths: int = 10
    max_grid_points: int = 10000
    privacy: Any = None
    ledger: str | None = None
    max_releases: int | None = None
    total_epsilon: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_fold_rows", "min_grid_fold_rows"):
            object.__setattr__(self, name, check_int_at_least(getattr(self, name), name, _FLOORS[name]))
        for name in ("max_bandwidths", "max_grid_points"):
            value = check_int_at_least(getattr(self, name), name, 1)
            if value > _CEILINGS[name]:
                raise ValueError(f"{name}: must be at most {_CEILINGS[name]} (the package's ceiling), "
                                 f"got {value}")
            object.__setattr__(self, name, value)
        for name in ("rows_per_coef", "min_count"):
            value = _number(getattr(self, name), name)
            if not (np.isfinite(value) and value >= _FLOORS[name]):
                raise ValueError(f"{name}: must be a number >= {_FLOORS[name]:g} (the package's floor), "
                                 f"got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)
        rc = _number(self.fold_rcond, "fold_rcond")
        if not _FLOORS["fold_rcond"] <= rc < 1:
            raise ValueError(f"fold_rcond: must be in [{_FLOORS['fold_rcond']:g}, 1), got "
                             f"{self.fold_rcond!r}")
        object.__setattr__(self, "fold_rcond", rc)
        self._check_ledger_settings()
        if self.privacy is not None:
            from .privacy import PrivacyBudget

            if isinstance(self.privacy, dict):
                object.__setattr__(self, "privacy", PrivacyBudget(**self.privacy))
            elif not isinstance(self.privacy, PrivacyBudget):
                raise ValueError(f"privacy: expected a PrivacyBudget or None, got {self.privacy!r}")

    # ------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the site's configuration file)."""
        out = asdict(self)
        out["privacy"] = None if self.privacy is None else self.privacy.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DisclosurePolicy":
        """Policy from a configuration object; unknown keys are refused."""
        if not isinstance(d, dict):
            raise ValueError("policy: expected a JSON object")
        known = {f.name for f in fields(cls)}
        extra = set(d) - known
        if extra:
            raise ValueError(f"policy: unknown setting(s) {sorted(extra)}; known: {sorted(known)}")
        try:
            return cls(**d)
        except ValueError as exc:
            raise ValueError(f"policy: {exc}") from None

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "DisclosurePolicy":
        """Read a site's policy file (a JSON object of the settings to change)."""
        try:
            with open(path, encoding="utf-8") as fh:
                d = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"policy: {os.fspath(path)!r} is not valid JSON ({exc})") from None
        return cls.from_dict(d)

    # ------------------------------------------------------------ grid requests
    def check_grid_request(self, threshold: Any, bandwidths: np.ndarray, grid: Any) -> float:
        """Refuse a grid request (a :class:`~hetmtl.fusion.kernel_grid.KernelGrid` and candidate
        bandwidths) below this policy's floors; return the threshold as a float."""
        n_points = grid.n_points
        thr = _number(threshold, "threshold")
        if not np.isfinite(thr):
            raise ArgumentError("threshold", f"must be a finite number, got {threshold!r}")
        if thr < self.min_count:
            raise ArgumentError("threshold", f"{threshold!r} is below the site's disclosure floor "
                                f"min_count = {self.min_count:g}; the site releases no grid point "
                                "backed by fewer rows")
        H = np.asarray(bandwidths, float)
        if not np.all(np.isfinite(H)) or np.any(H <= 0):
            raise ArgumentError("bandwidths", "every bandwidth must be a finite positive number")
        if H.shape[0] > self.max_bandwidths:
            raise ArgumentError("bandwidths", f"{H.shape[0]} candidate bandwidths requested; the site "
                                f"answers at most max_bandwidths = {self.max_bandwidths}")
        if n_points > self.max_grid_points:
            raise ArgumentError("grid", f"{n_points} grid points requested; the site answers at most "
                                f"max_grid_points = {self.max_grid_points}")
        _check_compact_spacing(grid, H)
        return thr

    def check_grid_rows(self, role: str, n_rows: np.ndarray) -> None:
        """Refuse grid sums of a nuisance with a fold of fewer than ``min_grid_fold_rows`` rows."""
        small = np.flatnonzero(n_rows < self.min_grid_fold_rows)
        if small.size:
            k = int(small[0])
            raise ArgumentError("folds", f"fold {k} has {int(n_rows[k])} rows for {role!r}; the site "
                                "releases grid sums only for folds of at least min_grid_fold_rows = "
                                f"{self.min_grid_fold_rows} rows (use fewer folds)")

    # ------------------------------------------------------------ release ledger
    def _check_ledger_settings(self) -> None:
        if self.ledger is not None:
            object.__setattr__(self, "ledger", os.fspath(self.ledger))
        if self.max_releases is not None:
            object.__setattr__(self, "max_releases", check_int_at_least(self.max_releases, "max_releases", 1))
        if self.total_epsilon is not None:
            eps = _number(self.total_epsilon, "total_epsilon")
            if not (np.isfinite(eps) and eps > 0):
                raise ValueError(f"total_epsilon: must be a positive number, got {self.total_epsilon!r}")
            object.__setattr__(self, "total_epsilon", eps)
        if self.ledger is None and (self.max_releases is not None or self.total_epsilon is not None):
            raise ValueError("ledger: max_releases and total_epsilon count releases across runs and "
                             "need a ledger file")

    def _ledger_entries(self) -> list[dict]:
        if self.ledger is None or not os.path.exists(self.ledger):
            return []
        try:
            with open(self.ledger, encoding="utf-8") as fh:
                entries = json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"ledger: cannot read {self.ledger!r} ({exc}); the site releases nothing "
                             "until its release log is readable") from None
        if not isinstance(entries, list):
            raise ValueError(f"ledger: {self.ledger!r} is not a release log (a JSON list)")
        return entries

    def check_release(self, epsilon: float | None) -> None:
        """Refuse a release beyond ``max_releases`` or ``total_epsilon`` of the ledger."""
        entries = self._ledger_entries()
        if self.max_releases is not None and len(entries) >= self.max_releases:
            raise ValueError(f"max_releases: the site has released {len(entries)} grid summaries "
                             f"(ledger {self.ledger!r}); its policy allows {self.max_releases}")
        if self.total_epsilon is not None:
            if epsilon is None:
                raise ValueError("total_epsilon: the site releases only private grid sums (set privacy)")
            spent = sum(float(e.get("epsilon") or 0.0) for e in entries)
            if spent + epsilon > self.total_epsilon * (1 + 1e-12):
                raise ValueError(f"total_epsilon: epsilon {spent:g} spent of {self.total_epsilon:g}; "
                                 f"a release of {epsilon:g} would exceed the site's privacy budget")

    def record_release(self, kind: str, epsilon: float | None) -> None:
        """Append one release to the ledger (no-op without a ledger)."""
        if self.ledger is None:
            return
        entries = self._ledger_entries()
        entries.append({"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "kind": kind,
                        "epsilon": epsilon})
        atomic_write_json(self.ledger, entries)

    # ------------------------------------------------------------ fold summaries
    def fold_problem(self, n_fold: int, J_fold: np.ndarray, Omega_fold: np.ndarray,
                     J: np.ndarray, Omega: np.ndarray) -> str | None:
        """Why a fold summary must be withheld (``None`` when it may be released)."""
        p = J.shape[0]
        need = max(self.min_fold_rows, int(np.ceil(self.rows_per_coef * p)))
        if n_fold < need:
            return f"{n_fold} rows, fewer than the {need} the policy asks for {p} coefficient(s)"
        try:
            L = np.linalg.cholesky(0.5 * (Omega + Omega.T))
            Li = np.linalg.inv(L)
            rel_omega = np.linalg.eigvalsh(Li @ Omega_fold @ Li.T)
            rel_J = np.linalg.svd(np.linalg.solve(J, J_fold), compute_uv=False)
        except np.linalg.LinAlgError:
            return "its moments cannot be compared with the site's"
        lo, hi = self.fold_rcond, 1.0 / self.fold_rcond
        if not (np.all(np.isfinite(rel_omega)) and lo <= rel_omega[0] and rel_omega[-1] <= hi):
            return (f"its score covariance is degenerate relative to the site's (relative "
                    f"eigenvalues {rel_omega[0]:.3g} .. {rel_omega[-1]:.3g})")
        if not (np.all(np.isfinite(rel_J)) and lo <= rel_J[-1] and rel_J[0] <= hi):
            return (f"its score Jacobian is degenerate relative to the site's (relative singular "
                    f"values {rel_J[-1]:.3g} .. {rel_J[0]:.3g})")
        return None

    def release_folds(self, folds: Sequence, J: np.ndarray, Omega: np.ndarray,
                      site: str) -> tuple[list, list[int]]:
        """Split fold summaries into those released and the row counts of those withheld.

        When one fold must be withheld, every fold is: the site's totals are sums over its folds,
        so the totals minus the released folds would give the withheld fold's moments back. The
        withholding is announced with a :class:`DisclosureWarning`.
        """
        problems = [(i, why) for i, f in enumerate(folds)
                    if (why := self.fold_problem(int(f.n), f.J, f.Omega, J, Omega)) is not None]
        if not problems:
            return list(folds), []
        i, why = problems[0]
        warnings.warn(f"site {site!r}: fold summary {i} must be withheld by the disclosure policy ({why}), "
                      f"and so all {len(folds)} are (the site's totals minus the others would give it "
                      "back); the center chooses lambda without this site's folds",
                      DisclosureWarning, stacklevel=4)
        return [], [int(f.n) for f in folds]


# A compact kernel's sums are piecewise quadratic in the grid coordinate, with a kink where a row
# enters or leaves the window: on a grid much finer than the bandwidth the jumps across the kinks
# give the rows' covariates and targets back exactly. Grid spacing of at least this share of the
# bandwidth leaves fewer grid points between kinks than a quadratic piece needs.
COMPACT_MIN_SPACING = 0.25


def _check_compact_spacing(grid: Any, bandwidths: np.ndarray) -> None:
    if grid.kernel != "epanechnikov":
        return
    for j, axis in enumerate(grid.axes):
        step = float(np.min(np.diff(axis))) if len(axis) > 1 else np.inf
        h = float(np.max(bandwidths[:, j]))  # the widest window holds the most grid points
        if step < COMPACT_MIN_SPACING * h:
            raise ArgumentError("grid", f"axis {j}: grid spacing {step:.3g} is below a quarter of the "
                                f"bandwidth {h:.3g}; with the compact {grid.kernel!r} kernel so fine a grid "
                                "gives rows back (use fewer grid points, or the gaussian kernel)")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name}: must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a number, got {value!r}") from None


DEFAULT_POLICY = DisclosurePolicy()
#: For simulated data only, where no person is at risk: grid sums of folds of any size, any
#: threshold down to one row (fold summaries keep the hard floors).
SIMULATION_POLICY = DisclosurePolicy(min_count=1, min_grid_fold_rows=1)


def as_policy(policy: "DisclosurePolicy | dict | str | os.PathLike | None") -> DisclosurePolicy:
    """The site's policy from an object, a dict of settings or a JSON file (``None``: defaults)."""
    if policy is None:
        return DEFAULT_POLICY
    if isinstance(policy, DisclosurePolicy):
        return policy
    if isinstance(policy, dict):
        return DisclosurePolicy.from_dict(policy)
    if isinstance(policy, (str, os.PathLike)):
        return DisclosurePolicy.from_json(policy)
    raise ValueError(f"policy: expected a DisclosurePolicy, a dict or a JSON file path, got {policy!r}")


# ---------------------------------------------------------------- published JSON Schemas
@functools.lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """The published JSON Schema ``name`` (``"site_summary"`` or ``"grid_summary"``)."""
    text = resources.files("hetmtl.fusion").joinpath("schemas", f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


@functools.lru_cache(maxsize=None)
def _validator(name: str, part: str | None):
    import jsonschema

    schema = load_schema(name)
    if part is not None:
        # Only the one property (e.g. metadata), with the shared definitions it refers to.
        schema = {**schema, "required": [], "properties": {part: schema["properties"][part]}}
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate_document(doc: Any, name: str, what: str, part: str | None = None) -> None:
    """Raise a ValueError naming the first place where ``doc`` breaks the published schema."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator(name, part).iter_errors(doc))
    if error is None:
        return
    path = ".".join(str(k) for k in error.absolute_path)
    where = f"{what}: {path}" if path else what
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - allowed)
        raise ValueError(f"{where}: unknown field(s) {extra}; only the fields the published schema "
                         f"{name}.schema.json declares are accepted (summaries carry no row-level data)")
    raise ValueError(f"{where}: {error.message} (see the published schema {name}.schema.json)")


def check_metadata(metadata: Any, name: str, what: str) -> dict:
    """Metadata restricted to the declared fields of schema ``name``; returns a plain copy."""
    if not isinstance(metadata, dict):
        raise ValueError(f"{what}: metadata must be an object, got {type(metadata).__name__}")
    try:
        meta = json.loads(json.dumps(metadata))  # plain JSON types only (tuples become lists)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: metadata must be plain JSON ({exc})") from None
    validate_document({"metadata": meta}, name, what, part="metadata")
    return meta
