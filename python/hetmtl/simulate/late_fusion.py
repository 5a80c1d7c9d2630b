"""Multi-site data for late fusion of per-site DML estimates.

The design follows the late-fusion simulation plan (itself modelled on ARMUL's): K sites, site k
with its own target ``theta_k = theta0 + eta * u_k`` (``u_k`` uniform on the unit sphere of R^p),
a fraction of outlying sites with ``theta_k = 2 * w_k`` (``w_k`` a random unit vector), and
nuisance functions that are identical (S1), mildly different (S2) or unrelated (S3) across sites.

Models
------
``model="plr"`` (partially linear regression)::

    X ~ N(0, Sigma),  Sigma_ij = 0.5^|i-j|   (q covariates)
    D = m_k(X) + V,   V ~ N(0, I_p)
    Y = D' theta_k + g_k(X) + e,   e ~ N(0, 1)

``model="irm"`` (binary treatment, p = 1)::

    A ~ Bernoulli(pi_k(X)),  pi_k(x) = 0.05 + 0.9 * expit(m_k(x))
    Y = theta_k A + g_k(X) + e

so ``theta_k`` is the (constant) average treatment effect of site k and the propensity stays in
[0.05, 0.95] (overlap holds by construction).

Nuisance functions
------------------
Each nuisance function is a sum of three terms drawn from a small library of smooth or piecewise
shapes of one or two covariates (linear, tanh, sine, step, square, product). The shapes are
nonlinear but low-dimensional, so random forests or boosted trees learn them well from a few
hundred rows. With covariate indices taken modulo q (so q = 1 or 2 work):

* S1 (identical at every site), for treatment component j (0-based) and a, b, c = j, j+1, j+2::

      m^(j)(x) = 0.6 x_a + 0.8 tanh(2 x_b) + 0.5 * 1{x_c > 0}
      g(x)     = tanh(2 x_0) + 0.5 x_1^2 + 0.5 x_0 x_2

  m^(0) and g share x_0, so regressing Y on D alone is confounded.
* S2 (mildly different): the S1 terms with every coefficient shifted per site by an independent
  N(0, 0.2^2) draw; shapes, scales and thresholds are shared.
* S3 (unrelated): every site draws its own three terms per function: shape uniform over the
  library, covariates uniform over the q coordinates, coefficient +-U(0.4, 1), tanh/sine scale
  U(1, 2.5), step threshold U(-0.5, 0.5). The first term of g reuses the covariate of the first
  term of m^(0), so every site remains confounded.

Randomness
----------
One ``random_state`` is turned into a :class:`numpy.random.SeedSequence`; independent child
streams are built from it with fixed keys (never by spawning, which would mutate a caller's
SeedSequence): one for the choice of outlying sites and, per site k, one each for the direction
of ``theta_k``, the site size, the site's nuisance functions, X, V (or the treatment draws) and e.
Consequences, all tested:

* results are reproducible bit for bit for a seed on one machine;
* common random numbers: for a seed, X, V and e of a site do not depend on ``eta``, ``theta0``,
  ``scenario`` or ``outlier_frac``, and ``u_k`` does not depend on ``eta``, so curves against eta
  are smooth;
* site k's data do not change when ``n_sites`` grows, provided site k's outlier status does not
  change (always the case when ``outlier_frac = 0``; which sites are outliers is drawn once for
  the whole set of sites, so it may change with ``n_sites``);
* the first rows of a site are the same for a larger ``n_per_site`` (each variable is read from
  its own stream in row order).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .._util.seeds import as_seed_sequence as _as_seed_sequence
from .._util.seeds import child_rng as _child_rng
from .._util.validation import as_float_array, check_choice

SCENARIOS = ("S1", "S2", "S3")
MODELS = ("plr", "irm")

# Standard deviation of the per-site coefficient shift in scenario S2.
S2_COEF_SD = 0.2
# Propensity of the IRM design: PI_FLOOR + (1 - 2 PI_FLOOR) * expit(m(x)).
PI_FLOOR = 0.05
# Correlation between neighbouring covariates, Sigma_ij = X_RHO^|i-j|.
X_RHO = 0.5
# Range of site sizes for n_per_site="unequal" (inclusive).
UNEQUAL_RANGE = (100, 500)
# Norm of the parameter of an outlying site.
OUTLIER_NORM = 2.0

_SHAPES = ("linear", "tanh", "sin", "step", "square", "product")

# Stream keys below the root SeedSequence: (0,) design-level, (1, k, purpose) per site.
_DESIGN_KEY = 0
_SITE_KEY = 1
_P_THETA, _P_SIZE, _P_NUISANCE, _P_X, _P_V, _P_E = range(6)


@dataclass(frozen=True)
class _Term:
    """One additive term ``coef * shape(x_j [, x_j2]; scale)`` of a nuisance function."""

    shape: str
    j: int
    coef: float
    scale: float = 1.0
    j2: int = 0

    def __call__(self, X: np.ndarray) -> np.ndarray:
        x = X[:, self.j]
        if self.shape == "linear":
            val = x
        elif self.shape == "tanh":
            val = np.tanh(self.scale * x)
        elif self.shape == "sin":
            val = np.sin(self.scale * x)
        elif self.shape == "step":
            val = (x > self.scale).astype(np.float64)  # scale is the threshold here
        elif self.shape == "square":
            val = x * x
        elif self.shape == "product":
            val = x * X[:, self.j2]
        else:  # pragma: no cover - terms are built only by this module
            raise AssertionError(f"unknown shape {self.shape!r}")
        return self.coef * val


@dataclass(frozen=True)
class _SiteNuisance:
    """Nuisance functions of one site: m^(j) for each treatment component, and g."""

    m: tuple[tuple[_Term, ...], ...]
    g: tuple[_Term, ...]


def _eval(terms: Sequence[_Term], X: np.ndarray) -> np.ndarray:
    out = np.zeros(X.shape[0])
    for term in terms:
        out += term(X)
    return out


def _s1_nuisance(p: int, q: int) -> _SiteNuisance:
    m = tuple(
        (
            _Term("linear", j % q, 0.6),
            _Term("tanh", (j + 1) % q, 0.8, scale=2.0),
            _Term("step", (j + 2) % q, 0.5, scale=0.0),
        )
        for j in range(p)
    )
    g = (
        _Term("tanh", 0, 1.0, scale=2.0),
        _Term("square", 1 % q, 0.5),
        _Term("product", 0, 0.5, j2=2 % q),
    )
    return _SiteNuisance(m=m, g=g)


def _shift_coefs(terms: tuple[_Term, ...], rng: np.random.Generator) -> tuple[_Term, ...]:
    shifts = rng.normal(0.0, S2_COEF_SD, size=len(terms))
    return tuple(_Term(t.shape, t.j, t.coef + float(s), scale=t.scale, j2=t.j2)
                 for t, s in zip(terms, shifts))


def _random_terms(rng: np.random.Generator, q: int, n_terms: int = 3,
                  first_j: int | None = None) -> tuple[_Term, ...]:
    terms = []
    for i in range(n_terms):
        # Draw every field for every term so the stream layout does not depend on the shape.
        shape = _SHAPES[int(rng.integers(len(_SHAPES)))]
        j = int(rng.integers(q))
        j2 = int(rng.integers(q))
        coef = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.0))
        smooth_scale = float(rng.uniform(1.0, 2.5))
        threshold = float(rng.uniform(-0.5, 0.5))
        if i == 0 and first_j is not None:
            j = first_j
        scale = threshold if shape == "step" else smooth_scale
        terms.append(_Term(shape, j, coef, scale=scale, j2=j2))
    return tuple(terms)


def _site_nuisance(scenario: str, p: int, q: int, rng: np.random.Generator) -> _SiteNuisance:
    if scenario == "S1":
        return _s1_nuisance(p, q)
    if scenario == "S2":
        base = _s1_nuisance(p, q)
        return _SiteNuisance(m=tuple(_shift_coefs(mj, rng) for mj in base.m),
                             g=_shift_coefs(base.g, rng))
    m = tuple(_random_terms(rng, q) for _ in range(p))
    g = _random_terms(rng, q, first_j=m[0][0].j)
    return _SiteNuisance(m=m, g=g)


def _expit(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic function


def _unit_vector(rng: np.random.Generator, p: int) -> np.ndarray:
    z = rng.standard_normal(p)
    norm = np.linalg.norm(z)
    while norm == 0.0:  # probability zero; keeps the draw well defined
        z = rng.standard_normal(p)
        norm = np.linalg.norm(z)
    return z / norm


def _check_int(value: Any, name: str, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ValueError(f"{name}: must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def _round_half_up(x: float) -> int:
    # Half-up rounding with a little slack for binary floating point (0.35 * 10 = 3.4999...).
    return int(math.floor(x + 0.5 + 1e-9))


def _x_cholesky(q: int) -> np.ndarray:
    idx = np.arange(q)
    return np.linalg.cholesky(X_RHO ** np.abs(idx[:, None] - idx[None, :]))


@dataclass(frozen=True, eq=False)
class LateFusionSites:
    """Simulated multi-site data with known site parameters and nuisance functions.

    Attributes
    ----------
    data : pandas.DataFrame
        All rows: columns ``site``, ``y``, the treatment column(s) ``d`` (p = 1) or ``d1..dp``
        (``d`` holds 0/1 integers for IRM), and the covariates ``x1..xq``. Rows of a site are
        contiguous, sites in order.
    theta : ndarray of shape (K, p)
        True site parameters (PLR coefficient; IRM average treatment effect).
    is_outlier : ndarray of shape (K,), bool
        Sites whose parameter was drawn as an outlier (``theta_k = 2 * w_k``).
    site_names : tuple of str
        Site labels, in the order of ``theta``; zero-padded so that they sort in site order.
    n_per_site : ndarray of shape (K,), int
        Rows per site.
    theta0 : ndarray of shape (p,)
        Center of the non-outlying site parameters.
    eta, outlier_frac, scenario, model, p, q :
        The design parameters used.
    seed_entropy : int or sequence of int
        Entropy of the root SeedSequence. When ``random_state`` was None, an int or a
        Generator, passing ``seed_entropy`` as ``random_state`` reproduces the data (a
        SeedSequence with a spawn key needs that same SeedSequence).
    """

    data: pd.DataFrame
    theta: np.ndarray
    is_outlier: np.ndarray
    site_names: tuple[str, ...]
    n_per_site: np.ndarray
    theta0: np.ndarray
    eta: float
    outlier_frac: float
    scenario: str
    model: str
    p: int
    q: int
    seed_entropy: Any
    _nuisances: tuple[_SiteNuisance, ...] = field(repr=False)

    @property
    def n_sites(self) -> int:
        """Number of sites K."""
        return len(self.site_names)

    @property
    def d_cols(self) -> list[str]:
        """Names of the treatment column(s)."""
        return ["d"] if self.p == 1 else [f"d{j + 1}" for j in range(self.p)]

    @property
    def x_cols(self) -> list[str]:
        """Names of the covariate columns."""
        return [f"x{j + 1}" for j in range(self.q)]

    def _site_index(self, site: int | str) -> int:
        if isinstance(site, str):
            try:
                return self.site_names.index(site)
            except ValueError:
                raise ValueError(f"site: unknown site label {site!r}") from None
        if isinstance(site, numbers.Integral) and not isinstance(site, bool):
            if not 0 <= site < self.n_sites:
                raise ValueError(f"site: index {site} out of range for {self.n_sites} sites")
            return int(site)
        raise ValueError(f"site: expected a site label or an integer index, got {site!r}")

    def nuisance(self, site: int | str, X: Any) -> dict[str, np.ndarray]:
        """True nuisance functions of one site evaluated at covariate rows ``X``.

        Parameters
        ----------
        site : int or str
            Site index (0-based) or label.
        X : array-like of shape (n, q)
            Covariate rows.

        Returns
        -------
        dict
            ``"m"``: E[D | X] of shape (n, p) for PLR, the propensity P(A = 1 | X) of shape
            (n,) for IRM; ``"g"``: g_k(X), shape (n,); ``"l"``: E[Y | X], shape (n,); for IRM
            also ``"mu0"`` = E[Y | A = 0, X] and ``"mu1"`` = E[Y | A = 1, X].
        """
        k = self._site_index(site)
        Xa = as_float_array(X, "X")
        if Xa.ndim == 1 and self.q == 1:
            Xa = Xa[:, None]
        if Xa.ndim != 2 or Xa.shape[1] != self.q:
            raise ValueError(f"X: expected shape (n, {self.q}), got {Xa.shape}")
        nu = self._nuisances[k]
        g = _eval(nu.g, Xa)
        theta = self.theta[k]
        if self.model == "irm":
            pi = PI_FLOOR + (1.0 - 2.0 * PI_FLOOR) * _expit(_eval(nu.m[0], Xa))
            return {"m": pi, "g": g, "l": g + theta[0] * pi, "mu0": g, "mu1": g + theta[0]}
        m = np.column_stack([_eval(mj, Xa) for mj in nu.m])
        return {"m": m, "g": g, "l": m @ theta + g}

    def pooled_theta(self, inliers_only: bool = False) -> np.ndarray:
        """Size-weighted mean of the site parameters, ``sum_k n_k theta_k / sum_k n_k``.

        This is the population target of pooling all rows with site-specific nuisance functions:
        for PLR, because Var(V) = I at every site, the pooled partialling-out estimand is exactly
        this average; for IRM it is the average treatment effect of the pooled population.

        Parameters
        ----------
        inliers_only : bool, default False
            Average over the non-outlying sites only.

        Returns
        -------
        ndarray of shape (p,)
        """
        keep = ~self.is_outlier if inliers_only else np.ones(self.n_sites, dtype=bool)
        if not keep.any():
            raise ValueError("inliers_only: every site is an outlier, nothing to average")
        w = self.n_per_site[keep].astype(np.float64)
        return (w[:, None] * self.theta[keep]).sum(axis=0) / w.sum()

    def oracle_estimates(self) -> pd.DataFrame:
        """Per-site estimates from the orthogonal score with the true nuisance functions.

        PLR: ``theta_hat = (sum Vt Vt')^-1 sum Vt Yt`` with Vt = D - m(X), Yt = Y - l(X) and a
        sandwich standard error; IRM: the mean of the AIPW score with the true propensity and
        outcome regressions. No cross-fitting is needed since nothing is estimated; this is the
        efficiency bound a DML estimate approaches.

        Returns
        -------
        pandas.DataFrame
            Columns ``site``, ``term``, ``estimate``, ``std_err``, ``theta`` (the truth); one
            row per site and parameter component.
        """
        rows = []
        site_col = self.data["site"].to_numpy()
        for k, name in enumerate(self.site_names):
            sub = self.data.loc[site_col == name]
            X = sub[self.x_cols].to_numpy(dtype=np.float64)
            Y = sub["y"].to_numpy(dtype=np.float64)
            D = sub[self.d_cols].to_numpy(dtype=np.float64)
            nu = self.nuisance(k, X)
            n = Y.shape[0]
            if self.model == "irm":
                A, pi = D[:, 0], nu["m"]
                psi = (nu["mu1"] - nu["mu0"] + A * (Y - nu["mu1"]) / pi
                       - (1.0 - A) * (Y - nu["mu0"]) / (1.0 - pi))
                est = np.array([psi.mean()])
                se = np.array([psi.std(ddof=0) / np.sqrt(n)])
            else:
                Vt = D - nu["m"]
                Yt = Y - nu["l"]
                J = Vt.T @ Vt / n
                est = np.linalg.solve(J, Vt.T @ Yt / n)
                psi = (Yt - Vt @ est)[:, None] * Vt
                Omega = psi.T @ psi / n
                Jinv = np.linalg.inv(J)
                se = np.sqrt(np.diag(Jinv @ Omega @ Jinv.T) / n)
            for j, term in enumerate(self.d_cols):
                rows.append({"site": name, "term": term, "estimate": float(est[j]),
                             "std_err": float(se[j]), "theta": float(self.theta[k, j])})
        return pd.DataFrame(rows)


def _check_sizes(n_per_site: Any, n_sites: int) -> np.ndarray | None:
    """Validate ``n_per_site``; None means "unequal" (sizes drawn per site)."""
    if isinstance(n_per_site, str):
        if n_per_site != "unequal":
            raise ValueError(
                f"n_per_site: expected an int, a sequence of ints or 'unequal', got {n_per_site!r}"
            )
        return None
    if isinstance(n_per_site, numbers.Integral) and not isinstance(n_per_site, bool):
        return np.full(n_sites, _check_int(n_per_site, "n_per_site", 1), dtype=np.int64)
    try:
        sizes = list(n_per_site)
    except TypeError:
        raise ValueError(
            f"n_per_site: expected an int, a sequence of ints or 'unequal', got {n_per_site!r}"
        ) from None
    if len(sizes) != n_sites:
        raise ValueError(f"n_per_site: got {len(sizes)} sizes for n_sites={n_sites}")
    return np.array([_check_int(s, f"n_per_site[{i}]", 1) for i, s in enumerate(sizes)],
                    dtype=np.int64)


def _check_scenario_model(scenario: Any, model: Any, p: int) -> tuple[str, str]:
    if not isinstance(scenario, str):
        raise ValueError(f"scenario: must be one of {SCENARIOS}, got {scenario!r}")
    scenario = check_choice(scenario.upper(), "scenario", SCENARIOS)
    if not isinstance(model, str):
        raise ValueError(f"model: must be one of {MODELS}, got {model!r}")
    model = check_choice(model.lower(), "model", MODELS)
    if model == "irm" and p != 1:
        raise ValueError(
            f"p: the 'irm' model has a single binary treatment, so p must be 1, got {p}")
    return scenario, model


def _check_theta0(theta0: Any, p: int) -> np.ndarray:
    if theta0 is None:
        return np.zeros(p)
    th0 = as_float_array(theta0, "theta0")
    if th0.ndim == 0:
        th0 = np.full(p, float(th0))
    if th0.shape != (p,):
        raise ValueError(f"theta0: expected a scalar or a vector of length p={p}, "
                         f"got shape {th0.shape}")
    return th0


def _simulate_site(root: np.random.SeedSequence, k: int, size: int | None, th0: np.ndarray,
                   eta: float, outlier: bool, scenario: str, model: str, q: int,
                   chol: np.ndarray) -> tuple[np.ndarray, Any, np.ndarray, np.ndarray, np.ndarray]:
    """Site k's parameter, nuisance functions and rows ``(theta_k, nuisance, X, Y, D)``, each
    drawn from its own child stream of ``root`` so that one choice never shifts another."""
    def rng(purpose: int) -> np.random.Generator:
        return _child_rng(root, _SITE_KEY, k, purpose)

    p = th0.size
    theta_rng = rng(_P_THETA)
    u = _unit_vector(theta_rng, p)
    w = _unit_vector(theta_rng, p)  # drawn for every site so u_k never depends on outliers
    theta = OUTLIER_NORM * w if outlier else th0 + eta * u
    drawn_size = int(rng(_P_SIZE).integers(UNEQUAL_RANGE[0], UNEQUAL_RANGE[1] + 1))
    n = drawn_size if size is None else size
    nu = _site_nuisance(scenario, p, q, rng(_P_NUISANCE))
    X = rng(_P_X).standard_normal((n, q)) @ chol.T
    g = _eval(nu.g, X)
    if model == "irm":
        pi = PI_FLOOR + (1.0 - 2.0 * PI_FLOOR) * _expit(_eval(nu.m[0], X))
        D = (rng(_P_V).random(n) < pi).astype(np.int64)[:, None]
    else:
        m = np.column_stack([_eval(mj, X) for mj in nu.m])
        D = m + rng(_P_V).standard_normal((n, p))
    Y = D @ theta + g + rng(_P_E).standard_normal(n)
    return theta, nu, X, Y, D


def _site_frame(site_names: Sequence[str], n_k: np.ndarray,
                rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], p: int,
                q: int) -> pd.DataFrame:
    """One table of every site's rows: ``site``, ``y``, the treatment(s), the covariates."""
    d_cols = ["d"] if p == 1 else [f"d{j + 1}" for j in range(p)]
    x_cols = [f"x{j + 1}" for j in range(q)]
    X_all = np.concatenate([r[0] for r in rows], axis=0)
    D_all = np.concatenate([r[2] for r in rows], axis=0)
    columns: dict[str, Any] = {"site": np.repeat(np.array(site_names, dtype=object), n_k),
                               "y": np.concatenate([r[1] for r in rows])}
    for j, name in enumerate(d_cols):
        columns[name] = D_all[:, j]
    for j, name in enumerate(x_cols):
        columns[name] = X_all[:, j]
    return pd.DataFrame(columns)


def make_late_fusion_sites(
    n_sites: int = 10,
    n_per_site: int | Sequence[int] | str = 500,
    p: int = 1,
    q: int = 10,
    eta: float = 0.5,
    outlier_frac: float = 0.0,
    scenario: str = "S1",
    model: str = "plr",
    theta0: float | Sequence[float] | None = None,
    random_state: int | np.random.SeedSequence | np.random.Generator | None = None,
) -> LateFusionSites:
    """Simulate K sites for late fusion of DML estimates (see the module docstring for the DGP).

    Parameters
    ----------
    n_sites : int, default 10
        Number of sites K.
    n_per_site : int, sequence of int or "unequal", default 500
        Rows per site: one size for all, one size per site, or ``"unequal"`` for sizes drawn
        uniformly from the integers 100..500.
    p : int, default 1
        Dimension of the target parameter (number of treatments). Must be 1 for ``"irm"``.
    q : int, default 10
        Number of covariates (1 or 2 for kernel nuisance fusion).
    eta : float, default 0.5
        Heterogeneity: non-outlying sites have ``||theta_k - theta0|| = eta`` exactly.
    outlier_frac : float in [0, 1], default 0
        Fraction of outlying sites; ``round(outlier_frac * K)`` sites (halves rounded up) get
        ``theta_k = 2 * w_k`` with ``w_k`` a random unit vector.
    scenario : {"S1", "S2", "S3"}, default "S1"
        Nuisance functions identical, mildly different, or unrelated across sites.
    model : {"plr", "irm"}, default "plr"
        Partially linear regression, or a binary treatment with a constant effect ``theta_k``.
    theta0 : float, sequence of float or None, default None
        Center of the site parameters (a scalar is broadcast); None means the zero vector, so
        that outlying sites lie at distance 2 from the center.
    random_state : None, int, SeedSequence or Generator
        Source of all randomness. A Generator is advanced to draw the root entropy.

    Returns
    -------
    LateFusionSites

    Examples
    --------
    >>> sim = make_late_fusion_sites(n_sites=5, n_per_site=200, eta=0.3, random_state=1)
    >>> sim.data.shape
    (1000, 13)
    >>> sim.theta.shape
    (5, 1)
    """
    K = _check_int(n_sites, "n_sites", 1)
    p = _check_int(p, "p", 1)
    q = _check_int(q, "q", 1)
    sizes = _check_sizes(n_per_site, K)
    eta_f = float(as_float_array(eta, "eta", ndim=0))
    if eta_f < 0:
        raise ValueError(f"eta: must be >= 0, got {eta_f}")
    frac = float(as_float_array(outlier_frac, "outlier_frac", ndim=0))
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"outlier_frac: must lie in [0, 1], got {frac}")
    scenario, model = _check_scenario_model(scenario, model, p)
    th0 = _check_theta0(theta0, p)
    root = _as_seed_sequence(random_state)

    n_out = _round_half_up(frac * K)
    is_outlier = np.zeros(K, dtype=bool)
    is_outlier[_child_rng(root, _DESIGN_KEY).permutation(K)[:n_out]] = True

    chol = _x_cholesky(q)
    width = max(2, len(str(K)))
    site_names = tuple(f"site{k + 1:0{width}d}" for k in range(K))
    sites = [_simulate_site(root, k, None if sizes is None else int(sizes[k]),
                            th0, eta_f, bool(is_outlier[k]), scenario, model, q, chol)
             for k in range(K)]
    theta = np.array([site[0] for site in sites]).reshape(K, p)
    n_k = np.array([site[2].shape[0] for site in sites], dtype=np.int64)
    nuisances = [site[1] for site in sites]
    data = _site_frame(site_names, n_k, [site[2:] for site in sites], p, q)

    return LateFusionSites(
        data=data,
        theta=theta,
        is_outlier=is_outlier,
        site_names=site_names,
        n_per_site=n_k,
        theta0=th0,
        eta=eta_f,
        outlier_frac=frac,
        scenario=scenario,
        model=model,
        p=p,
        q=q,
        seed_entropy=root.entropy,
        _nuisances=tuple(nuisances),
    )
