"""The fused solver ends with status "stagnated" when tol is below what double precision can
reach, instead of running to max_iter, and a long solve answers Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hetmtl.fusion import ConvergenceWarning, fused_path, fused_solve


def _problem(K=12, p=3, seed=0):
    rng = np.random.default_rng(seed)
    theta_hat = rng.normal(size=(K, p)) + 100.0   # far from zero: rounding matters
    A = rng.normal(size=(K, p, p))
    W = A @ A.transpose(0, 2, 1) + p * np.eye(p)
    n = rng.integers(50, 500, size=K).astype(float)
    return theta_hat, W, n


@pytest.mark.parametrize("p", [1, 3, 7])
@pytest.mark.parametrize("penalty", ["l2", "l2sq"])
def test_unreachable_tolerance_stagnates_quickly(p, penalty):
    theta_hat, W, n = _problem(p=p)
    reference = fused_solve(theta_hat, W, n, 0.5, penalty=penalty, tol=1e-10)
    assert reference.status == "converged" and reference.converged
    with pytest.warns(ConvergenceWarning, match="stagnated: the iterates stopped changing"):
        fit = fused_solve(theta_hat, W, n, 0.5, penalty=penalty, tol=1e-300, max_iter=1_000_000)
    assert fit.status == "stagnated" and not fit.converged
    assert fit.iterations < 1000          # stopped by stagnation, not by max_iter
    # The point is as good as the arithmetic allows: at least as good as a reachable tolerance.
    assert fit.kkt <= 1e-9
    np.testing.assert_allclose(fit.theta, reference.theta, rtol=1e-9, atol=1e-9)


def test_path_reports_a_status_per_lambda():
    theta_hat, W, n = _problem(p=2)
    path = fused_path(theta_hat, W, n, n_lambda=5, tol=1e-10)
    assert list(path.status) == ["converged"] * 5
    with pytest.warns(ConvergenceWarning, match="stagnated"):
        path = fused_path(theta_hat, W, n, lambdas=[1.0, 0.1, 0.0], tol=1e-300, max_iter=1_000_000)
    # A fit whose residual is exactly zero (every site fused) still converges.
    assert set(path.status) <= {"converged", "stagnated"} and "stagnated" in set(path.status)
    assert np.all(path.iterations < 1000)


def test_reachable_tolerance_still_converges():
    theta_hat, W, n = _problem(K=40, p=5, seed=3)
    fit = fused_solve(theta_hat, W, n, 2.0, tol=1e-12)
    assert fit.status == "converged" and fit.kkt <= 1e-12


_LONG_SOLVE = textwrap.dedent("""
    import sys, time
    import numpy as np
    from hetmtl.fusion.fused import make_options, prepare_problem, solve_batch

    rng = np.random.default_rng(0)
    K, p, B = 6, 60, 40000
    theta_hat = rng.normal(size=(K, p))
    A = rng.normal(size=(K, p, p))
    problem = prepare_problem(theta_hat, A @ A.transpose(0, 2, 1) + np.eye(p), np.full(K, 100.0))
    draws = theta_hat + rng.normal(size=(B, K, p))
    options = make_options("l2", 1e-12, 100000, 1)
    start = time.perf_counter()
    solve_batch(problem, draws[:200], 3.0, options)        # this machine's pace, as a yardstick
    expected = (time.perf_counter() - start) * B / 200
    print("solving", flush=True)
    start = time.perf_counter()
    try:
        solve_batch(problem, draws, 3.0, options)
    except KeyboardInterrupt:
        print(f"interrupted after {(time.perf_counter() - start) / expected:.4f} of the batch", flush=True)
        sys.exit(3)
    print("finished", flush=True)
""")


def test_ctrl_c_stops_a_long_solve():
    # SIGINT a second after a long batch starts must end it through the core's signal check,
    # raising KeyboardInterrupt from inside the call.
    child = subprocess.Popen([sys.executable, "-c", _LONG_SOLVE], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        # (An editable install may report its rebuild check on stdout first.)
        while (line := child.stdout.readline()) and line.strip() != "solving":
            pass
        assert line.strip() == "solving"
        subprocess.run([sys.executable, "-c", "import time; time.sleep(1.0)"], check=True)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 3, err
    # Stopped inside the call, long before the batch would have ended on this machine (without
    # the core's signal check Python would only see the signal once all draws were solved).
    share = float(out.split("interrupted after ")[1].split()[0])
    assert share < 0.5, out
