"""Where the block-wise networks train: the device of HBI and of the two-pathway model (the model's
device reaches the imputer it builds), and stacks of a grid trained in parallel threads."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hetmtl.blockwise import HBIImputer, TwoPathwayMTL  # noqa: E402
from hetmtl.blockwise._grid import run_stacks, stack_cost, stack_groups, expand_grid  # noqa: E402
from hetmtl.simulate import make_blockwise_tasks  # noqa: E402

pytestmark = pytest.mark.torch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
HBI = dict(width=(4, 6), depth=(1, 2), lam_orth=(0.0, 1.0), max_epochs=25, patience=5, n_threads=1, random_state=0)
MODEL = dict(hidden=6, max_epochs=6, patience=3, n_threads=1, random_state=0)


@pytest.fixture(scope="module")
def small():
    return make_blockwise_tasks(2, 60, p_anchor=4, p_specific=3, rho=0.6, random_state=3)


def imputations(ds, **kw):
    return HBIImputer(ds.layout, **{**HBI, **kw}).fit(ds.X, ds.task).transform(ds.X_test, ds.task_test)


# -- the device ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_hbi_on_the_cpu_named_either_way_equals_the_default(small, device):
    imp = HBIImputer(small.layout, **HBI, device=device).fit(small.X, small.task)
    np.testing.assert_array_equal(imp.transform(small.X_test, small.task_test), imputations(small))
    assert all(net.device.type == "cpu" for net in imp.networks_.values())


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_model_on_the_cpu_named_either_way_equals_the_default(small, device):
    def fit(**kw):
        hbi = HBIImputer(small.layout, **HBI)
        return TwoPathwayMTL(small.layout, imputer=hbi, **MODEL, **kw).fit(small.X, small.y, small.task)

    np.testing.assert_array_equal(fit(device=device).predict(small.X_test, small.task_test),
                                  fit().predict(small.X_test, small.task_test))


def test_model_passes_its_device_to_the_imputer_it_builds(small):
    m = TwoPathwayMTL(small.layout, imputer="hbi", **MODEL, device=torch.device("cpu"))
    m.fit(small.X, small.y, small.task)
    assert m.imputer_.device == torch.device("cpu")
    user = HBIImputer(small.layout, **HBI, device="cpu")
    fitted = TwoPathwayMTL(small.layout, imputer=user, **MODEL, device=torch.device("cpu")).fit(
        small.X, small.y, small.task)
    assert fitted.imputer_.device == "cpu"  # an imputer object keeps its own device


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is absent")
@pytest.mark.parametrize("make", [
    lambda lay: HBIImputer(lay, device="cuda"),
    lambda lay: HBIImputer(lay, device=torch.device("cuda", 0)),
    lambda lay: TwoPathwayMTL(lay, device="cuda"),
])
def test_cuda_without_cuda_is_the_models_clear_error(small, make):
    est = make(small.layout)
    with pytest.raises(ValueError, match=r"^device: .*cuda.* was asked for, but .*device='cpu'"):
        est.fit(small.X, small.task) if isinstance(est, HBIImputer) else est.fit(small.X, small.y, small.task)
    assert not hasattr(est, "networks_")


def test_hbi_device_that_torch_does_not_know_is_an_error(small):
    with pytest.raises(ValueError, match="device: not a torch device"):
        HBIImputer(small.layout, device="gpu-please").fit(small.X, small.task)


@needs_cuda
def test_hbi_on_cuda_agrees_with_the_cpu_up_to_rounding(small):
    imp = HBIImputer(small.layout, **HBI, device="cuda").fit(small.X, small.task)
    assert all(net.device.type == "cuda" for net in imp.networks_.values())
    np.testing.assert_allclose(imp.transform(small.X_test, small.task_test), imputations(small),
                               rtol=1e-3, atol=1e-4)


@needs_cuda
def test_model_on_cuda_trains_its_imputer_there_and_agrees_with_the_cpu(small):
    fits = {d: TwoPathwayMTL(small.layout, imputer="hbi", **MODEL, device=d).fit(small.X, small.y, small.task)
            for d in ("cpu", "cuda")}
    assert next(fits["cuda"].net_.parameters()).device.type == "cuda"
    assert all(net.device.type == "cuda" for net in fits["cuda"].imputer_.networks_.values())
    cpu_grid, gpu_grid = (fits[d].imputer_.grid_ for d in ("cpu", "cuda"))
    np.testing.assert_allclose(gpu_grid["val_mse"], cpu_grid["val_mse"], rtol=1e-3)
    np.testing.assert_allclose(fits["cuda"].predict(small.X_test, small.task_test),
                               fits["cpu"].predict(small.X_test, small.task_test), rtol=1e-3, atol=1e-3)


# -- stacks of a grid in parallel threads ----------------------------------------------------------------

def test_grid_in_threads_equals_the_serial_grid(small):
    grid = {"hidden": [4, 8], "n_layers": [1, 2, 3], "gamma": [0.0, 0.1]}
    assert len(stack_groups(expand_grid(grid, dict(hidden=6, n_layers=2, gamma=0.1, delta=0.1, kappa=0.1)))) > 2
    fits = [TwoPathwayMTL(small.layout, imputer="mean", grid=grid, **MODEL, n_jobs=n).fit(small.X, small.y, small.task)
            for n in (1, 2, 3)]
    for other in fits[1:]:
        np.testing.assert_array_equal(other.cv_results_["val_loss"], fits[0].cv_results_["val_loss"])
        np.testing.assert_array_equal(other.cv_results_["best_epoch"], fits[0].cv_results_["best_epoch"])
        assert other.best_params_ == fits[0].best_params_
        np.testing.assert_array_equal(other.predict(small.X_test, small.task_test),
                                      fits[0].predict(small.X_test, small.task_test))


def test_run_stacks_returns_the_results_in_the_order_of_the_groups():
    started = []

    def train(group):
        started.append(group[0])
        return sum(group)

    groups = [[0], [1, 2], [3], [4, 5, 6]]
    assert run_stacks(train, groups, [1.0, 5.0, 2.0, 9.0], n_jobs=1) == [0, 3, 3, 15]
    assert started == [0, 1, 3, 4]
    started.clear()
    assert run_stacks(train, groups, [1.0, 5.0, 2.0, 9.0], n_jobs=2) == [0, 3, 3, 15]
    assert sorted(started) == [0, 1, 3, 4]
    configs = [dict(hidden=h, n_layers=2) for h in (32, 32, 128)]
    assert stack_cost(configs, [0, 1]) < stack_cost(configs, [2])


def test_n_jobs_errors(small):
    with pytest.raises(ValueError, match="n_jobs"):
        TwoPathwayMTL(small.layout, imputer="mean", **MODEL, n_jobs=0).fit(small.X, small.y, small.task)
