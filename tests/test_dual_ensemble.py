"""The dual encoder's ensemble of fits (``ensemble_size``): every member is the single fit from its
own initial weights on the same split, and the model predicts the mean of the members."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hetmtl._util.seeds import as_seed_sequence, child_seed  # noqa: E402
from hetmtl.dual import DualEncoderMTL  # noqa: E402
from hetmtl.dual._data import prepare  # noqa: E402
from hetmtl.dual._ensemble import member_seeds  # noqa: E402
from hetmtl.nn.estimator import SEED_SPLIT  # noqa: E402

from dual_helpers import FAST, small_tasks  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def ensemble():
    X, y, task = small_tasks(seed=4)
    model = DualEncoderMTL(random_state=5, ensemble_size=3, **FAST).fit(X, y, task)
    return model, (X, y, task)


def test_prediction_is_the_mean_of_the_members_each_a_single_fit_on_the_same_split(ensemble):
    model, (X, y, task) = ensemble
    seed = as_seed_sequence(5)
    prep = prepare(X, y, task, model.validation_fraction, model.standardize, child_seed(seed, SEED_SPLIT))
    singles = [DualEncoderMTL(random_state=5, ensemble_size=1, **FAST).fit_prepared(prep, s)
               for s in member_seeds(seed, 3)]
    preds = np.array([m.predict(X, task) for m in singles])
    # the members differ (different initial weights), and the ensemble predicts their mean
    assert np.abs(preds[1] - preds[0]).max() > 1e-4
    np.testing.assert_allclose(model.predict(X, task), preds.mean(axis=0), rtol=1e-5, atol=1e-5)
    # the first member is the fit of an ensemble of one: its diagnostics are the model's
    np.testing.assert_allclose(model.beta_, singles[0].beta_, rtol=1e-10, atol=1e-12)
    assert len(model.members_) == 3 and model.member_specific_used_.shape == (3, 3)
    np.testing.assert_array_equal(model.member_specific_used_[0], model.specific_used_)


def test_validation_loss_and_transfer_test_are_those_of_the_averaged_model(ensemble):
    model, (X, y, task) = ensemble
    seed = as_seed_sequence(5)
    prep = prepare(X, y, task, model.validation_fraction, model.standardize, child_seed(seed, SEED_SPLIT))
    val_rows = model.scaler_.y_inverse(prep.val.y)
    val_X = model.scaler_.x_mean + prep.val.X * model.scaler_.x_scale
    pred = model.predict(val_X, model.classes_[prep.val.codes])
    mse = np.bincount(prep.val.codes, (pred - val_rows) ** 2) / prep.val.sizes
    np.testing.assert_allclose(model.validation_loss_, mse, rtol=1e-4)


def test_an_ensemble_of_one_is_the_single_fit_and_the_size_is_checked():
    X, y, task = small_tasks(seed=1)
    one = DualEncoderMTL(random_state=2, ensemble_size=1, **FAST).fit(X, y, task)
    assert len(one.members_) == 1 and one.members_[0].net is one.net_
    for bad in (0, 1.5, True, "3"):
        with pytest.raises(ValueError, match="ensemble_size"):
            DualEncoderMTL(ensemble_size=bad, **FAST).fit(X, y, task)
