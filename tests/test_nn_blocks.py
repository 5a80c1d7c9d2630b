"""hetmtl.nn building blocks: stacked MLPs against a per-task loop, padded layouts, penalties
against NumPy references, early stopping and seeding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hetmtl.nn import (  # noqa: E402
    EarlyStopping,
    StackedMLP,
    TaskLayout,
    adam,
    orthogonality_per_task,
    task_mse,
    torch_generator,
    torch_threads,
)

pytestmark = pytest.mark.torch


def shuffled_tasks(sizes, seed=0):
    rng = np.random.default_rng(seed)
    task = np.repeat(np.arange(len(sizes)), sizes)
    return torch.as_tensor(rng.permutation(task))


def test_layout_round_trip_unequal_sizes_and_absent_task():
    task = shuffled_tasks([5, 0, 12, 1])
    lay = TaskLayout.from_tasks(task, 4)
    assert lay.index.shape == (4, 12)
    np.testing.assert_array_equal(lay.counts.numpy(), [5, 0, 12, 1])
    np.testing.assert_array_equal(lay.mask.sum(1).numpy(), [5, 0, 12, 1])
    x = torch.randn(task.numel(), 3, dtype=torch.float64)
    blocks = lay.gather(x)
    assert torch.all(blocks[~lay.mask] == 0)
    for r in range(4):  # each block holds exactly its task's rows, in row order
        rows = torch.nonzero(task == r)[:, 0]
        torch.testing.assert_close(blocks[r, : rows.numel()], x[rows])
    torch.testing.assert_close(lay.scatter(blocks), x)


@pytest.mark.parametrize("sizes, sort, reshape", [([5, 0, 12, 1], False, False), ([4, 4, 4], True, True),
                                                  ([3, 3, 2], True, False), ([4, 4, 4], False, False)])
def test_layout_features_first_and_reshape_path(sizes, sort, reshape):
    task = shuffled_tasks(sizes, seed=3)
    if sort:
        task = torch.sort(task).values
    lay = TaskLayout.from_tasks(task, len(sizes))
    assert lay.is_reshape == reshape
    generic = dataclasses.replace(lay, is_reshape=False)
    x = torch.randn(task.numel(), 3, dtype=torch.float64)
    torch.testing.assert_close(lay.gather(x), generic.gather(x), rtol=0, atol=0)
    torch.testing.assert_close(lay.scatter(lay.gather(x)), x, rtol=0, atol=0)
    torch.testing.assert_close(lay.gather_t(x.T), generic.gather(x).transpose(1, 2), rtol=0, atol=0)
    torch.testing.assert_close(generic.gather_t(x.T), generic.gather(x).transpose(1, 2), rtol=0, atol=0)


@pytest.mark.parametrize("hidden", [(), (7,), (6, 5)])
def test_stacked_forward_equals_per_task_loop(hidden):
    gen = torch_generator(np.random.SeedSequence(3))
    R, d, out = 4, 5, 3
    net = StackedMLP(R, d, out, hidden, "tanh", generator=gen, dtype=torch.float64)
    task = shuffled_tasks([9, 3, 20, 1], seed=1)
    x = torch.randn(task.numel(), d, dtype=torch.float64, generator=gen)
    got = net.forward_rows(x, TaskLayout.from_tasks(task, R))
    expect = torch.empty_like(got)
    for r in range(R):  # the reference: each task's network as plain linear layers
        rows = task == r
        h = x[rows]
        for l, (w, b) in enumerate(zip(net.weights, net.biases)):
            h = torch.nn.functional.linear(h, w[r].T, b[r])
            if l < len(net.weights) - 1:
                h = torch.tanh(h)
        expect[rows] = h
    torch.testing.assert_close(got, expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("own_backward", [True, False])  # the layers' own backward, and autograd's
@pytest.mark.parametrize("out", [1, 12])  # a narrow output layer takes the transposed product
def test_stacked_gradients_equal_plain_linear_layers(out, own_backward, monkeypatch):
    import hetmtl.nn.mlp as mlp

    monkeypatch.setattr(mlp, "_OWN_BACKWARD_MIN", 0 if own_backward else float("inf"))
    gen = torch_generator(np.random.SeedSequence(4))
    R, d = 3, 6
    net = StackedMLP(R, d, out, (10,), "relu", generator=gen, dtype=torch.float64)
    x = torch.randn(R, d, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    net.forward_t(x).square().sum().backward()
    got = [p.grad.clone() for p in (*net.weights, *net.biases)] + [x.grad.clone()]
    params = [p.detach().clone().requires_grad_() for p in (*net.weights, *net.biases)]
    x_ref = x.detach().clone().requires_grad_()
    (w0, w1), (b0, b1) = params[:2], params[2:]
    total = 0
    for r in range(R):  # the reference: each network as plain linear layers on rows
        h = torch.relu(torch.nn.functional.linear(x_ref[r].T, w0[r].T, b0[r]))
        total = total + torch.nn.functional.linear(h, w1[r].T, b1[r]).square().sum()
    total.backward()
    for g, ref in zip(got, [p.grad for p in params] + [x_ref.grad]):
        assert g.shape == ref.shape and g.is_contiguous()
        torch.testing.assert_close(g, ref, rtol=1e-12, atol=1e-12)


def test_stacked_gradients_are_separate_per_task():
    net = StackedMLP(3, 2, 1, (4,), generator=torch_generator(np.random.SeedSequence(0)))
    task = torch.tensor([0, 0, 2, 2, 2])
    x = torch.randn(5, 2)
    net.forward_rows(x, TaskLayout.from_tasks(task, 3)).sum().backward()
    for w in net.weights:
        assert torch.all(w.grad[1] == 0) and torch.any(w.grad[0] != 0)


def test_select_copies_networks():
    net = StackedMLP(3, 2, 2, (4,), generator=torch_generator(np.random.SeedSequence(1)))
    one = net.select([2])
    x = torch.randn(6, 2)
    torch.testing.assert_close(one.forward_shared(x), net.forward(x.expand(3, -1, -1))[2])
    with pytest.raises(ValueError, match="forward_shared: needs a single network"):
        net.forward_shared(x)
    with pytest.raises(ValueError, match="activation: must be one of"):
        StackedMLP(1, 2, 2, activation="sigmoid")


def numpy_orthogonality(C, S, mode):
    if mode != "raw":
        C, S = C - C.mean(0), S - S.mean(0)
    if mode == "standardized":
        C = C / np.sqrt((C ** 2).mean(0) + 1e-6)
        S = S / np.sqrt((S ** 2).mean(0) + 1e-6)
    return float(np.sum((C.T @ S / C.shape[0]) ** 2))


@pytest.mark.parametrize("mode", ["standardized", "centered", "raw"])
def test_orthogonality_matches_numpy(mode):
    rng = np.random.default_rng(4)
    task = shuffled_tasks([10, 4, 25], seed=2)
    C = torch.as_tensor(rng.normal(size=(task.numel(), 3)) * 3 + 1)
    S = torch.as_tensor(rng.normal(size=(task.numel(), 2)))
    S[:, 0] += 0.7 * C[:, 1]
    lay = TaskLayout.from_tasks(task, 3)
    got = orthogonality_per_task(lay.gather(C), lay.gather(S), lay.mask, mode).numpy()
    expect = [numpy_orthogonality(C[task == r].numpy(), S[task == r].numpy(), mode) for r in range(3)]
    np.testing.assert_allclose(got, expect, rtol=1e-10)
    if mode == "standardized":  # scale invariant: shrinking an encoding does not dodge it
        got_small = orthogonality_per_task(lay.gather(C * 0.1), lay.gather(S), lay.mask, mode).numpy()
        np.testing.assert_allclose(got_small, got, rtol=1e-3)
    with pytest.raises(ValueError, match="mode: must be one of"):
        orthogonality_per_task(lay.gather(C), lay.gather(S), lay.mask, "cosine")


def test_task_mse_matches_numpy():
    task = shuffled_tasks([3, 0, 7])
    res = torch.randn(task.numel(), dtype=torch.float64)
    got = task_mse(res, task, 3).numpy()
    t, r = task.numpy(), res.numpy()
    np.testing.assert_allclose(got, [np.mean(r[t == 0] ** 2), 0.0, np.mean(r[t == 2] ** 2)])


def test_early_stopping_keeps_best_state_and_stops():
    stop = EarlyStopping(patience=2)
    losses = [3.0, 2.0, 2.5, 2.4, 1.0]
    flags = [stop.update(i, v, {"v": i}) for i, v in enumerate(losses[:4])]
    assert flags == [False, False, False, True]
    assert stop.best_epoch == 1 and stop.best_state == {"v": 1}
    assert EarlyStopping().update(0, float("nan"), {}) is True


def test_per_task_best_keeps_slices():
    tracker = EarlyStopping(3, patience=2, rule="any")
    w = torch.zeros(3, 2)
    for epoch, losses in enumerate([[3, 3, 3], [2, 4, 3], [5, 1, 3], [6, 6, 6], [6, 6, 6]]):
        w[:] = epoch
        stop = tracker.update(epoch, np.array(losses, float), {"w": w})
    assert stop
    np.testing.assert_array_equal(tracker.best_state["w"][:, 0].numpy(), [1, 2, 0])
    np.testing.assert_array_equal(tracker.best_epoch, [1, 2, 0])


def test_generator_reproducible_and_threads_restored():
    a = torch.rand(4, generator=torch_generator(np.random.SeedSequence(9)))
    b = torch.rand(4, generator=torch_generator(np.random.SeedSequence(9)))
    c = torch.rand(4, generator=torch_generator(np.random.SeedSequence(10)))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_adam_fused_on_cpu_equals_the_per_tensor_loop():
    p = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    q = torch.nn.Parameter(p.detach().clone())
    fused = adam([p], lr=0.1, weight_decay=0.05)
    plain = torch.optim.Adam([q], lr=0.1, weight_decay=0.05, foreach=False)
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    for k in range(4):
        g = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
        p.grad, q.grad = g.clone(), g.clone()
        fused.step()
        plain.step()
    torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
    # a device without the fused kernel gets the default implementation
    assert adam([torch.nn.Parameter(torch.zeros(2, device="meta"))], lr=0.1).defaults["fused"] is None
