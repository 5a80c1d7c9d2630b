"""Linear Neyman-orthogonal scores of the site DML models and their moments.

Every score used by :class:`hetmtl.fusion.SiteDML` has the *residual-regression* form::

    psi_i(theta) = Dt_i (Yt_i - Dt_i' theta),        Dt_i in R^p, Yt_i in R,

so that the estimate solves a least-squares problem and the moments are closed form:

- PLR (partialling out): ``Yt = Y - l(X)``, ``Dt = D - m(X)``.
- IRM / ATE (AIPW): ``Dt = 1`` and ``Yt`` is the AIPW pseudo-outcome
  ``g1 - g0 + A (Y - g1) / m - (1 - A) (Y - g0) / (1 - m)``; then ``psi = Yt - theta``.
- Linear CATE (R-learner): ``Yt = Y - l(X)``, ``Dt = (A - m(X)) phi(X)``.

With ``G = sum Dt Dt'`` the estimate is ``theta = G^-1 sum Dt Yt``, the Jacobian is
``J = (1/n) sum d psi / d theta = -G / n`` and the score covariance is
``Omega = (1/n) sum psi psi'``, or with clusters ``(1/n) sum_c S_c S_c'`` where ``S_c`` sums the
scores of cluster ``c`` (the cluster-robust, Liang-Zeger form).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Relative size of the smallest eigenvalue of sum Dt Dt' below which theta counts as unidentified.
_SINGULAR_RTOL = 1e-10


@dataclass(frozen=True)
class LinearScore:
    """Score ``psi_i(theta) = dt_i (yt_i - dt_i' theta)`` evaluated on cross-fitted nuisances.

    Attributes
    ----------
    dt : ndarray of shape (n, p)
        Residualized regressors (for the ATE score a column of ones).
    yt : ndarray of shape (n,)
        Residualized outcome (for the ATE score the AIPW pseudo-outcome).
    d_raw : ndarray of shape (n, p), optional
        The regressors before residualization (PLR: ``D``; R-learner: ``A phi``). They set the
        scale against which ``sum Dt Dt'`` counts as singular: a treatment that the covariates
        explain exactly leaves residuals that are tiny only relative to its own variation.
    """

    dt: np.ndarray
    yt: np.ndarray
    d_raw: np.ndarray | None = None

    @property
    def dim(self) -> int:
        """Number of target coordinates p."""
        return self.dt.shape[1]

    def _rows(self, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if rows is None:
            return self.dt, self.yt
        return self.dt[rows], self.yt[rows]

    def solve(self, rows: np.ndarray | None = None, *, site: str = "site", where: str = "") -> np.ndarray:
        """Root of the mean score over ``rows`` (all rows when None).

        Parameters
        ----------
        rows : ndarray of int, optional
            Row indices to use.
        site : str
            Site name, used in the error message.
        where : str
            Extra context for the error message (for example which fold).

        Returns
        -------
        ndarray of shape (p,)

        Raises
        ------
        ValueError
            If ``sum Dt Dt'`` over the rows is singular: the design does not identify theta.
        """
        dt, yt = self._rows(rows)
        gram = dt.T @ dt
        eig = np.linalg.eigvalsh(gram)
        scale = eig[-1]
        if self.d_raw is not None:
            raw = self.d_raw if rows is None else self.d_raw[rows]
            raw = raw - raw.mean(axis=0)
            scale = max(scale, np.linalg.eigvalsh(raw.T @ raw)[-1])
        if not (eig[-1] > 0 and eig[0] > _SINGULAR_RTOL * scale):
            raise ValueError(
                f"site {site!r}: the design does not identify theta{where} (sum Dt Dt' is singular, "
                f"smallest/largest eigenvalue {eig[0]:.3g}/{eig[-1]:.3g}); check for a treatment "
                "explained by the covariates or collinear basis columns"
            )
        return np.linalg.solve(gram, dt.T @ yt)

    def psi(self, theta: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Scores at ``theta``, shape (n_rows, p)."""
        dt, yt = self._rows(rows)
        return dt * (yt - dt @ theta)[:, None]

    def moments(self, theta: np.ndarray, rows: np.ndarray | None = None,
                groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Jacobian ``J`` and score covariance ``Omega`` over ``rows``, both means over rows.

        Parameters
        ----------
        theta : ndarray of shape (p,)
            Where the scores are evaluated.
        rows : ndarray of int, optional
            Row indices to use (all rows when None).
        groups : ndarray of int of shape (n,), optional
            Cluster codes ``0..G-1`` for every row of the full sample; the score covariance is then
            cluster-robust, ``(1/n_rows) sum_c S_c S_c'``.

        Returns
        -------
        J, Omega : ndarray of shape (p, p)
        """
        dt, _ = self._rows(rows)
        n = dt.shape[0]
        J = -(dt.T @ dt) / n
        psi = self.psi(theta, rows)
        if groups is None:
            Omega = psi.T @ psi / n
        else:
            g = groups if rows is None else groups[rows]
            n_groups = int(groups.max()) + 1
            sums = np.column_stack([np.bincount(g, weights=psi[:, j], minlength=n_groups)
                                    for j in range(psi.shape[1])])
            Omega = sums.T @ sums / n
        return J, 0.5 * (Omega + Omega.T)


def sandwich(J: np.ndarray, Omega: np.ndarray, n: float) -> np.ndarray:
    """Sandwich covariance ``J^-1 Omega J^-T / n`` (symmetrized)."""
    Jinv_Omega = np.linalg.solve(J, Omega)
    V = np.linalg.solve(J, Jinv_Omega.T).T / n
    return 0.5 * (V + V.T)


def plr_score(y: np.ndarray, d: np.ndarray, l_hat: np.ndarray, m_hat: np.ndarray) -> LinearScore:
    """Partialling-out PLR score: ``Yt = y - l_hat``, ``Dt = d - m_hat``.

    Parameters
    ----------
    y : ndarray of shape (n,)
    d : ndarray of shape (n, p)
    l_hat : ndarray of shape (n,)
        Cross-fitted predictions of E[Y | X].
    m_hat : ndarray of shape (n, p)
        Cross-fitted predictions of E[D | X], one column per treatment.
    """
    return LinearScore(dt=d - m_hat, yt=y - l_hat, d_raw=d)


def aipw_ate_score(y: np.ndarray, a: np.ndarray, g0_hat: np.ndarray, g1_hat: np.ndarray,
                   m_hat: np.ndarray, clip: float) -> LinearScore:
    """AIPW score of the average treatment effect, ``psi = pseudo-outcome - theta``.

    Parameters
    ----------
    y : ndarray of shape (n,)
    a : ndarray of shape (n,)
        Binary treatment coded 0/1.
    g0_hat, g1_hat : ndarray of shape (n,)
        Cross-fitted outcome regressions among controls and among treated.
    m_hat : ndarray of shape (n,)
        Cross-fitted propensities; clipped to ``[clip, 1 - clip]`` here.
    clip : float
        Propensity clipping level.
    """
    m = np.clip(m_hat, clip, 1.0 - clip)
    pseudo = g1_hat - g0_hat + a * (y - g1_hat) / m - (1.0 - a) * (y - g0_hat) / (1.0 - m)
    return LinearScore(dt=np.ones((y.shape[0], 1)), yt=pseudo)


def rlearner_score(y: np.ndarray, a: np.ndarray, l_hat: np.ndarray, m_hat: np.ndarray,
                   phi: np.ndarray) -> LinearScore:
    """R-learner score of a linear CATE ``tau(x) = phi(x)' beta``.

    ``Yt = y - l_hat`` and ``Dt = (a - m_hat) phi``: the PLR score with the treatment interacted
    with the basis.

    Parameters
    ----------
    y : ndarray of shape (n,)
    a : ndarray of shape (n,)
        Binary treatment coded 0/1.
    l_hat : ndarray of shape (n,)
        Cross-fitted predictions of E[Y | X].
    m_hat : ndarray of shape (n,)
        Cross-fitted propensities.
    phi : ndarray of shape (n, p)
        Basis evaluated at the rows' covariates.
    """
    return LinearScore(dt=(a - m_hat)[:, None] * phi, yt=y - l_hat, d_raw=a[:, None] * phi)
