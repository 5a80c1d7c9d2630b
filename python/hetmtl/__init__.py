"""hetmtl: multi-task learning for tasks that are related but different.

Three methods, each in its own subpackage:

fusion
    **Late fusion** of per-site double machine learning estimates. Each site fits its own DML
    estimate and sends a small summary (no row of data leaves a site); the center fuses the
    summaries so that similar sites borrow strength and outlying ones keep their own answer.
    Also **nuisance fusion**: kernel regression summaries on a shared grid.
dual
    **Dual-encoder** multi-task regression: a shared encoder and one encoder per task, heads
    pulled toward a learned center, for tasks with covariate shift and posterior drift
    (needs torch).
blockwise
    **Block-wise missing** multi-source learning: whole missing sources imputed from an
    anchoring source (HBI), then a two-pathway multi-task model (needs torch).

Quick start
-----------
Late fusion, at each site and then at the center::

    from hetmtl.fusion import SiteDML, LateFusion
    summary = SiteDML(model="plr", random_state=1).fit(df, y="y", d="d", x=["x1", "x2"]).summary_
    LateFusion(random_state=0).fit([summary_a, summary_b, summary_c]).summary()

Dual encoder, one table with a task label per row::

    from hetmtl.dual import DualEncoderMTL
    DualEncoderMTL(random_state=0).fit(X, y, task).predict(X_new, task_new)

Block-wise missing sources::

    from hetmtl.blockwise import BlockLayout, TwoPathwayMTL
    layout = BlockLayout.from_data(X, task, sources={"clinical": [...], "mri": [...]},
                                   anchor="clinical")
    TwoPathwayMTL(layout, random_state=0).fit(X, y, task).predict(X_new, task_new)

Saving fits
-----------
``hetmtl.save(fit, "fit.hetmtl")`` and ``hetmtl.load("fit.hetmtl")`` (or ``fit.save(path)`` and
``Class.load(path)``) keep fits in one versioned file without pickle; ``hetmtl.dumps`` and
``hetmtl.loads`` do the same with bytes (see :mod:`hetmtl.persist`).

Building blocks
---------------
nn
    Torch building blocks shared by the neural methods (needs torch).
prox
    Compiled proximal building blocks: group soft-thresholding, ball projection, geometric
    median, the multi-task head solver.
simulate
    Data-generating processes of the package's methods.
studies
    Running simulation studies in parallel, reproducibly.
datasets
    Loaders for real multi-site data shipped in registry packages.
persist
    The file format of saved fits.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hetmtl")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

from .persist import dumps, load, loads, save  # noqa: E402  (after __version__, which they record)

__all__ = ["__version__", "dumps", "load", "loads", "save"]
