"""The boundary of the compiled core: bound result types with bound status enums, input the core
refuses with a status instead of reading out of bounds, the head problem struct, and the old module
paths of the wrappers (deprecated for one release)."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from hetmtl import _core, _core_status, prox
from hetmtl.fusion import fused, kernel_grid_core
from hetmtl.fusion.fused import make_options
from hetmtl.prox import head_options

# old path -> (new module, a public name that must resolve to the very same object)
DEPRECATED = {
    "hetmtl.proximal": (prox, "solve_heads"),
    "hetmtl.fusion.solver": (fused, "fused_solve"),
    "hetmtl.fusion.grid_core": (kernel_grid_core, "fused_grid_solve"),
}


@pytest.fixture
def fresh_import():
    """Import a module anew (so its import-time warning fires) and restore sys.modules after."""
    saved = dict(sys.modules)

    def load(name: str):
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    yield load
    sys.modules.clear()
    sys.modules.update(saved)


@pytest.mark.parametrize("old", sorted(DEPRECATED))
def test_old_module_paths_warn_and_resolve_to_the_new_objects(fresh_import, old):
    new, name = DEPRECATED[old]
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated .* import {new.__name__} instead"):
        module = fresh_import(old)
    assert getattr(module, name) is getattr(new, name)
    assert set(module.__all__) == set(new.__all__)
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_old_private_names_of_the_solver_module_still_resolve(fresh_import):
    with pytest.warns(DeprecationWarning):
        solver = fresh_import("hetmtl.fusion.solver")
    assert solver._warn_unconverged is _core_status.check_fused
    assert solver._check_lambda is fused.check_lambda


def test_deprecated_solve_heads_takes_todays_keywords(fresh_import):
    with pytest.warns(DeprecationWarning):
        proximal = fresh_import("hetmtl.proximal")
    rng = np.random.default_rng(0)
    Z, H = rng.normal(size=(30, 2)), rng.normal(size=(30, 3))
    y = H @ np.array([1.0, -1.0, 0.5]) + rng.normal(size=30)
    kwargs = dict(loss_weights=np.ones(3), pen_beta=0.1, pen_alpha=0.0, beta_center=np.zeros(3),
                  alpha_center=None, alpha0=None, beta0=np.zeros((3, 3)), penalty_beta="l2",
                  penalty_alpha="none", tol=1e-10, max_iter=2000, n_threads=1, ridge=1e-6, warn=True)
    old = proximal.solve_heads(Z, H, y, np.array([10, 10, 10]), **kwargs)
    new = prox.solve_heads(Z, H, y, np.array([10, 10, 10]), **kwargs)
    np.testing.assert_array_equal(old.beta, new.beta)
    assert old.converged.all()


def test_results_are_bound_types_with_bound_statuses():
    gm = _core.geometric_median(np.eye(3), np.ones(3), _core.GeoMedianOptions())
    assert isinstance(gm, _core.GeoMedianResult) and gm.status == _core.ProxStatus.converged
    out, status = _core.group_soft_threshold(np.ones((2, 2)), np.zeros(2), np.ones(2))
    assert status == _core.ProxStatus.converged and out.shape == (2, 2)
    sums = _core.grid_sums(np.zeros((1, 1)), np.ones((1, 1)), np.zeros(1, np.int32), 1,
                           [np.array([-1.0, 1.0])], np.ones(1), _core.GridOptions())
    assert isinstance(sums, _core.GridSums) and sums.status == _core.GridStatus.ok
    assert sums.M.shape == (1, 2, 1, 1) and sums.M.flags.writeable
    pb = _core.FusedProblem(np.eye(2).reshape(1, 4).repeat(2, axis=0), np.ones(2), np.ones(2))
    fits = pb.solve(np.array([[0.0, 0.0], [1.0, 1.0]]), 0.1, make_options())
    assert isinstance(fits, _core.FusedFits) and fits.theta.shape == (1, 2, 2)
    assert _core.SolveStatus(int(fits.status[0])) == _core.SolveStatus.converged


def test_the_fused_core_answers_mismatched_shapes_with_a_status():
    invalid = int(_core.SolveStatus.invalid_input)
    not_square = _core.FusedProblem(np.ones((2, 3)), np.ones(2), np.ones(2))
    assert not not_square.valid_input
    assert not_square.solve(np.zeros((2, 1)), 0.1, make_options()).status[0] == invalid
    short_n = _core.FusedProblem(np.eye(2).reshape(1, 4).repeat(3, axis=0), np.ones(2), np.ones(3))
    assert not short_n.valid_input
    pb = _core.FusedProblem(np.eye(2).reshape(1, 4).repeat(3, axis=0), np.ones(3), np.ones(3))
    assert pb.valid_input
    assert pb.solve(np.zeros((2, 2)), 0.1, make_options()).status[0] == invalid
    assert np.isnan(pb.lambda_max(np.zeros((3, 1)))) and np.isnan(pb.pooled(np.zeros((4, 2)))).all()
    assert pb.solve(np.zeros((3, 2)), -1.0, make_options()).status[0] == invalid
    no_threads = make_options()
    no_threads.n_threads = 0
    assert pb.solve(np.zeros((3, 2)), 0.1, no_threads).status[0] == invalid
    assert np.all(pb.path(np.zeros((3, 2)), [1.0, np.nan], make_options()).status == invalid)
    assert np.all(pb.solve_batch(np.zeros((4, 2)), 0.1, make_options()).status == invalid)
    diag = _core.FusedProblem.diagonal(np.ones((3, 2)), np.ones(2), np.ones(3), True)
    assert not diag.valid_input
    point = _core.fused_pointwise(np.ones((3, 4)), np.ones((3, 5)), np.ones(3), np.ones(3), 0.1,
                                  make_options())
    assert np.all(point.status == invalid)
    with pytest.raises(ValueError, match="theta_hat: received arrays whose shapes"):
        _core_status.check_fused(point.status, point.kkt, np.full(4, 0.1))


def _head_problem(R=2, n=5, q=1, p=2):
    rng = np.random.default_rng(1)
    problem = _core.HeadProblem()
    problem.Z, problem.H = rng.normal(size=(R * n, q)), rng.normal(size=(R * n, p))
    problem.y = rng.normal(size=R * n)
    problem.offsets = list(range(0, R * n + 1, n))
    problem.loss_weights, problem.pen_alpha, problem.pen_beta, problem.ridge = (np.ones(R),) * 4
    problem.alpha_center, problem.beta_center = np.zeros(q), np.zeros(p)
    return problem


def test_the_head_problem_is_one_struct_the_core_validates():
    problem = _head_problem()
    res = _core.solve_heads(problem, head_options(tol=1e-10))
    assert isinstance(res, _core.HeadResult) and res.status_all == _core.ProxStatus.converged
    assert res.alpha.shape == (2, 1) and res.beta.shape == (2, 2) and res.fused_beta.dtype == bool
    problem.offsets = [0, 4, 9]  # ends short of the rows
    bad = _core.solve_heads(problem, head_options())
    assert bad.status_all == _core.ProxStatus.invalid_input
    with pytest.raises(ValueError, match="solve_heads: received inputs that do not describe a problem"):
        _core_status.check_heads(bad, warn=True)
    problem = _head_problem()
    problem.pen_beta = np.ones(3)  # one entry too many
    assert _core.solve_heads(problem, head_options()).status_all == _core.ProxStatus.invalid_input


@pytest.mark.parametrize("field, value", [
    ("Z", np.ones((4, 2), dtype=np.float32)),
    ("Z", np.ones((2, 4)).T),
    ("y", np.ones((4, 1))),
    ("beta0", [[1.0, 2.0]]),
])
def test_head_problem_fields_refuse_arrays_the_core_would_misread(field, value):
    with pytest.raises(TypeError, match=rf"{field}: expected a C-contiguous float64 array"):
        setattr(_core.HeadProblem(), field, value)

