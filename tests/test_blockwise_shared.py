"""The two-pathway model's shared architecture (a shared encoder on the completed row with gated
imputed inputs) against the paper's, on a reduced design where one response mapping is shared
and the missing sources carry signal; the architecture option; progress output."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hetmtl.blockwise import HBIImputer, TwoPathwayMTL, htl  # noqa: E402
from hetmtl.blockwise import _data  # noqa: E402
from hetmtl.blockwise._two_pathway import NetSpec, SharedInput, TwoPathwayNet  # noqa: E402
from hetmtl.nn import progress  # noqa: E402
from hetmtl.nn.runtime import PlainBar  # noqa: E402
from hetmtl.simulate import make_shared_mapping_tasks  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def small():
    return make_shared_mapping_tasks(60, p_anchor=4, p_source=6, random_state=2)


def quick(layout, **kw):
    params = dict(imputer="mean", hidden=8, max_epochs=6, patience=3, n_threads=1, random_state=0)
    params.update(kw)
    return TwoPathwayMTL(layout, **params)


def test_design_has_the_stated_layout_and_a_shared_mapping():
    d = make_shared_mapping_tasks(50, random_state=0)
    assert d.layout.observed(0) == ("x0", "x1") and d.layout.observed(1) == ("x0", "x2")
    assert d.layout.observed(2) == ("x0", "x1", "x2")
    assert [d.layout.width(s) for s in d.layout.sources] == [10, 20, 20]
    full = np.vstack([d.X_full, d.X_test_full])
    x0 = full[:, :10]
    for s in ("x1", "x2"):  # half of each source is a linear function of the anchor, half is not
        cols = np.array(d.layout.columns(s))
        r2 = [1 - np.linalg.lstsq(np.c_[x0, np.ones(len(x0))], full[:, c], rcond=None)[1][0] / (len(x0) * full[:, c].var())
              for c in cols]
        assert np.all(np.array(r2[:10]) > 0.8) and np.all(np.array(r2[10:]) < 0.2)
    # one mapping: the noiseless response is the same function of the full row for every task
    f = full[len(d.X_full):] @ d.v_shared
    assert np.corrcoef(f, d.f_test)[0, 1] > 0.5


def test_default_reads_the_completed_row_and_paper_the_anchor(small):
    lay = small.layout
    default = quick(lay).fit(small.X, small.y, small.task)
    paper = quick(lay, architecture="paper").fit(small.X, small.y, small.task)
    p, p0 = len(lay.all_columns), lay.width(lay.anchor)
    assert default.architecture == "shared" and default.net_.shared_enc.in_dim == p + 2  # + one indicator per source
    assert paper.net_.shared_enc.in_dim == p0 and paper.net_.n_gates == 0
    # the shared architecture's task encoders read the task's own sources only
    w = default.net_.task_input_weights().detach().view(lay.n_tasks, p, -1)
    own = torch.as_tensor(_data.column_mask(lay, "observed"))
    own[:, _data.anchor_columns(lay)] = False
    assert (w[~own] == 0).all() and (w[own] != 0).any()
    gates = default.imputation_gates()
    assert list(gates.index) == ["x1", "x2"] and ((gates > 0) & (gates < 1)).all()
    assert paper.imputation_gates().empty
    with pytest.raises(ValueError, match="architecture"):
        quick(lay, architecture="both").fit(small.X, small.y, small.task)


def test_imputed_values_reach_predictions_only_through_the_shared_pathway(small):
    """Changing a task's missing block changes the default's predictions (the shared encoder reads
    the imputation) but not those of the paper's architecture with own-source task encoders."""

    class Shifted:  # mean imputation plus a constant, to perturb the imputed values only
        def __init__(self, layout, shift=0.0):
            self.layout, self.shift = layout, shift

        def fit(self, X, task):
            self.means_ = np.nanmean(X, axis=0)
            return self

        def transform(self, X, task):
            return np.where(np.isnan(X), self.means_ + self.shift, X)

    lay = small.layout
    for arch, changes in (("shared", True), ("paper", False)):
        m = quick(lay, architecture=arch, task_inputs="own", imputer=Shifted(lay)).fit(small.X, small.y, small.task)
        base = m.predict(small.X_test, small.task_test)
        m.imputer_.shift = 1.0
        moved = m.predict(small.X_test, small.task_test)
        assert (not np.allclose(base, moved)) == changes, arch


def test_gated_stack_equals_each_configuration_alone(small):
    grid = {"hidden": [4, 8], "gamma": [0.0, 0.1], "delta": [0.0, 0.5]}
    kw = dict(max_epochs=5, patience=3, random_state=1)
    m = quick(small.layout, grid=grid, **kw).fit(small.X, small.y, small.task)
    for _, row in m.cv_results_.iloc[[0, 5, 7]].iterrows():
        alone = quick(small.layout, hidden=int(row.hidden), gamma=row.gamma, delta=row.delta, **kw)
        alone.fit(small.X, small.y, small.task)
        np.testing.assert_allclose(alone.cv_results_.val_loss[0], row.val_loss, rtol=1e-5)


def test_gate_penalty_matches_its_definition():
    T, p = 2, 5
    imputed = torch.tensor([[0, 0, 0, 1, 1], [0, 1, 1, 0, 0]], dtype=torch.float32)
    shared = SharedInput(imputed=imputed, gate_of=torch.tensor([0, 0, 0, 1, 1]), n_gates=2,
                         indicators=torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    spec = NetSpec(n_tasks=T, p_anchor=shared.width, p_in=p, n_layers=1, head_layers=1, shared_head="paper",
                   activation="relu")
    gens = [torch.Generator().manual_seed(k) for k in range(2)]
    net = TwoPathwayNet(spec, (3, 2), gens, torch.arange(1), torch.ones(T, p), torch.zeros(T, p), shared)
    g = net.gates().detach()
    w = net.shared_enc.weights[0].detach()
    want = [float(g[k, 0] ** 2 * w[k, 1:3].square().sum() + g[k, 1] ** 2 * w[k, 3:5].square().sum()) for k in range(2)]
    np.testing.assert_allclose(net.imputation_penalty().detach(), want, rtol=1e-6)
    # the input: observed entries as they are, imputed ones times their gate, then the indicators
    x = torch.randn(T, p, 4)
    with torch.no_grad():
        inp = net._completed_input(x).view(2, p + 2, T, 4)
    np.testing.assert_allclose(inp[1, :p, 0], x[0] * torch.tensor([1, 1, 1, g[1, 1], g[1, 1]])[:, None], rtol=1e-6)
    np.testing.assert_allclose(inp[0, :p, 1], x[1] * torch.tensor([1, g[0, 0], g[0, 0], 1, 1])[:, None], rtol=1e-6)
    assert (inp[:, p:, 1] == torch.tensor([1.0, 0.0])[:, None]).all()


def test_default_beats_the_paper_architecture_and_htl_where_a_shared_mapping_transfers():
    """The held-out kind of design, reduced: the default must beat HTL and the paper's imputing
    architecture on every replication on average by more than two standard errors (paired)."""
    diffs = []
    for rep in range(5):
        d = make_shared_mapping_tasks(120, random_state=100 + rep)
        hbi = HBIImputer(d.layout, width=16, depth=1, lam_orth=0.0, n_threads=1, random_state=rep)
        kw = dict(n_threads=1, random_state=rep)
        models = (TwoPathwayMTL(d.layout, imputer=hbi, **kw), htl(d.layout, **kw),
                  TwoPathwayMTL(d.layout, imputer=hbi, architecture="paper", **kw))
        r = [m.fit(d.X, d.y, d.task).per_task_rmse(d.X_test, d.y_test, d.task_test).mean() for m in models]
        diffs.append([r[1] - r[0], r[2] - r[0]])
    diffs = np.array(diffs)
    mean, se = diffs.mean(0), diffs.std(0, ddof=1) / np.sqrt(len(diffs))
    assert np.all(mean > 2 * se), diffs


def test_verbose_fit_shows_progress(small, capfd):
    quick(small.layout, imputer=HBIImputer(small.layout, width=4, depth=1, lam_orth=0.0, max_epochs=5, verbose=True),
          verbose=True).fit(small.X, small.y, small.task)
    err = capfd.readouterr().err
    assert "two-pathway" in err and "HBI" in err
    quick(small.layout, verbose=False).fit(small.X, small.y, small.task)
    assert capfd.readouterr().err == ""


def test_plain_bar_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails as if tqdm were missing
    bar = progress(10, True, "fit")
    assert isinstance(bar, PlainBar)
    bar.stream = io.StringIO()
    for _ in range(4):
        bar.update(1)
        bar.set_postfix(val="0.5")
    bar.close()
    text = bar.stream.getvalue()
    assert text.endswith("\n") and "fit: [########............] 4/10 val=0.5" in text
