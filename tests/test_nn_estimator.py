"""The estimator base and the training loop that the dual-encoder and block-wise regressors share."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from hetmtl.blockwise import BlockLayout, HBIImputer, SingleTaskBlockMLP, TwoPathwayMTL  # noqa: E402
from hetmtl.dual import DualEncoderMTL, HardSharingMTL, PooledMLP, SingleTaskMLP  # noqa: E402
from hetmtl.nn import EarlyStopping, EpochStep, MultiTaskRegressor, train_epochs  # noqa: E402

REGRESSORS = [DualEncoderMTL, SingleTaskMLP, PooledMLP, HardSharingMTL, TwoPathwayMTL, SingleTaskBlockMLP]


def dual_data(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(2 * n, 3)), columns=["a", "b", "c"])
    task = np.repeat(["s", "t"], n)
    y = X["a"].to_numpy() - np.where(task == "s", 1.0, -1.0) * X["b"].to_numpy() + 0.1 * rng.normal(size=2 * n)
    return X, y, task


def block_data(n: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    layout = BlockLayout({"x0": ["a", "b"], "x1": ["c"], "x2": ["d"]}, anchor="x0",
                         observed={"s": ["x1"], "t": ["x2"], "u": ["x1", "x2"]})
    task = np.repeat(["s", "t", "u"], n)
    X = pd.DataFrame(rng.normal(size=(3 * n, 4)), columns=list("abcd"))
    y = X["a"].to_numpy() + 0.1 * rng.normal(size=3 * n)
    X.loc[task == "s", "d"] = np.nan
    X.loc[task == "t", "c"] = np.nan
    return layout, X, y, task


DUAL_FAST = dict(latent_shared=2, latent_specific=1, hidden=(4,), lam_beta=0.1, max_epochs=3,
                 negative_transfer="off", random_state=0)
BLOCK_FAST = dict(imputer="mean", hidden=4, max_epochs=3, patience=2, random_state=0)


def test_both_methods_share_one_base():
    for cls in REGRESSORS:
        assert issubclass(cls, MultiTaskRegressor), cls
        params = cls.__init__.__code__.co_varnames
        for name in ("validation_fraction", "n_threads", "max_epochs", "patience", "lr", "activation"):
            assert name in params, (cls, name)
    defaults = [cls(**({"layout": None} if "layout" in cls.__init__.__code__.co_varnames else {})).n_threads
                for cls in REGRESSORS]
    assert defaults == [1] * len(REGRESSORS)
    assert HBIImputer(None).n_threads == 1


def test_not_fitted_is_sklearns_error():
    X, _, task = dual_data()
    with pytest.raises(NotFittedError):
        DualEncoderMTL().predict(X, task)
    layout, Xb, _, tb = block_data()
    with pytest.raises(NotFittedError):
        TwoPathwayMTL(layout).predict(Xb, tb)


def test_feature_names_recorded_and_checked_for_both_methods():
    X, y, task = dual_data()
    dual = DualEncoderMTL(**DUAL_FAST).fit(X, y, task)
    layout, Xb, yb, tb = block_data()
    block = TwoPathwayMTL(layout, **BLOCK_FAST).fit(Xb, yb, tb)
    np.testing.assert_array_equal(dual.feature_names_in_, X.columns)
    dual.predict(X, task)
    with pytest.raises(ValueError, match="X: the columns are in another order than at fit"):
        dual.predict(X[X.columns[::-1]], task)
    with pytest.raises(ValueError, match=r"X: the column names differ .*missing: \['a'\]; not seen at fit: \['z'\]"):
        dual.predict(X.rename(columns={"a": "z"}), task)
    # The block-wise model reads the layout's columns by name: any order, others ignored.
    np.testing.assert_array_equal(block.feature_names_in_, list(layout.all_columns))
    np.testing.assert_array_equal(block.predict(Xb[Xb.columns[::-1]], tb), block.predict(Xb, tb))
    with pytest.raises(ValueError, match=r"X: missing column\(s\) \['a'\]"):
        block.predict(Xb.rename(columns={"a": "z"}), tb)
    # an array carries no names: the dual encoder reads columns by position
    np.testing.assert_array_equal(dual.predict(X.to_numpy(), task), dual.predict(X, task))
    refit = DualEncoderMTL(**DUAL_FAST).fit(X, y, task).fit(X.to_numpy(), y, task)
    assert not hasattr(refit, "feature_names_in_")


def test_old_spelling_warns_and_fits_the_same_model():
    layout, X, y, task = block_data()
    new = SingleTaskBlockMLP(layout, hidden=4, max_epochs=3, validation_fraction=0.3, random_state=0).fit(X, y, task)
    old = SingleTaskBlockMLP(layout, hidden=4, max_epochs=3, val_fraction=0.3, random_state=0)
    with pytest.warns(DeprecationWarning, match="val_fraction is renamed validation_fraction") as caught:
        old.fit(X, y, task)
    assert caught[0].filename == __file__  # the caller's line: shown by default outside tests too
    np.testing.assert_array_equal(old.predict(X, task), new.predict(X, task))
    assert clone(old).get_params()["val_fraction"] == 0.3
    with pytest.warns(DeprecationWarning, match="val_fraction is renamed validation_fraction"):
        TwoPathwayMTL(layout, **BLOCK_FAST, val_fraction=0.3).fit(X, y, task)
    with pytest.raises(ValueError, match="val_fraction, validation_fraction: give only validation_fraction"):
        TwoPathwayMTL(layout, **BLOCK_FAST, val_fraction=0.3, validation_fraction=0.4).fit(X, y, task)
    imputer = HBIImputer(layout, width=2, depth=1, lam_orth=0.0, max_epochs=3, random_state=0)
    with pytest.warns(DeprecationWarning, match="val_fraction is renamed validation_fraction"):
        a = clone(imputer).set_params(val_fraction=0.3).fit(X, task).transform(X, task)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = clone(imputer).set_params(validation_fraction=0.3).fit(X, task).transform(X, task)
    np.testing.assert_array_equal(a, b)


def test_imputer_exposes_split_rows_fitting():
    layout, X, _, task = block_data()
    blocks, codes = layout.split(X, task)
    imp = HBIImputer(layout, width=2, depth=1, lam_orth=0.0, max_epochs=3, random_state=0)
    via_split = clone(imp).fit_split(layout, blocks, codes).transform_split(blocks, codes)
    np.testing.assert_array_equal(via_split, clone(imp).fit(X, task).transform(X, task))


class _Quadratic(EpochStep):
    """K scalar models x_k moved toward targets by gradient steps; the validation loss is the
    distance to another target, so each model's best epoch is known in closed form."""

    def __init__(self, targets, checks, validate_first=False):
        self.x = torch.zeros(len(targets))
        self.targets, self.checks = torch.tensor(targets), torch.tensor(checks)
        self.validate_first = validate_first

    def train_epoch(self, epoch):
        self.x += 0.5 * (self.targets - self.x)
        return None

    def validation_losses(self):
        return (self.x - self.checks).abs().numpy()

    def state(self):
        return {"x": self.x}


def test_loop_keeps_each_models_best_epoch_and_orders_validation():
    # x after e steps: 1 - 0.5**e toward 1; model 0 is checked against 0.5 (best after one step),
    # model 1 against 1 (better every step until improvements fall below min_delta).
    step = _Quadratic([1.0, 1.0], [0.5, 1.0])
    stopper = EarlyStopping(2, patience=3)
    record = train_epochs(step, stopper, max_epochs=6)
    assert stopper.best_epoch[0] == 0 and stopper.best_state["x"][0] == 0.5
    assert stopper.best_epoch[1] == 5 and record.n_epochs == 6
    first = _Quadratic([1.0, 1.0], [0.5, 1.0], validate_first=True)
    stopper = EarlyStopping(2, patience=3)
    record = train_epochs(first, stopper, max_epochs=6)
    # validating first, epoch e scores the weights after e steps: the best of model 0 is epoch 1
    assert stopper.best_epoch[0] == 1 and stopper.best_state["x"][0] == 0.5
    assert record.n_epochs == 7 and len(record.train_loss) == 6


def test_hidden_means_the_hidden_widths_for_every_single_task_mlp():
    X, y, task = dual_data()
    a = SingleTaskMLP(hidden=4, max_epochs=3, random_state=0).fit(X, y, task)
    b = SingleTaskMLP(hidden=(4,), max_epochs=3, random_state=0).fit(X, y, task)
    np.testing.assert_array_equal(a.predict(X, task), b.predict(X, task))
    layout, Xb, yb, tb = block_data()
    c = SingleTaskBlockMLP(layout, hidden=4, n_layers=2, max_epochs=3, random_state=0).fit(Xb, yb, tb)
    d = SingleTaskBlockMLP(layout, hidden=(4, 4.0), max_epochs=3, random_state=0).fit(Xb, yb, tb)
    np.testing.assert_array_equal(c.predict(Xb, tb), d.predict(Xb, tb))
    assert [w.shape[-1] for w in SingleTaskBlockMLP(layout, hidden=(5, 3), max_epochs=2, random_state=0)
            .fit(Xb, yb, tb).net_.weights] == [5, 3, 1]
    for model in (SingleTaskMLP(hidden=(4, 0)), SingleTaskBlockMLP(layout, hidden=(4, 0))):
        with pytest.raises(ValueError, match=r"hidden: widths must be positive ints, got \(4, 0\)"):
            model.fit(*((X, y, task) if isinstance(model, SingleTaskMLP) else (Xb, yb, tb)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is absent")
@pytest.mark.parametrize("make", [lambda: DualEncoderMTL(device="cuda", random_state=0),
                                  lambda: SingleTaskMLP(device="cuda:0", random_state=0)])
def test_cuda_without_cuda_is_a_clear_error(make):
    X, y, task = dual_data()
    with pytest.raises(ValueError, match=r"^device: 'cuda(:0)?' was asked for, but .*device='cpu'"):
        make().fit(X, y, task)
