"""Site summaries: everything a site sends to the center, and nothing row-level.

A summary holds the site's DML estimate ``theta`` (p,), the score Jacobian ``J`` = (1/n) sum
d psi / d theta (p, p), the score covariance ``Omega`` = (1/n) sum psi psi' (p, p), the sample
size ``n``, the same quantities per cross-fitting fold (for summary-level tuning of lambda) and
metadata. The sandwich covariance of ``theta`` is ``V = J^-1 Omega J^-T / n``.

Summaries are exchanged as versioned JSON (``schema = "hetmtl.site_summary"``) that follows the
published JSON Schema ``schemas/site_summary.schema.json``; loading validates it against that
schema (unknown fields and undeclared metadata are refused, so row-level data cannot ride along),
then shapes, finiteness, positive definiteness and consistency (fold sizes add up to n).

Fold summaries pass the site's :class:`~hetmtl.fusion.disclosure.DisclosurePolicy`: a fold with
too few rows per coefficient, or whose moments are degenerate relative to the site's, is withheld
with a warning and only its row count is kept (``withheld_fold_rows``).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .._util.display import ReportDisplay
from .._util.io import atomic_write_json, read_json
from .._util.validation import (ArgumentError, check_array, check_choice, check_names,
                                check_nonsingular, check_number, check_positive_definite)
from ..persist.mixin import SchemaPersistable
from .disclosure import DEFAULT_POLICY, DisclosurePolicy, check_metadata, validate_document

SCHEMA_NAME = "hetmtl.site_summary"
SCHEMA_VERSION = 1
WEIGHTS = ("precision", "hessian")
_SCHEMA_FILE = "site_summary"


@dataclass(frozen=True)
class FoldSummary:
    """Score summary of one cross-fitting fold (its held-out observations only).

    Attributes
    ----------
    n : int
        Rows in the fold.
    theta : ndarray of shape (p,)
        Estimate solved from this fold's scores alone.
    J : ndarray of shape (p, p)
        Mean score Jacobian on the fold.
    Omega : ndarray of shape (p, p)
        Mean outer product of the scores on the fold, at the fold's ``theta``.
    """

    n: int
    theta: np.ndarray
    J: np.ndarray
    Omega: np.ndarray


def _check_theta_J_Omega(theta, J, Omega, n, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    th = check_array(theta, f"{where}theta")
    if th.ndim == 0:
        th = th.reshape(1)
    if th.ndim != 1 or th.size == 0:
        raise ArgumentError(f"{where}theta", f"expected a non-empty vector, got shape {th.shape}")
    p = th.size
    Ja = check_array(J, f"{where}J")
    if Ja.size != p * p:
        raise ArgumentError(f"{where}J", f"expected shape ({p}, {p}), got {Ja.shape}")
    Oa = check_array(Omega, f"{where}Omega")
    if Oa.size != p * p:
        raise ArgumentError(f"{where}Omega", f"expected shape ({p}, {p}), got {Oa.shape}")
    Ja, Oa = Ja.reshape(p, p), Oa.reshape(p, p)
    # Conditioning relative to the matrix's own scale: a determinant underflows for a perfectly
    # conditioned J at large p (det(-0.01 I) at p = 200 is 1e-400) and overflows for uncentered
    # covariates, neither of which says anything about identification.
    try:
        check_nonsingular(Ja, f"{where}J")
    except ArgumentError as exc:
        raise ArgumentError(exc.argument, f"the score Jacobian is singular (the site's design does not "
                                          f"identify theta; {exc.problem})") from None
    check_positive_definite(Oa, f"{where}Omega", rcond=0.0)
    # A fold's n counts rows; a site's n may be an effective size below 1 (a published estimate
    # with a standard error above 1 in its own units), so it only has to be positive.
    if where:
        check_number(n, f"{where}n", low=1)
    else:
        check_number(n, f"{where}n", low=0, low_open=True)
    return th, Ja, Oa


@dataclass(frozen=True, repr=False)
class SiteSummary(ReportDisplay, SchemaPersistable):
    """What one site sends to the center: estimate, score moments, size, fold summaries, metadata.

    Build one with :class:`hetmtl.fusion.SiteDML` (``.summary_``), from a published estimate with
    :meth:`from_estimate`, or load one with :meth:`from_json`.

    Attributes
    ----------
    theta : ndarray of shape (p,)
        Site DML estimate.
    J : ndarray of shape (p, p)
        Score Jacobian (1/n) sum d psi / d theta.
    Omega : ndarray of shape (p, p)
        Score covariance (1/n) sum psi psi' at ``theta``.
    n : float
        Sample size (an effective size for summaries built from published estimates).
    site : str
        Site name.
    model : str
        Model that produced the score (``"plr"``, ``"irm"``, ``"cate_linear"``, ``"estimate"``).
    coef_names : list of str
        Names of the p coordinates.
    folds : tuple of FoldSummary
        Per-fold summaries released by the disclosure policy (empty when unknown).
    metadata : dict
        Description restricted to the fields the published schema declares (model, score,
        learners, n_folds, n_rep, clip, cluster, n_clusters, outcome, basis, hetmtl_version,
        source, reference).
    withheld_fold_rows : tuple of int
        Row counts of the folds whose summaries the disclosure policy withheld.
    """

    theta: np.ndarray
    J: np.ndarray
    Omega: np.ndarray
    n: float
    site: str = "site"
    model: str = "plr"
    coef_names: Sequence[str] = ()
    folds: tuple[FoldSummary, ...] = ()
    metadata: dict = field(default_factory=dict)
    withheld_fold_rows: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        th, Ja, Oa = _check_theta_J_Omega(self.theta, self.J, self.Omega, self.n, "")
        object.__setattr__(self, "theta", th)
        object.__setattr__(self, "J", Ja)
        object.__setattr__(self, "Omega", Oa)
        with np.errstate(over="ignore", invalid="ignore"):
            finite = bool(np.all(np.isfinite(self.cov)))
        if not finite:
            raise ArgumentError("J", "the covariance J^-1 Omega J^-T / n overflows (J too small next to "
                                     "Omega); rescale theta")
        if not isinstance(self.site, str) or not self.site:
            raise ArgumentError("site", f"must be a non-empty string, got {self.site!r}")
        try:
            raw = [self.coef_names] if isinstance(self.coef_names, str) else [str(c) if isinstance(c, str)
                                                                            else c for c in self.coef_names]
        except TypeError:
            raise ArgumentError("coef_names", f"expected a list of names, got {self.coef_names!r}") from None
        given = check_names(raw, "coef_names", allow_empty=True)
        names = given or ([f"theta{j}" for j in range(th.size)] if th.size > 1 else ["theta"])
        if len(names) != th.size:
            raise ValueError(f"coef_names: expected {th.size} names, got {len(names)}")
        object.__setattr__(self, "coef_names", names)
        folds = []
        for i, f in enumerate(self.folds):
            fth, fJ, fO = _check_theta_J_Omega(f.theta, f.J, f.Omega, f.n, f"folds[{i}].")
            if fth.size != th.size:
                raise ValueError(f"folds[{i}].theta: expected {th.size} values, got {fth.size}")
            folds.append(FoldSummary(int(f.n), fth, fJ, fO))
        self._release(folds, DEFAULT_POLICY)
        object.__setattr__(self, "metadata", check_metadata(self.metadata, _SCHEMA_FILE, "summary"))

    def _release(self, folds: list[FoldSummary], policy: DisclosurePolicy) -> None:
        """Keep the folds ``policy`` releases; record the sizes of the others; check the sizes."""
        kept, withheld = policy.release_folds(folds, self.J, self.Omega, self.site)
        try:
            sizes = tuple(int(k) for k in self.withheld_fold_rows) + tuple(withheld)
        except (TypeError, ValueError):
            raise ValueError("withheld_fold_rows: expected whole row counts") from None
        if any(k < 1 for k in sizes):
            raise ValueError("withheld_fold_rows: row counts must be at least 1")
        total = sum(f.n for f in kept) + sum(sizes)
        if (kept or sizes) and total != self.n:
            raise ValueError(f"folds: fold sizes add up to {total}, not to the site's n = {self.n:g}")
        object.__setattr__(self, "folds", tuple(kept))
        object.__setattr__(self, "withheld_fold_rows", sizes)

    def released(self, policy: "DisclosurePolicy | None" = None) -> "SiteSummary":
        """This summary with only the fold summaries the site's ``policy`` releases.

        Parameters
        ----------
        policy : DisclosurePolicy, optional
            The site's disclosure settings (default: the package floors, already applied).

        Returns
        -------
        SiteSummary
            A copy; each withheld fold is announced with a ``DisclosureWarning``.
        """
        out = copy.copy(self)
        out._release(list(self.folds), policy or DEFAULT_POLICY)
        return out

    # ---------------------------------------------------------------- derived quantities
    @property
    def dim(self) -> int:
        """Number of target coordinates p."""
        return self.theta.size

    @property
    def cov(self) -> np.ndarray:
        """Sandwich covariance ``J^-1 Omega J^-T / n`` of ``theta``."""
        Jinv = np.linalg.inv(self.J)
        V = Jinv @ self.Omega @ Jinv.T / self.n
        return 0.5 * (V + V.T)

    @property
    def se(self) -> np.ndarray:
        """Standard errors of ``theta``."""
        return np.sqrt(np.diag(self.cov))

    def weight_matrix(self, weight: str = "precision") -> np.ndarray:
        """Per-observation weight matrix W of the central quadratic.

        ``"precision"``: ``(n V)^-1 = J' Omega^-1 J``; ``"hessian"``: ``-J`` (needs a symmetric
        negative definite Jacobian, as for PLR).
        """
        check_choice(weight, "weight", WEIGHTS)
        return _weight_from_moments(self.J, self.Omega, weight, self.site)

    def fold_excluded(self, fold: int, weight: str = "precision") -> tuple[np.ndarray, np.ndarray, float]:
        """Estimate, weight matrix and size of the site with fold ``fold`` left out.

        Every score here is linear in theta, so the estimate from the remaining folds' pooled score
        is exactly ``(sum_g n_g J_g)^-1 sum_g n_g J_g theta_g``; its score covariance is taken as
        the size-weighted mean of the remaining folds' (each evaluated at its own fold estimate).
        """
        if not self.folds:
            raise ValueError(f"site {self.site!r}: has no fold summaries")
        rest = [f for i, f in enumerate(self.folds) if i != fold]
        if not rest:
            raise ValueError(f"site {self.site!r}: needs at least two folds to leave one out")
        nJ = sum(f.n * f.J for f in rest)
        n_rest = float(sum(f.n for f in rest))
        theta = np.linalg.solve(nJ, sum(f.n * f.J @ f.theta for f in rest))
        J = nJ / n_rest
        Omega = sum(f.n * f.Omega for f in rest) / n_rest
        return theta, _weight_from_moments(J, Omega, weight, self.site), n_rest

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_estimate(cls, estimate, se=None, *, cov=None, n: float | None = None,
                      site: str = "site", coef_names: Sequence[str] = (),
                      metadata: dict | None = None) -> "SiteSummary":
        """Summary from a published estimate and its standard error (or covariance).

        Parameters
        ----------
        estimate : float or array_like of shape (p,)
            The site's estimate.
        se : float or array_like of shape (p,), optional
            Standard errors (a diagonal covariance). Give ``se`` or ``cov``.
        cov : array_like of shape (p, p), optional
            Full covariance of the estimate.
        n : float, optional
            Sample size. Only the penalty weights ``sqrt(n)`` of ``method="fusion"`` depend on
            it; when unknown the effective size ``1 / mean(diag(cov))`` is used (per-observation
            variance one), which may be below 1 when the standard errors exceed 1 in the
            estimate's units. Then ``n V`` has unit mean diagonal, so a fusion penalty reads as a
            threshold in standard-error units whatever the units of the estimate.
        site, coef_names, metadata
            Descriptive fields.

        Notes
        -----
        The moments are set so that both weights equal the precision: ``J = -Omega = -(n V)^-1``.
        There are no fold summaries, so lambda is then chosen without cross-validation.
        """
        est = check_array(estimate, "estimate", min_size=1).reshape(-1)
        p = est.size
        if (se is None) == (cov is None):
            raise ValueError("se/cov: give exactly one of se or cov")
        if se is not None:
            se_a = check_array(se, "se").reshape(-1)
            if se_a.size != p:
                raise ValueError(f"se: expected {p} value(s), got {se_a.size}")
            if np.any(se_a <= 0):
                raise ValueError("se: standard errors must be positive")
            with np.errstate(over="ignore", under="ignore"):
                V = np.diag(se_a**2)
            if not np.all((np.diag(V) > 0) & np.isfinite(np.diag(V))):
                raise ArgumentError("se", "standard errors whose squares underflow to 0 or overflow; "
                                          "rescale the estimate")
        else:
            V = check_array(cov, "cov")
            if V.size != p * p:
                raise ArgumentError("cov", f"expected shape ({p}, {p}), got {V.shape}")
            try:
                V = check_positive_definite(V.reshape(p, p), "cov")
            except ArgumentError as exc:
                raise ArgumentError("cov", f"singular or not a covariance ({exc.problem})") from None
        if n is not None:
            n_eff = check_number(n, "n", low=0, low_open=True)
        else:
            n_eff = 1.0 / float(np.mean(np.diag(V)))
            if not (np.isfinite(n_eff) and n_eff > 0):
                raise ArgumentError("se", "standard errors too small or too large to form an "
                                          "effective sample size; pass n")
        try:
            P = np.linalg.inv(n_eff * V)
        except np.linalg.LinAlgError:
            raise ArgumentError("se" if se is not None else "cov", "n V is singular in floating point; "
                                "rescale the estimate") from None
        if not np.all(np.isfinite(P)):
            raise ArgumentError("se" if se is not None else "cov", "the precision n V^-1 overflows; "
                                "rescale the estimate")
        meta = {"source": "published estimate", **(metadata or {})}
        return cls(theta=est, J=-P, Omega=P, n=n_eff, site=site, model="estimate",
                   coef_names=coef_names, metadata=meta)

    # ---------------------------------------------------------------- JSON
    def _display_report(self):
        from .display import site_summary_report

        return site_summary_report(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict following the versioned schema (``withheld_fold_rows`` only if any)."""
        out = {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "site": self.site,
            "model": self.model,
            "coef_names": list(self.coef_names),
            "n": float(self.n),
            "theta": self.theta.tolist(),
            "J": self.J.tolist(),
            "Omega": self.Omega.tolist(),
            "folds": [{"n": f.n, "theta": f.theta.tolist(), "J": f.J.tolist(), "Omega": f.Omega.tolist()}
                      for f in self.folds],
            "metadata": self.metadata,
        }
        if self.withheld_fold_rows:
            out["withheld_fold_rows"] = list(self.withheld_fold_rows)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SiteSummary":
        """Validate a schema dict and build the summary (inverse of :meth:`to_dict`)."""
        if not isinstance(d, dict):
            raise ValueError("summary: expected a JSON object")
        if d.get("schema") != SCHEMA_NAME:
            raise ValueError(f"summary: not a hetmtl site summary (schema={d.get('schema')!r})")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"summary: unsupported schema_version {version!r} "
                             f"(this version of hetmtl reads {SCHEMA_VERSION})")
        validate_document(d, _SCHEMA_FILE, "summary")
        folds = tuple(FoldSummary(f["n"], np.asarray(f["theta"], float), np.asarray(f["J"], float),
                                  np.asarray(f["Omega"], float)) for f in d.get("folds", []))
        return cls(theta=np.asarray(d["theta"], float), J=np.asarray(d["J"], float),
                   Omega=np.asarray(d["Omega"], float), n=d["n"], site=str(d.get("site", "site")),
                   model=str(d.get("model", "plr")), coef_names=d.get("coef_names", ()),
                   folds=folds, metadata=d.get("metadata", {}),
                   withheld_fold_rows=tuple(d.get("withheld_fold_rows", ())))

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the summary as versioned JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "SiteSummary":
        """Load and validate a summary written by :meth:`to_json` (or by the R package / CLI)."""
        return cls.from_dict(read_json(path))


def _weight_from_moments(J: np.ndarray, Omega: np.ndarray, weight: str, site: str) -> np.ndarray:
    if weight == "precision":
        W = J.T @ np.linalg.solve(Omega, J)
    else:
        if not np.allclose(J, J.T, rtol=1e-8, atol=1e-12 * np.abs(J).max()):
            raise ValueError(f"weight: 'hessian' needs a symmetric score Jacobian; site {site!r} has "
                             "none (use weight='precision')")
        W = -J
        if np.linalg.eigvalsh(0.5 * (W + W.T))[0] <= 0:
            raise ValueError(f"weight: -J is not positive definite for site {site!r}")
    return 0.5 * (W + W.T)
