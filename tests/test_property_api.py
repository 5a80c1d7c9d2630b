"""Property-based tests: malformed input to the public API either works (finite output) or raises
the package's documented errors, with a message that starts with the argument's name.

The documented errors: :class:`~hetmtl._util.validation.ArgumentError` (a ValueError naming the
argument) or another ValueError of the form ``"<argument>: <problem>"`` for bad values, and
FloatingPointError when finite input overflows. A TypeError, KeyError, IndexError or a NumPy
message leaking from inside is a failure.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from hetmtl.fusion import (KernelGrid, LateFusion, SiteDML, SiteSummary, fused_path,  # noqa: E402
                           fused_solve)

from fusion_helpers import residual_sites  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
# "<argument>: <problem>", the argument possibly indexed (folds[0].J, bounds['ml_l']).
_NAMED = re.compile(r"^[A-Za-z_][\w\[\]\.'\"/, -]*: \S")

# Scalars a user might pass by mistake where a number, size or option is expected.
odd_scalars = st.one_of(
    st.booleans(), st.none(), st.text(max_size=4),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-3, max_value=10**6),
    st.lists(st.floats(-1, 1), max_size=2), st.just(np.float32(0.5)), st.just(np.int64(3)),
    st.complex_numbers(max_magnitude=2),
)


def odd_arrays(max_dims: int = 3):
    """Float arrays of any small shape, with NaN, infinities, huge and tiny values."""
    return hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=3),
                      elements=st.floats(allow_nan=True, allow_infinity=True, width=64))


def call_or_documented_error(fn, *args, **kwargs):
    """The call's result, or None after checking that it raised a documented error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and disclosure warnings are fine here
        try:
            return fn(*args, **kwargs)
        except FloatingPointError:
            return None
        except ValueError as exc:
            assert _NAMED.match(str(exc)), f"unnamed error: {exc!r}"
            return None


def _finite(*arrays) -> None:
    for a in arrays:
        assert np.all(np.isfinite(np.asarray(a, dtype=float)))


_SUMMARIES = residual_sites(np.random.default_rng(2), np.array([0.0, 0.3, 1.0]), [150, 150, 150])[0]


@SETTINGS
@given(theta_hat=st.one_of(odd_arrays(), odd_scalars), W=st.one_of(odd_arrays(), odd_scalars),
       n=st.one_of(odd_arrays(1), odd_scalars), lam=odd_scalars,
       tol=st.one_of(odd_scalars, st.just(1e-10)), max_iter=st.one_of(odd_scalars, st.just(100)))
def test_fused_solve(theta_hat, W, n, lam, tol, max_iter):
    fit = call_or_documented_error(fused_solve, theta_hat, W, n, lam, tol=tol, max_iter=max_iter)
    if fit is not None:
        _finite(fit.theta, fit.center)


@SETTINGS
@given(theta_hat=hnp.arrays(np.float64, (3, 2), elements=st.floats(-1e6, 1e6)),
       scale=st.floats(1e-200, 1e200), lambdas=st.one_of(odd_arrays(1), odd_scalars, st.none()),
       n_lambda=odd_scalars)
def test_fused_path(theta_hat, scale, lambdas, n_lambda):
    W = np.broadcast_to(scale * np.eye(2), (3, 2, 2))
    path = call_or_documented_error(fused_path, theta_hat, W, [10, 20, 30], lambdas, n_lambda=n_lambda)
    if path is not None:
        _finite(path.theta, path.center)


_LATE_FUSION_PARAMS = ["lam", "n_boot", "tol", "max_iter", "C", "n_lambda", "lambda_ratio", "level",
                       "slab_scale", "weight", "penalty", "inference", "method", "n_threads"]


@SETTINGS
@given(name=st.sampled_from(_LATE_FUSION_PARAMS), value=odd_scalars)
def test_late_fusion_parameters(name, value):
    params = {"inference": "none", name: value}
    if name in ("method", "slab_scale"):
        params.setdefault("lam", None)
    fit = call_or_documented_error(lambda: LateFusion(**params).fit(_SUMMARIES))
    if fit is not None:
        _finite(fit.theta_, fit.center_)


@SETTINGS
@given(coef=st.one_of(odd_scalars, st.text(max_size=6)))
def test_heterogeneity_coef(coef):
    fit = LateFusion(lam=0.1, inference="none").fit(_SUMMARIES)
    out = call_or_documented_error(fit.heterogeneity, coef=coef)
    if out is not None:
        assert np.isfinite(out.fixed.estimate)


@SETTINGS
@given(theta=st.one_of(odd_arrays(1), odd_scalars), J=st.one_of(odd_arrays(2), odd_scalars),
       Omega=st.one_of(odd_arrays(2), odd_scalars), n=odd_scalars)
def test_site_summary(theta, J, Omega, n):
    s = call_or_documented_error(SiteSummary, theta, J, Omega, n)
    if s is not None:
        _finite(s.theta, s.cov)


@SETTINGS
@given(estimate=st.one_of(odd_arrays(1), odd_scalars), se=st.one_of(odd_arrays(1), odd_scalars),
       n=st.one_of(st.none(), odd_scalars))
def test_site_summary_from_estimate(estimate, se, n):
    s = call_or_documented_error(SiteSummary.from_estimate, estimate, se, n=n)
    if s is not None:
        _finite(s.theta, s.cov)


def _site_rows(n=40):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 2))
    d = rng.binomial(1, 0.5, n).astype(float)
    return X @ [1.0, -1.0] + d + rng.normal(size=n), d, X


@settings(max_examples=40, deadline=None, derandomize=True)
@given(name=st.sampled_from(["n_folds", "n_rep", "clip", "model", "site", "ml_l"]), value=odd_scalars)
def test_site_dml_parameters(name, value):
    y, d, X = _site_rows()
    params = {"ml_l": "linear", "ml_m": "linear", "n_folds": 2, "random_state": 0, name: value}
    fit = call_or_documented_error(lambda: SiteDML(**params).fit(y=y, d=d, x=X))
    if fit is not None:
        _finite(fit.coef_, fit.se_)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(which=st.sampled_from(["y", "d", "x"]), value=st.one_of(odd_arrays(2), odd_scalars))
def test_site_dml_data(which, value):
    y, d, X = _site_rows()
    data = {"y": y, "d": d, "x": X, which: value}
    fit = call_or_documented_error(
        lambda: SiteDML(ml_l="linear", ml_m="linear", n_folds=2, random_state=0).fit(**data))
    if fit is not None:
        _finite(fit.coef_, fit.se_)


@SETTINGS
@given(axes=st.one_of(odd_arrays(2), odd_scalars, st.lists(odd_arrays(1), max_size=4)),
       support=odd_scalars, kernel=st.one_of(odd_scalars, st.sampled_from(["gaussian", "epanechnikov"])))
def test_kernel_grid(axes, support, kernel):
    grid = call_or_documented_error(KernelGrid, axes=axes, support=support, kernel=kernel)
    if grid is not None:
        _finite(*grid.axes)


_NEURAL_PARAMS = ["lr", "max_epochs", "patience", "validation_fraction", "weight_decay", "n_threads",
                  "latent_shared", "latent_specific", "gamma", "encoder_steps", "head_tol"]


# Sizes stay below what allocates gigabytes: a width of a million is a valid, if huge, request.
neural_scalars = odd_scalars.filter(lambda v: not isinstance(v, int) or v <= 5000)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(name=st.sampled_from(_NEURAL_PARAMS), value=neural_scalars)
def test_dual_encoder_parameters(name, value):
    dual = pytest.importorskip("hetmtl.dual")
    rng = np.random.default_rng(0)
    X, y, task = rng.normal(size=(40, 3)), rng.normal(size=40), np.repeat([0, 1], 20)
    params = {"max_epochs": 2, "random_state": 0, name: value}
    if name == "max_epochs" and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        params[name] = min(int(value), 3) if value > 0 else value  # keep a valid fit short
    model = call_or_documented_error(lambda: dual.DualEncoderMTL(**params).fit(X, y, task))
    if model is not None:
        _finite(model.predict(X, task))
