"""Saving and loading the neural estimators and the block-wise imputers: identical predictions,
feature names and parameters after save -> load and dumps -> loads; weights as torch state dicts."""

from __future__ import annotations

import io
from pathlib import Path
import zipfile

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import hetmtl  # noqa: E402
from hetmtl.blockwise import (BlockLayout, HBIImputer, IterativeBlockImputer, MeanBlockImputer,  # noqa: E402
                              SingleTaskBlockMLP, TwoPathwayMTL)
from hetmtl.dual import DualEncoderMTL, HardSharingMTL, PooledMLP, SingleTaskMLP, shared_only  # noqa: E402
from hetmtl.simulate import make_blockwise_tasks  # noqa: E402

from dual_helpers import FAST, small_tasks  # noqa: E402

pytestmark = pytest.mark.torch

BASE = dict(max_epochs=10, patience=5, n_threads=1, random_state=0)


def _both_ways(model, tmp_path):
    path = tmp_path / "model.hetmtl"
    model.save(path)
    return type(model).load(path), hetmtl.loads(hetmtl.dumps(model))


@pytest.mark.parametrize("make", [
    lambda: DualEncoderMTL(random_state=0, **FAST),
    lambda: shared_only(random_state=0, **FAST),
    lambda: SingleTaskMLP(hidden=(6,), **BASE),
    lambda: PooledMLP(hidden=(6,), **BASE),
    lambda: HardSharingMTL(hidden=(6,), **BASE),
], ids=["dual", "shared_only", "single", "pooled", "hard_sharing"])
def test_dual_encoder_family_predicts_the_same_after_loading(make, tmp_path):
    X, y, task = small_tasks()
    df = pd.DataFrame(X, columns=["age", "dose", "bmi"])
    model = make().fit(df, y, task)
    for back in _both_ways(model, tmp_path):
        np.testing.assert_array_equal(back.predict(df, task), model.predict(df, task))
        assert back.score(df, y, task) == model.score(df, y, task)
        assert back.get_params() == model.get_params()
        np.testing.assert_array_equal(back.feature_names_in_, model.feature_names_in_)
        if hasattr(model, "lam_beta_path_"):
            pd.testing.assert_frame_equal(back.lam_beta_path_, model.lam_beta_path_)
        with pytest.raises(ValueError, match="another order than at fit"):
            back.predict(df[["dose", "age", "bmi"]], task)


def test_weights_are_torch_state_dicts_loaded_without_pickle():
    X, y, task = small_tasks()
    model = DualEncoderMTL(random_state=0, **FAST).fit(X, y, task)
    with zipfile.ZipFile(io.BytesIO(hetmtl.dumps(model))) as zf:
        networks = [n for n in zf.namelist() if n.startswith("networks/")]
        assert networks
        for name in networks:
            state = torch.load(io.BytesIO(zf.read(name)), weights_only=True)
            assert state and all(isinstance(t, torch.Tensor) for t in state.values())


def test_an_unfitted_estimator_round_trips_and_still_refuses_to_predict():
    from sklearn.exceptions import NotFittedError

    back = hetmtl.loads(hetmtl.dumps(DualEncoderMTL(random_state=3, **FAST)))
    assert back.get_params() == DualEncoderMTL(random_state=3, **FAST).get_params()
    with pytest.raises(NotFittedError):
        back.predict(np.zeros((2, 3)), ["north", "south"])
    X, y, task = small_tasks()
    # A loaded, unfitted estimator fits exactly as a new one does.
    np.testing.assert_array_equal(back.fit(X, y, task).predict(X, task),
                                  DualEncoderMTL(random_state=3, **FAST).fit(X, y, task).predict(X, task))


@pytest.fixture(scope="module")
def blocks():
    return make_blockwise_tasks(2, 60, p_anchor=4, p_specific=3, rho=0.3, random_state=3)


@pytest.mark.parametrize("make", [
    lambda layout: TwoPathwayMTL(layout, imputer="mean", hidden=6, **BASE),
    lambda layout: TwoPathwayMTL(layout, imputer=HBIImputer(layout, width=4, depth=1, lam_orth=0.0,
                                                            max_epochs=10, random_state=0), hidden=6, **BASE),
    lambda layout: SingleTaskBlockMLP(layout, hidden=6, **BASE),
], ids=["two_pathway_mean", "two_pathway_hbi", "single_task"])
def test_blockwise_models_predict_the_same_after_loading(blocks, make, tmp_path):
    model = make(blocks.layout).fit(blocks.X, blocks.y, blocks.task)
    for back in _both_ways(model, tmp_path):
        np.testing.assert_array_equal(back.predict(blocks.X_test, blocks.task_test),
                                      model.predict(blocks.X_test, blocks.task_test))
        pd.testing.assert_series_equal(back.per_task_rmse(blocks.X_test, blocks.y_test, blocks.task_test),
                                       model.per_task_rmse(blocks.X_test, blocks.y_test, blocks.task_test))
        assert isinstance(back.layout, BlockLayout)


@pytest.mark.parametrize("make", [
    lambda layout: HBIImputer(layout, width=(4, 6), depth=1, lam_orth=(0.0, 1.0), max_epochs=10,
                              n_threads=1, random_state=0),
    lambda layout: MeanBlockImputer(layout),
    lambda layout: IterativeBlockImputer(layout, max_iter=30, tol=1e-2, random_state=0),
], ids=["hbi", "mean", "iterative"])
def test_imputers_transform_the_same_after_loading(blocks, make, tmp_path):
    imputer = make(blocks.layout).fit(blocks.X, blocks.task)
    for back in _both_ways(imputer, tmp_path):
        np.testing.assert_array_equal(back.transform(blocks.X_test, blocks.task_test),
                                      imputer.transform(blocks.X_test, blocks.task_test))
        assert back.get_params().keys() == imputer.get_params().keys()


def test_a_two_pathway_model_saved_before_compact_task_inputs_predicts_as_a_new_fit():
    # Saved by the release whose task encoders held first-layer weights for every column (zero
    # where a task reads nothing): it loads with that layout and predicts as the same fit does now.
    d = make_blockwise_tasks(2, 60, p_anchor=4, p_specific=3, rho=0.3, random_state=3)
    old = TwoPathwayMTL.load(Path(__file__).parent / "data" / "two_pathway_saved_before_compact_inputs.hetmtl")
    assert not old.net_.compact_inputs and old.net_.task_enc.weights[0].shape == (2, 10, 6)
    new = TwoPathwayMTL(d.layout, imputer="mean", hidden=6, max_epochs=8, patience=5, n_threads=1,
                        random_state=0).fit(d.X, d.y, d.task)
    assert new.net_.compact_inputs and new.net_.task_enc.weights[0].shape == (2, 3, 6)
    torch.testing.assert_close(old.net_.task_input_weights(), new.net_.task_input_weights())
    np.testing.assert_allclose(old.predict(d.X_test, d.task_test), new.predict(d.X_test, d.task_test),
                               rtol=1e-5, atol=1e-6)
