"""DualEncoderMTL: scikit-learn conventions, reproducibility, diagnostics, transfer."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402

from dual_helpers import FAST, small_tasks  # noqa: E402
from hetmtl.dual import DualEncoderMTL, TransferredTask  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def fitted():
    X, y, task = small_tasks()
    return DualEncoderMTL(random_state=0, **FAST).fit(X, y, task), (X, y, task)


def test_params_clone_and_set_params():
    est = DualEncoderMTL(lam_beta=0.7, hidden=(5, 4), random_state=3)
    params = est.get_params()
    assert params["lam_beta"] == 0.7 and params["hidden"] == (5, 4) and params["lam_alpha"] is None
    twin = clone(est)
    assert twin.get_params() == params and not hasattr(twin, "net_")
    assert est.set_params(gamma=0.5) is est and est.gamma == 0.5


def test_fit_predict_shapes_and_reproducible(fitted):
    model, (X, y, task) = fitted
    pred = model.predict(X, task)
    assert pred.shape == y.shape and np.all(np.isfinite(pred))
    assert model.score(X, y, task) > 0.5
    again = DualEncoderMTL(random_state=0, **FAST).fit(X, y, task)
    np.testing.assert_array_equal(again.predict(X, task), pred)
    other = DualEncoderMTL(random_state=1, **FAST).fit(X, y, task)
    assert not np.array_equal(other.predict(X, task), pred)
    assert list(model.classes_) == ["north", "south", "west"]
    assert model.alpha_.shape == (3, 2) and model.beta_.shape == (3, 3) and model.intercept_.shape == (3,)


def test_pickle_round_trip(fitted):
    model, (X, y, task) = fitted
    back = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(back.predict(X, task), model.predict(X, task))


def test_lists_of_task_arrays_equal_table(fitted):
    model, (X, y, task) = fitted
    codes = np.repeat([0, 1, 2], [30, 45, 20])
    Xs = [X[codes == r] for r in range(3)]
    ys = [y[codes == r] for r in range(3)]
    m2 = DualEncoderMTL(random_state=0, **FAST).fit(Xs, ys)
    assert list(m2.classes_) == [0, 1, 2]
    np.testing.assert_allclose(np.concatenate(m2.predict(Xs)), model.predict(X, task), rtol=1e-5, atol=1e-6)
    assert m2.score(Xs, ys) == pytest.approx(model.score(X, y, task), abs=1e-6)


def test_row_order_and_labels_do_not_matter(fitted):
    model, (X, y, task) = fitted
    # predicting a shuffled subset gives the same values row by row (up to float32 rounding, which
    # depends on how the rows are grouped: an absolute margin for predictions near 0)
    idx = np.random.default_rng(0).permutation(len(y))[:40]
    np.testing.assert_allclose(model.predict(X[idx], task[idx]), model.predict(X, task)[idx], rtol=1e-6,
                               atol=1e-6)


def test_diagnostics_consistent(fitted):
    model, _ = fitted
    D = model.head_distances_.to_numpy()
    assert D.shape == (3, 3)
    np.testing.assert_allclose(D, D.T)
    np.testing.assert_array_equal(np.diag(D), 0)
    np.testing.assert_array_equal(model.fused_, model.center_distances_ == 0)
    # fused tasks share beta exactly
    f = np.nonzero(model.fused_)[0]
    if f.size > 1:
        assert np.all(D[np.ix_(f, f)] == 0)
    rep = model.task_report_
    assert list(rep.index) == ["north", "south", "west"]
    np.testing.assert_array_equal(rep["n_train"] + rep["n_val"], [30, 45, 20])
    assert np.all(rep["val_mse"] > 0) and rep["val_mse_single_task"].isna().all()
    assert np.all((model.orthogonality_ >= 0) & (model.orthogonality_ <= 1))
    assert len(model.history_) == model.n_epochs_ and 0 <= model.best_epoch_ < model.n_epochs_


def test_auto_lam_beta_keeps_the_grid_value_with_the_lowest_validation_loss(fitted):
    model, (X, y, task) = fitted
    path = model.lam_beta_path_
    assert path["lam_beta"].tolist() == [0.0, 0.3, 1.0]
    assert model.lam_beta_ == path["lam_beta"][path["val_loss"].idxmin()]
    # the kept first member is the single fit with that value given directly (same initial encoders)
    fixed = DualEncoderMTL(random_state=0, **{**FAST, "lam_beta": model.lam_beta_, "ensemble_size": 1}).fit(X, y, task)
    for name in ("alpha_", "beta_", "intercept_"):
        np.testing.assert_allclose(getattr(fixed, name), getattr(model, name), rtol=1e-10, atol=1e-12)
    assert fixed.lam_beta_path_["val_loss"].item() == path["val_loss"].min()
    # the validation loss of the path is the task-weighted mean of the per-task losses
    y2 = fixed.scaler_.y_scale ** 2
    assert path["val_loss"].min() * y2 == pytest.approx(fixed.validation_loss_.mean(), rel=1e-5)


def test_head_ridge_is_fixed_in_rows_per_task(fitted):
    model, _ = fitted
    n_train = model.task_report_["n_train"].to_numpy()
    np.testing.assert_allclose(model.config_.head_ridge, model.head_ridge / n_train)
    weighted = DualEncoderMTL(task_weights="size", head_ridge=8.0, lam_beta=0.3, random_state=0, **FAST)
    X, y, task = small_tasks()
    weighted.fit(X, y, task)
    w = weighted.config_.loss_weights
    np.testing.assert_allclose(weighted.config_.head_ridge, 8.0 * w / n_train)
    np.testing.assert_allclose(weighted.config_.head_ridge, 8.0 * 3 / n_train.sum())  # w_r / n_r = R / N


def test_large_penalty_fuses_all_and_zero_penalty_fuses_none():
    X, y, task = small_tasks(1)
    # (with specific_selection="validation" the validation rows, not the penalty, decide switch-off)
    big = DualEncoderMTL(lam_beta=100.0, lam_specific=100.0, specific_selection="penalty", random_state=0,
                         **FAST).fit(X, y, task)
    assert big.fused_.all() and np.all(big.head_distances_.to_numpy() == 0)
    assert big.specific_off_.all() and np.all(big.alpha_ == 0)
    none = DualEncoderMTL(lam_beta=0.0, lam_specific=0.0, random_state=0, **FAST).fit(X, y, task)
    assert not none.fused_.any() and not none.specific_off_.any()


@pytest.mark.parametrize("options", [
    dict(penalty="l2sq", center="mean"), dict(penalty="ball", lam_beta=0.1),
    dict(lam_alpha=0.2, orthogonality="raw", task_weights="size", lam_scaling="none"),
    dict(encoder_order="alternate", standardize="task", orthogonality="centered"),
    dict(latent_specific=0), dict(latent_shared=0), dict(verbose=True, device="cpu"),
])
def test_options_fit(options):
    X, y, task = small_tasks(2)
    params = {**FAST, **options}
    model = DualEncoderMTL(random_state=0, **params).fit(X, y, task)
    assert np.all(np.isfinite(model.predict(X, task)))
    if options.get("penalty") == "ball":  # distances in the penalty's (standardized) coordinates
        assert np.all(model.center_distances_ <= 0.1 * (1 + 1e-9))


def test_transfer_to_new_task(fitted):
    model, (X, y, task) = fitted
    rng = np.random.default_rng(11)
    Xn = rng.normal(size=(40, 3))
    yn = np.tanh(Xn[:, 0]) + 0.1 * Xn[:, 1]
    new = model.transfer(Xn, yn, random_state=0)
    assert isinstance(new, TransferredTask)
    assert new.predict(Xn).shape == (40,)
    assert new.beta_.shape == (3,)
    # the shared encoder is reused unchanged
    x = torch.randn(5, 3)
    torch.testing.assert_close(new.net_.shared.forward_shared(x), model.net_.shared.forward_shared(x))
    assert np.isfinite(new.score(Xn, yn))
    with pytest.raises(ValueError, match="X_new: has 2 columns"):
        model.transfer(Xn[:, :2], yn)
    # without task-specific encoders only the new head is fitted, on the shared encoding
    shared = DualEncoderMTL(random_state=0, **{**FAST, "latent_specific": 0}).fit(X, y, task)
    head_only = shared.transfer(Xn, yn, random_state=0)
    assert head_only.alpha_.shape == (0,) and np.isfinite(head_only.score(Xn, yn))
