"""Task-specific encoders of the dual encoder: the warm-up of the penalty on alpha, the switch-off
decided on validation rows (by a paired test by default), and the per-task diagnostics."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hetmtl.dual import DualEncoderMTL  # noqa: E402
from hetmtl.dual._specific import select_specific  # noqa: E402
from hetmtl.dual.alternating import AltConfig, Heads, make_data, solve_task_heads  # noqa: E402
from hetmtl.simulate import make_dual_encoder_tasks  # noqa: E402

pytestmark = pytest.mark.torch


def config(R: int, pen_alpha: float = 0.0, penalty_alpha: str = "l2", warmup: int = 0) -> AltConfig:
    return AltConfig(loss_weights=np.ones(R), pen_beta=np.zeros(R), pen_alpha=np.full(R, pen_alpha),
                     penalty_beta="none", penalty_alpha=penalty_alpha, center="mean", gamma=0.0,
                     orthogonality="standardized", encoder_steps=1, encoder_order="joint", lr=1e-2,
                     weight_decay=0.0, max_epochs=1, patience=1, head_tol=1e-9, head_ridge=1e-3,
                     learn_alpha_center=False, warmup_rounds=warmup)


def test_penalty_on_alpha_is_off_during_warmup_then_ramped_in():
    cfg = config(2, pen_alpha=0.6, warmup=3)
    for epoch in (-1, 0, 1, 2):
        assert cfg.at_round(epoch).penalty_alpha == "none"
    np.testing.assert_allclose(cfg.at_round(3).pen_alpha, 0.2)
    np.testing.assert_allclose(cfg.at_round(4).pen_alpha, 0.4)
    assert cfg.at_round(5) is cfg and cfg.at_round(50) is cfg
    ball = config(2, pen_alpha=0.6, penalty_alpha="ball", warmup=2)
    np.testing.assert_allclose(ball.at_round(2).pen_alpha, 1.2)  # a radius loosens instead
    assert ball.at_round(1).penalty_alpha == "none"
    assert config(2, pen_alpha=0.6).at_round(-1).penalty_alpha == "l2"  # no warm-up: penalty from the start


class FixedEncoders:
    """Stand-in for a DualNet whose encodings are columns of X: S = X[:, :1], C = X[:, 1:]."""

    q, p = 1, 2

    def encode(self, X, layout, blocks=None):
        return X[:, :1], X[:, 1:], None, None


def two_tasks(n: int, seed: int, slopes=(1.5, 0.0)):
    """Task 0 depends on its specific encoding (slope ``slopes[0]``), task 1 by default does not."""
    rng = np.random.default_rng(seed)
    codes = np.repeat([0, 1], n)
    X = rng.normal(size=(2 * n, 3))
    y = X[:, 1] - 0.5 * X[:, 2] + np.where(codes == 0, slopes[0], slopes[1]) * X[:, 0] + 0.3 * rng.normal(size=2 * n)
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return make_data(f(X), f(y), torch.as_tensor(codes), 2, np.array([n, n]), y)


def test_validation_decides_which_specific_encoders_stay_on():
    net, train, val = FixedEncoders(), two_tasks(150, 0), two_tasks(150, 1)
    # A penalty so strong that it zeroes every specific head on the training rows.
    cfg = config(2, pen_alpha=50.0)
    S, C = train.X[:, :1].double().numpy(), train.X[:, 1:].double().numpy()
    solved = solve_task_heads(S, C, train.y_np, train.sizes, Heads.zeros(2, 1, 2), cfg)
    assert np.all(solved.alpha == 0)
    heads, ev = select_specific(net, train, val, solved, cfg)
    # task 0 is switched back on by its validation rows; task 1 gains nothing that matters
    assert ev.used[0] and heads.alpha[0, 0] == pytest.approx(1.5, abs=0.15)
    assert ev.gain[0] > 1.0 and abs(ev.gain[1]) < 0.05
    np.testing.assert_array_equal(ev.used, np.any(heads.alpha != 0, axis=1))
    np.testing.assert_array_equal(ev.used, ev.val_mse_with < ev.val_mse_without)
    # measuring only: the heads stay as the penalty left them
    kept, measured = select_specific(net, train, val, solved, cfg, apply=False)
    assert kept is solved and not measured.used.any()
    np.testing.assert_allclose(measured.val_mse_without, ev.val_mse_without)


def unpenalized_heads(train):
    cfg = replace(config(2), penalty_alpha="none")
    S, C = train.X[:, :1].double().numpy(), train.X[:, 1:].double().numpy()
    return solve_task_heads(S, C, train.y_np, train.sizes, Heads.zeros(2, 1, 2), cfg), cfg


def test_paired_test_switches_off_only_an_encoder_that_hurts():
    # task 1's specific part fits its training rows but does nothing on its validation rows
    net, train, val = FixedEncoders(), two_tasks(150, 0, (1.5, 1.5)), two_tasks(150, 1, (1.5, 0.0))
    solved, cfg = unpenalized_heads(train)
    heads, ev = select_specific(net, train, val, solved, cfg, level=0.05)
    assert ev.used.tolist() == [True, False]
    assert ev.p_value[1] < 1e-6 < 0.5 < ev.p_value[0]
    assert heads.alpha[1, 0] == 0 and heads.alpha[0, 0] != 0


def test_paired_test_keeps_weak_real_signals_that_ten_validation_rows_cannot_confirm():
    """Both tasks have a real but weak specific signal (slope 0.15, noise SD 0.3), 40 training and
    10 validation rows. Choosing on the smaller validation MSE switched the encoder off in 19 of 60
    tasks; the paired test (off only when it finds the encoder hurts) in 1."""
    off_smaller, off_test = [], []
    for seed in range(30):
        net, train, val = FixedEncoders(), two_tasks(40, seed, (0.15, 0.15)), two_tasks(10, 100 + seed, (0.15, 0.15))
        solved, cfg = unpenalized_heads(train)
        off_smaller.append(~select_specific(net, train, val, solved, cfg)[1].used)
        off_test.append(~select_specific(net, train, val, solved, cfg, level=0.05)[1].used)
    assert np.mean(off_test) <= 0.1
    assert np.mean(off_smaller) >= np.mean(off_test) + 0.15


def test_specific_part_without_signal_is_switched_off_with_its_heads_refitted():
    net, train, val = FixedEncoders(), two_tasks(400, 4), two_tasks(400, 5)
    cfg = replace(config(2), penalty_alpha="none")
    S, C = train.X[:, :1].double().numpy(), train.X[:, 1:].double().numpy()
    solved = solve_task_heads(S, C, train.y_np, train.sizes, Heads.zeros(2, 1, 2), cfg)
    assert np.all(solved.alpha[:, 0] != 0)  # unpenalized, both heads use the specific encoding
    heads, ev = select_specific(net, train, val, solved, cfg)
    assert list(ev.used) == [True, False]
    # switched off: alpha is 0 and the task's other heads are refitted without the specific part
    alone = solve_task_heads(np.zeros_like(S), C, train.y_np, train.sizes, Heads.zeros(2, 1, 2), cfg)
    assert heads.alpha[1, 0] == 0
    # (up to the small ridge, which select_specific applies to unit-variance encodings)
    np.testing.assert_allclose(heads.beta[1], alone.beta[1], atol=1e-3)
    np.testing.assert_allclose(heads.intercept[1], alone.intercept[1], atol=1e-3)
    np.testing.assert_allclose(heads.alpha[0], solved.alpha[0])


def specific_design(seed: int):
    """A reduced version of the study's design: a shared two-factor part and a strong task-specific
    part along each task's own directions."""
    return make_dual_encoder_tasks(4, 120, 6, n_shared=2, signal=2.0, specific=1.5, noise=0.5,
                                   covariate_shift=1.0, test_fraction=0.25, random_state=seed)


REDUCED = dict(lam_beta=0.0, max_epochs=60, patience=10, negative_transfer="off", n_threads=1)


@pytest.fixture(scope="module")
def fits():
    out = []
    for seed in (0, 1):
        ds = specific_design(seed)
        new = DualEncoderMTL(random_state=seed, **REDUCED).fit(ds.X, ds.y, ds.task)
        old = DualEncoderMTL(random_state=seed, latent_shared=8, lam_specific=1.0, specific_selection="validation",
                             **REDUCED).fit(ds.X, ds.y, ds.task)
        out.append((ds, new, old))
    return out


def test_tasks_with_a_specific_signal_keep_their_encoders(fits):
    off_new = np.mean([new.specific_off_.mean() for _, new, _ in fits])
    off_old = np.mean([old.specific_off_.mean() for _, _, old in fits])
    # The group lasso and a choice on the smaller validation MSE switched off some of them.
    assert off_new <= 0.125
    assert off_old >= off_new + 0.125


def test_diagnostics_report_use_and_gain_of_every_specific_encoder(fits):
    ds, model, _ = fits[0]
    rep = model.task_report_
    assert {"specific_used", "specific_gain", "specific_off"} <= set(rep.columns)
    np.testing.assert_array_equal(rep["specific_used"].to_numpy(), ~model.specific_off_)
    np.testing.assert_array_equal(model.specific_used_, np.any(model.alpha_ != 0, axis=1))
    # a task keeps its encoder unless the paired test finds it worse with it
    np.testing.assert_array_equal(model.specific_used_, ~(model.specific_p_value_ <= 0.05))
    np.testing.assert_array_equal(rep["specific_p_value"].to_numpy(), model.specific_p_value_)
    text = model.report()
    assert "specific used" in text and "specific adds" in text
    assert f"used by {int(model.specific_used_.sum())} of 4 tasks" in text
    assert model.lam_beta_path_["n_specific_used"].iloc[0] == model.specific_used_.sum()


def test_shared_only_has_no_specific_diagnostics():
    ds = specific_design(3)
    model = DualEncoderMTL(latent_specific=0, random_state=0, **{**REDUCED, "max_epochs": 5}).fit(ds.X, ds.y, ds.task)
    assert not model.specific_used_.any() and np.isnan(model.specific_gain_).all()


def test_lam_beta_search_heads_reuses_one_training_run():
    ds = specific_design(4)
    opts = {**REDUCED, "max_epochs": 15, "lam_beta": "auto", "lam_beta_grid": (0.0, 5.0)}
    model = DualEncoderMTL(random_state=0, **opts).fit(ds.X, ds.y, ds.task)
    path = model.lam_beta_path_
    assert len(path) == 2 and path["best_epoch"].nunique() == 1  # one training run
    assert path["n_fused"].iloc[1] >= path["n_fused"].iloc[0]
    assert model.lam_beta_ == path["lam_beta"].iloc[int(np.argmin(path["val_loss"]))]
    with pytest.raises(ValueError, match="lam_beta_search"):
        DualEncoderMTL(lam_beta_search="grid").fit(ds.X, ds.y, ds.task)
    with pytest.raises(ValueError, match="warmup_rounds"):
        DualEncoderMTL(warmup_rounds=-1).fit(ds.X, ds.y, ds.task)
    with pytest.raises(ValueError, match="specific_selection"):
        DualEncoderMTL(specific_selection="always").fit(ds.X, ds.y, ds.task)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_matches_cpu_up_to_rounding():
    ds = specific_design(5)
    opts = {**REDUCED, "max_epochs": 5, "lam_beta": "auto"}
    cpu = DualEncoderMTL(random_state=0, **opts).fit(ds.X, ds.y, ds.task)
    gpu = DualEncoderMTL(random_state=0, device="cuda", **opts).fit(ds.X, ds.y, ds.task)
    assert next(gpu.net_.parameters()).device.type == "cuda"
    np.testing.assert_allclose(gpu.predict(ds.X_test, ds.task_test), cpu.predict(ds.X_test, ds.task_test),
                               rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(gpu.specific_used_, cpu.specific_used_)
