"""The two-pathway model for block-wise missing sources: the network and its regularizers against
NumPy references, stacked grid training against one configuration at a time, input checks, and a
reduced simulation in which the imputed blocks carry signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from hetmtl.blockwise import (  # noqa: E402
    BlockLayout,
    SingleTaskBlockMLP,
    TwoPathwayMTL,
    htl,
    without_decorrelation,
    without_imputation_penalty,
    without_orthogonality,
)
from hetmtl.blockwise import _data  # noqa: E402
from hetmtl.blockwise._data import make_imputer  # noqa: E402
from hetmtl.nn import EarlyStopping, epoch_batches  # noqa: E402
from hetmtl.blockwise._two_pathway import NetSpec, TwoPathwayNet  # noqa: E402
from hetmtl.nn import adam  # noqa: E402
from hetmtl.simulate import make_blockwise_tasks  # noqa: E402

pytestmark = pytest.mark.torch


class MeanImputer:
    """Stand-in imputer: column means of the observed values (not a scikit-learn estimator)."""

    def __init__(self, layout: BlockLayout):
        self.layout = layout
        self.means_ = None

    def fit(self, X, task):
        self.means_ = np.nanmean(np.asarray(X, dtype=float), axis=0)
        return self

    def transform(self, X, task):
        X = np.asarray(X, dtype=float)
        return np.where(np.isnan(X), self.means_, X)


class TruthImputer:
    """Stand-in imputer that returns the true full rows (looked up by their anchor values)."""

    def __init__(self, anchor_cols, full_rows):
        self.anchor_cols = np.asarray(anchor_cols)
        self.rows = {np.ascontiguousarray(r[self.anchor_cols]).tobytes(): r for r in full_rows}

    def fit(self, X, task):
        return self

    def transform(self, X, task):
        return np.vstack([self.rows[np.ascontiguousarray(r[self.anchor_cols]).tobytes()] for r in np.asarray(X)])


@pytest.fixture(scope="module")
def small():
    return make_blockwise_tasks(2, 60, p_anchor=4, p_specific=3, rho=0.3, random_state=3)


def quick(layout, **kw):
    params = dict(imputer=MeanImputer(layout), hidden=6, max_epochs=8, patience=5, n_threads=1, random_state=0)
    params.update(kw)
    return TwoPathwayMTL(layout, **params)


# ----------------------------------------------------------------------------- the network

SPEC_T, SPEC_P0, SPEC_P = 2, 2, 5


def make_net(widths=(3, 2), shared_head="paper", n_layers=2, head_layers=2, seed=0, read=None):
    spec = NetSpec(n_tasks=SPEC_T, p_anchor=SPEC_P0, p_in=SPEC_P, n_layers=n_layers, head_layers=head_layers,
                   shared_head=shared_head, activation="relu")
    gens = [torch.Generator().manual_seed(seed + g) for g in range(len(widths))]
    input_mask = torch.ones(SPEC_T, SPEC_P) if read is None else torch.as_tensor(read, dtype=torch.float32)
    imputed = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 1, 0, 0]], dtype=torch.float32)  # task 0 misses cols 3-4
    net = TwoPathwayNet(spec, widths, gens, torch.arange(SPEC_P0), input_mask, imputed)
    return net, imputed.numpy()


def np_weights(net, g, d):
    """Configuration g's weights at their true width, as NumPy arrays in (fan_in, fan_out) layout."""
    T, D = SPEC_T, max(net.widths)
    H = net.spec.head_layers

    def mlp(stack, r, in_dim, first=None):
        out, fan_in = [], in_dim
        for l, (w, b) in enumerate(zip(stack.weights, stack.biases)):
            w = first if l == 0 and first is not None else w
            out.append((w[r, :fan_in, :d].detach().numpy(), b[r, :d].detach().numpy()))
            fan_in = d
        return out

    heads = []
    for l in range(H):  # the heads store (fan_out, fan_in); transposed here
        o = 1 if l == H - 1 else d
        A = net.A[l][g, 0].detach().numpy().T
        A = np.vstack([A[:d], A[D:D + d]])[:, :o] if (l == 0 and net.spec.shared_head == "code") else A[:d, :o]
        heads.append(dict(A=A, a=net.a[l][g, 0, :o, 0].detach().numpy(),
                          W=net.W[l][g].detach().numpy().transpose(0, 2, 1)[:, :d, :o],
                          B=net.B[l][g].detach().numpy().transpose(0, 2, 1)[:, :d, :o],
                          c=net.c[l][g, :, :o, 0].detach().numpy()))
    return (mlp(net.shared_enc, g, SPEC_P0), [mlp(net.task_enc, g * T + t, SPEC_P, net.task_input_weights()) for t in range(T)], heads)


def np_forward(net, x_t):
    """The two-pathway equations, written per configuration and task (rows first)."""
    relu = lambda z: np.maximum(z, 0.0)  # noqa: E731
    G, T = net.n_configs, SPEC_T
    out = np.zeros((G, T, x_t.shape[2]))
    codes = {}
    for g, d in enumerate(net.widths):
        shared, task, heads = np_weights(net, g, d)
        for t in range(T):
            X = x_t[t].T
            fc = X[:, :SPEC_P0]
            for w, b in shared:
                fc = relu(fc @ w + b)
            fp = X
            for w, b in task[t]:
                fp = relu(fp @ w + b)
            codes[g, t] = (fc, fp)
            sc, sp = fc, fp
            for l, h in enumerate(heads):
                c_in = np.hstack([fp, fc]) if (l == 0 and net.spec.shared_head == "code") else sc
                nc = c_in @ h["A"] + h["a"]
                npp = sp @ h["W"][t] + sc @ h["B"][t] + h["c"][t]
                if l < len(heads) - 1:
                    nc, npp = relu(nc), relu(npp)
                sc, sp = nc, npp
            out[g, t] = (sc + sp)[:, 0]
    return out, codes


@pytest.mark.parametrize("shared_head", ["paper", "code"])
@pytest.mark.parametrize("head_layers", [1, 3])
def test_forward_matches_numpy_per_configuration_and_task(shared_head, head_layers):
    net, _ = make_net(shared_head=shared_head, head_layers=head_layers)
    x_t = torch.randn(SPEC_T, SPEC_P, 7, generator=torch.Generator().manual_seed(1))
    ref, _ = np_forward(net, x_t.numpy())
    np.testing.assert_allclose(net(x_t).detach().numpy(), ref, rtol=1e-5, atol=1e-6)


def test_task_encoders_hold_only_the_columns_they_read():
    read = [[1, 1, 0, 1, 0], [1, 1, 1, 0, 1]]  # 3 and 4 of 5 columns, the anchor (0, 1) among them
    net, imputed = make_net(widths=(3, 2), shared_head="code", read=read)
    full, _ = make_net(widths=(3, 2), shared_head="code")
    assert net.compact_inputs and not full.compact_inputs
    assert net.task_enc.weights[0].shape == (2 * SPEC_T, 4, 3)  # the widest task's columns, not all 5
    # the same draws as a network reading every column, kept where a task reads
    mask = torch.as_tensor(read, dtype=torch.float32).repeat(2, 1).unsqueeze(-1)
    torch.testing.assert_close(net.task_input_weights(), full.task_enc.weights[0] * mask)
    x_t = torch.randn(SPEC_T, SPEC_P, 7, generator=torch.Generator().manual_seed(4))
    ref, _ = np_forward(net, x_t.numpy())
    np.testing.assert_allclose(net(x_t).detach().numpy(), ref, rtol=1e-5, atol=1e-6)
    # unread columns change nothing; R_imp sees the imputed columns a task reads, and only those
    torch.testing.assert_close(net(x_t), net(x_t * torch.as_tensor(read, dtype=torch.float32).unsqueeze(-1)))
    w = net.task_input_weights().detach().view(2, SPEC_T, SPEC_P, -1)
    on = torch.as_tensor(imputed * np.asarray(read), dtype=torch.float32)[None, :, :, None]
    torch.testing.assert_close(net.imputation_penalty(), (w.square() * on).sum(dim=(1, 2, 3)))


def test_code_variant_makes_the_shared_head_read_the_task_codes():
    net, _ = make_net(shared_head="code")
    x_t = torch.randn(SPEC_T, SPEC_P, 5, generator=torch.Generator().manual_seed(2))
    f_c, f_p = net.encode(x_t)
    base = net.heads(f_c, f_p)
    with torch.no_grad():
        for w in (net.W, net.B, net.c):  # switch the task heads off: what remains is psi_c
            for p in w:
                p.zero_()
    psi_c = net.heads(f_c, f_p).detach()
    psi_c_other = net.heads(f_c, f_p * 2).detach()
    assert not torch.allclose(psi_c, psi_c_other)  # psi_c depends on f_p in the code variant
    paper, _ = make_net(shared_head="paper")
    with torch.no_grad():
        for w in (paper.W, paper.B, paper.c):
            for p in w:
                p.zero_()
    f_c, f_p = paper.encode(x_t)
    torch.testing.assert_close(paper.heads(f_c, f_p), paper.heads(f_c, f_p * 2))
    assert base.shape == (2, SPEC_T, 5)


@pytest.mark.parametrize("shared_head", ["paper", "code"])
def test_regularizers_match_their_definitions(shared_head):
    net, imputed = make_net(shared_head=shared_head, head_layers=3)
    x_t = torch.randn(SPEC_T, SPEC_P, 6, generator=torch.Generator().manual_seed(3))
    f_c, f_p = net.encode(x_t)
    _, codes = np_forward(net, x_t.numpy())
    orth = net.orthogonality(f_c, f_p, "sum").detach().numpy()
    orth_mean = net.orthogonality(f_c, f_p, "mean").detach().numpy()
    imp = net.imputation_penalty().detach().numpy()
    dr = net.decorrelation().detach().numpy()
    for g, d in enumerate(net.widths):
        # R_orth = sum_t ||F_c' F_p||_F^2 with the rows of the batch as rows.
        ref_orth = sum(np.sum((codes[g, t][0].T @ codes[g, t][1]) ** 2) for t in range(SPEC_T))
        np.testing.assert_allclose(orth[g], ref_orth, rtol=1e-4)
        # The default scale: the mean squared entry of the cross-moment matrix C' P / m (d x d).
        ref_mean = sum(np.mean((codes[g, t][0].T @ codes[g, t][1] / x_t.shape[2]) ** 2) for t in range(SPEC_T))
        np.testing.assert_allclose(orth_mean[g], ref_mean, rtol=1e-4)
        # R_imp = sum_t sum of squared first-layer weights of E_p^t on the columns imputed for t.
        _, task, heads = np_weights(net, g, d)
        ref_imp = sum(np.sum(task[t][0][0][imputed[t] > 0] ** 2) for t in range(SPEC_T))
        np.testing.assert_allclose(imp[g], ref_imp, rtol=1e-5)
        # R_dr in the paper's orientation: B, A are (fan_out x fan_in) matrices reading the shared
        # stream; the output layer is the scalar ((sum_t b^t)' a)^2.
        ref_dr = 0.0
        for l, h in enumerate(heads):
            A_stored = h["A"][d:] if (l == 0 and shared_head == "code") else h["A"]
            if l < len(heads) - 1:
                Bsum = sum(h["B"][t].T for t in range(SPEC_T))  # (fan_out, fan_in), as in the paper
                A = A_stored.T
                ref_dr += np.linalg.norm(Bsum @ A.T, "fro") ** 2
            else:
                b = sum(h["B"][t][:, 0] for t in range(SPEC_T))
                ref_dr += float(b @ A_stored[:, 0]) ** 2
        np.testing.assert_allclose(dr[g], ref_dr, rtol=1e-4)


def test_imputation_penalty_touches_only_imputed_columns():
    net, imputed = make_net()
    net.imputation_penalty().sum().backward()
    grads = {k: p.grad for k, p in net.named_parameters()}
    first = grads.pop("task_enc.weights.0").view(2, SPEC_T, SPEC_P, -1)
    w = net.task_enc.weights[0].detach().view(2, SPEC_T, SPEC_P, -1)
    np.testing.assert_allclose(first.numpy(), (2 * w * torch.as_tensor(imputed)[None, :, :, None]).numpy())
    assert (first[:, imputed == 0] == 0).all() and (first[:, imputed > 0].abs() > 0).any()
    assert all(g is None or not g.any() for g in grads.values())


def test_padding_of_narrower_configurations_stays_exactly_zero():
    net, _ = make_net(widths=(4, 2, 3), shared_head="code", n_layers=3, head_layers=3)
    padded = {k: p.detach() == 0 for k, p in net.named_parameters()}
    opt = adam(net.parameters(), 1e-2)
    gen = torch.Generator().manual_seed(5)
    for _ in range(20):
        x_t = torch.randn(SPEC_T, SPEC_P, 8, generator=gen)
        f_c, f_p = net.encode(x_t)
        loss = (net.heads(f_c, f_p) - 1).square().mean() + net.orthogonality(f_c, f_p).sum() \
            + net.imputation_penalty().sum() + net.decorrelation().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    # The widest configuration has (almost) no zeros at the start; the others keep theirs exactly.
    for k, p in net.named_parameters():
        narrow = p.detach()[1:] if p.shape[0] == 3 else p.detach()[SPEC_T:]
        assert (narrow[padded[k][-narrow.shape[0]:]] == 0).all(), k
    ref, _ = np_forward(net, x_t.numpy())  # the true-width reference still holds after training
    np.testing.assert_allclose(net(x_t).detach().numpy(), ref, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- training pieces

def test_epoch_batches_take_every_row_of_the_largest_task_once():
    codes = np.repeat([0, 1, 2], [10, 4, 7])
    idx = epoch_batches(codes, 3, 3, np.random.default_rng(0))
    assert idx.shape == (4, 3, 3)
    assert (codes[idx] == np.arange(3)[None, :, None]).all()
    assert sorted(idx[:, 0].ravel()[:10]) == list(range(10))
    small = idx[:, 1].ravel()
    assert sorted(small[:4]) == list(range(10, 14)) and sorted(small[4:8]) == list(range(10, 14))


def test_stack_stopper_freezes_a_finished_model():
    stop = EarlyStopping(2, patience=2)
    state = {"w": torch.zeros(2, 3)}
    stop.update(0, np.array([1.0, 1.0]), state)
    state["w"] += 1
    stop.update(1, np.array([2.0, 0.5]), state)
    state["w"] += 1
    assert not stop.update(2, np.array([3.0, 0.4]), state)  # model 0 finished here
    state["w"] += 1
    assert not stop.update(3, np.array([0.1, 0.3]), state)  # too late for model 0
    np.testing.assert_array_equal(stop.best_loss, [1.0, 0.3])
    np.testing.assert_array_equal(stop.best_state["w"][:, 0].numpy(), [0.0, 3.0])
    assert stop.update(4, np.array([0.1, 0.3]), state) is False
    assert stop.update(5, np.array([0.1, 0.3]), state) is True


# ----------------------------------------------------------------------------- the estimator

def test_fit_predict_shapes_and_attributes(small):
    m = quick(small.layout, grid={"gamma": [0.0, 0.1]}).fit(small.X, small.y, small.task)
    pred = m.predict(small.X_test, small.task_test)
    assert pred.shape == small.y_test.shape and np.isfinite(pred).all()
    assert list(m.cv_results_.columns[:5]) == ["hidden", "n_layers", "gamma", "delta", "kappa"]
    assert len(m.cv_results_) == 2 and m.best_params_["gamma"] in (0.0, 0.1)
    assert set(m.history_.columns) == {"epoch", "train_loss", "val_loss"}
    assert isinstance(m.imputer_, MeanImputer) and m.imputer_.means_ is not None
    rmse = m.per_task_rmse(small.X_test, small.y_test, small.task_test)
    assert isinstance(rmse, pd.Series) and list(rmse.index) == [0, 1]
    np.testing.assert_allclose(np.sqrt(np.mean((pred - small.y_test) ** 2)),
                               np.sqrt(np.average(rmse**2, weights=np.bincount(small.task_test))))
    assert np.isfinite(m.score(small.X_test, small.y_test, small.task_test))


def test_user_imputer_is_left_unfitted(small):
    imp = MeanImputer(small.layout)
    quick(small.layout, imputer=imp).fit(small.X, small.y, small.task)
    assert imp.means_ is None


def test_input_errors(small):
    m = quick(small.layout)
    with pytest.raises(ValueError, match="task: label 7"):
        m.fit(small.X, small.y, np.where(small.task == 1, 7, 0))
    with pytest.raises(ValueError, match="X: source 'x2' refers to column"):
        m.fit(small.X[:, :-1], small.y, small.task)
    y = small.y.copy()
    y[3] = np.nan
    with pytest.raises(ValueError, match="y: contains 1 NaN"):
        m.fit(small.X, y, small.task)
    with pytest.raises(ValueError, match="y: expected"):
        m.fit(small.X, small.y[:-1], small.task)
    m.fit(small.X, small.y, small.task)
    with pytest.raises(ValueError, match="task: label 'c'"):
        m.predict(small.X_test, np.full(small.task_test.shape, "c", dtype=object))
    with pytest.raises(ValueError, match="X: source 'x1' is observed"):
        bad = small.X_test.copy()
        bad[small.task_test == 0, small.layout.columns("x1")[0]] = np.nan
        m.predict(bad, small.task_test)


@pytest.mark.parametrize("param, value, match", [
    ("shared_head", "both", "shared_head: must be one of"),
    ("orth_scale", "rows", "orth_scale: must be one of"),
    ("grid", {"width": [3]}, "grid: unknown key"),
    ("grid", "huge", "grid: must be"),
    ("gamma", -1.0, "gamma: must be a finite non-negative"),
    ("hidden", 0, "hidden: must be a positive int"),
    ("imputer", "knn", "imputer: must be one of"),
    ("imputer", object(), "imputer: an imputer object needs fit"),
    ("lr_decay", 0.0, "lr_decay: must lie in"),
    ("val_fraction", 1.5, "val_fraction: must lie in"),
])
def test_parameter_errors(small, param, value, match):
    with pytest.raises(ValueError, match=match):
        quick(small.layout, **{param: value}).fit(small.X, small.y, small.task)


def test_named_imputer_without_its_module_raises_a_clear_error(small, monkeypatch):
    monkeypatch.setitem(_data.IMPUTERS, "mean", ("no_such_module", "MeanBlockImputer"))
    with pytest.raises(ValueError, match="imputer: 'mean' needs MeanBlockImputer"):
        make_imputer("mean", small.layout, np.random.SeedSequence(0))


def test_reproducible_for_a_seed(small):
    fits = [quick(small.layout, random_state=s).fit(small.X, small.y, small.task) for s in (4, 4, 5)]
    preds = [f.predict(small.X_test, small.task_test) for f in fits]
    np.testing.assert_array_equal(preds[0], preds[1])
    assert not np.allclose(preds[0], preds[2])


def test_grid_trained_as_stacks_equals_each_configuration_alone(small):
    grid = {"hidden": [4, 6], "n_layers": [1, 2], "gamma": [0.0, 0.1], "kappa": [0.05]}
    kw = dict(shared_head="code", max_epochs=6, patience=3, random_state=1)
    m = quick(small.layout, grid=grid, **kw).fit(small.X, small.y, small.task)
    assert len(m.cv_results_) == 8
    for _, row in m.cv_results_.iloc[[0, 3, 5, 6]].iterrows():
        alone = quick(small.layout, hidden=int(row.hidden), n_layers=int(row.n_layers), gamma=row.gamma,
                      delta=row.delta, kappa=row.kappa, **kw).fit(small.X, small.y, small.task)
        np.testing.assert_allclose(alone.cv_results_.val_loss[0], row.val_loss, rtol=1e-5)
        assert alone.best_epoch_ == row.best_epoch
    best = m.best_params_
    alone = quick(small.layout, **best, **kw).fit(small.X, small.y, small.task)
    np.testing.assert_allclose(alone.predict(small.X_test, small.task_test),
                               m.predict(small.X_test, small.task_test), rtol=1e-4, atol=1e-5)


def test_shedding_finished_configurations_changes_nothing(small, monkeypatch):
    """A stack rebuilt without its finished configurations (Adam's moments and step decay carried
    over) trains the others as the full stack would."""
    import hetmtl.blockwise.model as model_module

    grid = {"hidden": [4, 6], "gamma": [0.0, 0.1], "weight_decay": [0.0, 0.1]}
    kw = dict(grid=grid, max_epochs=60, patience=3, lr=3e-2, lr_step=5, random_state=2)
    fits = {}
    for shrink in (0.0, 1.0):  # never rebuild / rebuild as soon as one configuration finishes
        monkeypatch.setattr(model_module, "SHRINK", shrink)
        fits[shrink] = quick(small.layout, **kw).fit(small.X, small.y, small.task)
    full, shed = fits[0.0].cv_results_, fits[1.0].cv_results_
    assert full["best_epoch"].nunique() > 1  # configurations finished at different epochs
    np.testing.assert_array_equal(shed["best_epoch"], full["best_epoch"])
    np.testing.assert_allclose(shed["val_loss"], full["val_loss"], rtol=1e-5)
    assert fits[1.0].best_params_ == fits[0.0].best_params_
    pd.testing.assert_frame_equal(fits[1.0].history_, fits[0.0].history_, rtol=1e-5)
    np.testing.assert_allclose(fits[1.0].predict(small.X_test, small.task_test),
                               fits[0.0].predict(small.X_test, small.task_test), rtol=1e-4, atol=1e-5)


def test_htl_reads_only_the_tasks_own_sources(small):
    m = htl(small.layout, hidden=6, max_epochs=5, n_threads=1, random_state=0).fit(small.X, small.y, small.task)
    assert m.imputer_ is None and m.task_inputs == "own"
    w = m.net_.task_input_weights().detach().view(small.layout.n_tasks, -1, 6)
    unread = _data.column_mask(small.layout, "missing")
    unread[:, _data.anchor_columns(small.layout)] = True  # x_t only: not the anchor either
    assert (w[torch.as_tensor(unread)] == 0).all() and (w[torch.as_tensor(~unread)] != 0).all(dim=-1).any()
    # The paper's architecture without imputation: task_inputs="all" (its default) reads the anchor as well.
    m = TwoPathwayMTL(small.layout, imputer=None, architecture="paper", hidden=6, max_epochs=5, n_threads=1,
                      random_state=0)
    w = m.fit(small.X, small.y, small.task).net_.task_input_weights().detach().view(small.layout.n_tasks, -1, 6)
    missing = torch.as_tensor(_data.column_mask(small.layout, "missing"))
    assert (w[missing] == 0).all() and (w[:, _data.anchor_columns(small.layout)] != 0).any()
    with pytest.raises(ValueError, match="task_inputs"):
        TwoPathwayMTL(small.layout, task_inputs="anchor").fit(small.X, small.y, small.task)


def test_single_task_mlp_tasks_are_independent(small):
    st = dict(hidden=6, max_epochs=10, patience=4, n_threads=1, random_state=0)
    a = SingleTaskBlockMLP(small.layout, **st).fit(small.X, small.y, small.task)
    y = np.where(small.task == 1, -3 * small.y, small.y)  # another response for task 1 only
    b = SingleTaskBlockMLP(small.layout, **st).fit(small.X, y, small.task)
    t0 = small.task_test == 0
    np.testing.assert_array_equal(a.predict(small.X_test, small.task_test)[t0],
                                  b.predict(small.X_test, small.task_test)[t0])
    assert not np.allclose(a.predict(small.X_test, small.task_test)[~t0],
                           b.predict(small.X_test, small.task_test)[~t0])
    w = a.net_.weights[0].detach()
    assert (w[torch.as_tensor(_data.column_mask(small.layout, "missing"))] == 0).all()


def test_ablation_factories(small):
    for factory, key in ((without_orthogonality, "gamma"), (without_imputation_penalty, "delta"),
                         (without_decorrelation, "kappa")):
        m = factory(small.layout, grid="small", gamma=0.3, delta=0.3, kappa=0.3)
        assert getattr(m, key) == 0.0
        assert m.grid.get(key, [0.0]) == [0.0]
        assert all(getattr(m, k) == 0.3 for k in ("gamma", "delta", "kappa") if k != key)


def test_truth_imputation_beats_htl_and_single_task_when_missing_blocks_carry_signal():
    """Weakly correlated sources (rho = 0.01: the missing block is not predictable from the anchor)
    and a response that depends on every source: a model that uses the imputed blocks (here the
    truth) must predict clearly better than models that read the observed sources only."""
    rmse = []
    for rep in range(3):
        d = make_blockwise_tasks(2, 200, p_anchor=10, p_specific=10, rho=0.01, random_state=rep)
        a = np.array(d.layout.columns("x0"))
        truth = TruthImputer(a, np.vstack([d.X_full, d.X_test_full]))
        kw = dict(hidden=32, max_epochs=100, patience=20, lr=3e-3, n_threads=1, random_state=rep)
        models = (TwoPathwayMTL(d.layout, imputer=truth, **kw), htl(d.layout, **kw), SingleTaskBlockMLP(d.layout, **kw))
        rmse.append([m.fit(d.X, d.y, d.task).per_task_rmse(d.X_test, d.y_test, d.task_test).mean() for m in models])
    two_path, htl_rmse, single = np.mean(rmse, axis=0)
    assert two_path < 0.85 * min(htl_rmse, single), rmse


def test_clone_and_pickle(small):
    import pickle

    from sklearn.base import clone

    m = quick(small.layout).fit(small.X, small.y, small.task)
    again = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(again.predict(small.X_test, small.task_test), m.predict(small.X_test, small.task_test))
    c = clone(m)
    assert c.get_params()["hidden"] == 6 and not hasattr(c, "net_")


def test_stack_groups_pad_narrow_widths_only_where_cheap():
    from hetmtl.blockwise import PAPER_GRID
    from hetmtl.blockwise._grid import expand_grid, stack_groups

    defaults = dict(hidden=64, n_layers=2, gamma=0.1, delta=0.1, kappa=0.1, weight_decay=0.0)
    paper = expand_grid(PAPER_GRID, defaults)
    groups = stack_groups(paper)
    assert len(paper) == 72 and sorted(i for g in groups for i in g) == list(range(72))
    assert len(groups) == 9 and all(len({(paper[i]["n_layers"], paper[i]["hidden"]) for i in g}) == 1 for g in groups)
    small = expand_grid({"hidden": [8, 16, 128], "n_layers": [1, 2]}, defaults)
    shapes = [sorted({(small[i]["n_layers"], small[i]["hidden"]) for i in g}) for g in stack_groups(small)]
    assert shapes == [[(1, 8), (1, 16)], [(1, 128)], [(2, 8), (2, 16)], [(2, 128)]]
    assert len(stack_groups(paper, pad_budget=float("inf"))) == 3


def test_diverged_fit_raises_its_own_error():
    # Every configuration diverges: the fit says so (and no NaN warning from the progress note
    # replaces that error under filterwarnings=error).
    d = make_blockwise_tasks(n_per_task=40, p_anchor=6, p_specific=3, random_state=0)
    model = TwoPathwayMTL(d.layout, imputer="mean", hidden=6, n_layers=1, lr=1e12, max_epochs=5, patience=2,
                          n_threads=1, random_state=0)
    with pytest.raises(FloatingPointError, match="every configuration diverged"):
        model.fit(d.X, d.y, d.task)


def test_a_frame_with_the_response_and_task_columns_fits_and_new_rows_predict_without_them(small):
    # The layout reads its columns by name: the others (y, the task label) are not features.
    df = pd.DataFrame(small.X).assign(y=small.y, cohort=small.task)
    m = quick(small.layout, max_epochs=3).fit(df, df.y, df.cohort)
    assert list(m.feature_names_in_) == list(small.layout.all_columns)
    new = pd.DataFrame(small.X_test)
    expected = m.predict(small.X_test, small.task_test)
    np.testing.assert_array_equal(m.predict(new, small.task_test), expected)
    np.testing.assert_array_equal(m.predict(new[new.columns[::-1]], small.task_test), expected)
    with pytest.raises(ValueError, match="missing column"):
        m.predict(new.drop(columns=[0]), small.task_test)


def test_n_jobs_minus_one_means_one_stack_per_cpu(small):
    grid = {"hidden": [4, 6], "n_layers": [1, 2]}
    one = quick(small.layout, grid=grid, max_epochs=2).fit(small.X, small.y, small.task)
    every = quick(small.layout, grid=grid, max_epochs=2, n_jobs=-1).fit(small.X, small.y, small.task)
    pd.testing.assert_frame_equal(one.cv_results_, every.cv_results_)
    with pytest.raises(ValueError, match="n_jobs: must be a whole number from 1 to .*or -1"):
        quick(small.layout, n_jobs=-2).fit(small.X, small.y, small.task)


def test_values_in_a_block_the_layout_declares_missing_are_ignored_with_a_warning(small):
    from hetmtl.blockwise import MissingBlockValuesWarning

    m = quick(small.layout, max_epochs=2).fit(small.X, small.y, small.task)
    expected = m.predict(small.X_test, small.task_test)
    with pytest.warns(MissingBlockValuesWarning, match=r"row\(s\) hold values in source .* ignored"):
        got = m.predict(small.X_test_full, small.task_test)
    np.testing.assert_array_equal(got, expected)


def test_a_users_imputer_on_arrays_gets_every_column_with_the_missing_blocks_as_nan():
    # The layout names an array's columns by position, so the imputer is given the array's own
    # width (here a source listed second lies first, and a column outside the layout is kept).
    from hetmtl.blockwise import BlockLayout
    from hetmtl.blockwise.simple_imputers import MeanBlockImputer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    X[:, 2:4] += 100.0
    task = np.array(["t1"] * 30 + ["t2"] * 30)
    X[30:, 0:2] = 7.0                                  # a placeholder in t2's missing block
    lay = BlockLayout({"a": [2, 3], "b": [0, 1]}, anchor="a", observed={"t1": ["b"], "t2": []})
    seen = []

    class Delegating:
        def __init__(self):
            self.inner = MeanBlockImputer(lay)

        def fit(self, X, task):
            seen.append(np.array(X))
            self.inner.fit(X, task)
            return self

        def transform(self, X, task):
            return self.inner.transform(X, task)

    with pytest.warns(UserWarning, match="ignored"):
        TwoPathwayMTL(lay, imputer=Delegating(), hidden=4, max_epochs=2, grid=None, n_threads=1,
                          random_state=0).fit(X, rng.normal(size=60), task)
    assert seen[0].shape == (60, 5) and np.isnan(seen[0][30:, 0:2]).all()
    np.testing.assert_array_equal(seen[0][:, 2:5], X[:, 2:5])
