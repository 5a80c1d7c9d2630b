"""Figures for a paper: what the forest and path plots contain (texts and artists, not pixels)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from fusion_helpers import residual_sites  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402

from hetmtl.fusion import LateFusion  # noqa: E402
from hetmtl.fusion.plots import PRINT_DPI  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _fit(thetas, sizes, **kw):
    rng = np.random.default_rng(11)
    summaries, _, _ = residual_sites(rng, np.asarray(thetas, float)[:, None], sizes)
    return LateFusion(n_boot=50, random_state=0, **kw).fit(summaries)


@pytest.fixture(scope="module")
def mixed():
    """Four similar sites and one far out: fused and unfused sites both present."""
    fit = _fit([0.3, 0.32, 0.28, 0.31, 3.0], [300, 400, 500, 350, 400])
    assert fit.fused_mask_.any() and not fit.fused_mask_.all()
    return fit


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def _legend_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_forest_plot_has_text_columns_for_every_site(mixed):
    fig = mixed.plot_forest()
    ax = fig.axes[0]
    texts = _texts(ax)
    table = mixed.summary()
    for title in ("own [95% CI]", "fused [95% CI]", "weight"):
        assert title in texts
    for _, row in table.iterrows():
        assert f"{row['weight %']:.1f}%" in texts
        own = [t for t in texts if t.startswith(f"{row['estimate']:.3g}"[:4]) and "[" in t]
        assert own, row.name
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[:5] == list(mixed.site_names_)
    assert any(label.startswith("random effects") for label in labels)


def test_forest_plot_draws_the_diamond_and_the_null_line(mixed):
    ax = mixed.plot_forest().axes[0]
    diamonds = [p for p in ax.patches if isinstance(p, Polygon)]
    assert len(diamonds) == 1
    meta = mixed.heterogeneity().random_reml
    lo, hi = meta.confint(mixed.level)
    xs = diamonds[0].get_xy()[:, 0]
    assert np.isclose(xs.min(), lo) and np.isclose(xs.max(), hi)
    assert np.isclose(xs[1], meta.estimate)
    verticals = [line for line in ax.lines if np.allclose(line.get_xdata(), 0.0)]
    assert verticals, "no line at the null value"
    ax2 = mixed.plot_forest(null=None).axes[0]
    assert not [line for line in ax2.lines if np.allclose(line.get_xdata(), 0.0)]


def test_forest_legend_lists_only_the_groups_present(mixed):
    labels = _legend_labels(mixed.plot_forest().axes[0])
    assert "fused (with center)" in labels and "fused (own value)" in labels
    assert "random effects (REML)" in labels
    pooled = _fit([0.3, 0.31, 0.29], [300, 300, 300], method="fixed")
    assert pooled.fused_mask_.all()
    labels = _legend_labels(pooled.plot_forest().axes[0])
    assert "fused (own value)" not in labels and "fused (with center)" in labels
    own = _fit([0.3, 0.31, 0.29], [300, 300, 300], method="own")
    assert "fused (with center)" not in _legend_labels(own.plot_forest().axes[0])


def test_figures_save_at_print_resolution(mixed):
    fig = mixed.plot_forest()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    width = int.from_bytes(buffer.getvalue()[16:20], "big")  # the PNG header's width
    assert width == pytest.approx(fig.get_figwidth() * PRINT_DPI, abs=2)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)  # the caller's choice wins
    assert int.from_bytes(buffer.getvalue()[16:20], "big") == pytest.approx(fig.get_figwidth() * 50, abs=2)


def test_forest_plot_draws_into_a_given_axes(mixed):
    fig, ax = plt.subplots()
    assert mixed.plot_forest(ax=ax) is fig
    assert "weight" in _texts(ax)


def test_path_plot_keeps_fused_sites_visible_over_the_center():
    fit = _fit([0.3, 0.32, 0.28, 1.5], [300, 400, 500, 350], lam="cv")
    ax = fit.plot_path().axes[0]
    by_label = {line.get_label(): line for line in ax.lines}
    center = by_label["center"]
    sites = [by_label[name] for name in fit.site_names_]
    assert all(site.get_zorder() > center.get_zorder() for site in sites)
    assert center.get_linewidth() > max(site.get_linewidth() for site in sites)
    assert center.get_alpha() < 1
    # Each site's curve reaches the center at large lambda, and stays drawn there.
    for k, site in enumerate(sites):
        assert np.allclose(site.get_ydata()[0], center.get_ydata()[0])
    assert len({tuple(site.get_color()) for site in sites}) == len(sites)
    assert "chosen lambda" in _legend_labels(ax)


def test_path_plot_of_another_method_says_it_is_for_reference():
    fit = _fit([0.3, 0.32, 0.28, 1.5], [300, 400, 500, 350], lam="cv")
    assert "for reference" not in fit.plot_path().axes[0].get_title(loc="left")
    fit.set_params(lam=None, method="robust_eb", n_boot=20).fit(fit.summaries_)
    assert "this fit used method='robust_eb'" in fit.plot_path().axes[0].get_title(loc="left")
