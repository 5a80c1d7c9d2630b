"""The block-wise guide says what the model does: what the task encoders read by default, with
and without an imputer, and which setting gives the paper's model."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from hetmtl.blockwise import TwoPathwayMTL  # noqa: E402
from hetmtl.blockwise._data import anchor_columns  # noqa: E402
from hetmtl.simulate import make_blockwise_tasks  # noqa: E402

pytestmark = pytest.mark.torch

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "blockwise.md"


@pytest.fixture(scope="module")
def text() -> str:
    return " ".join(GUIDE.read_text(encoding="utf-8").split())


@pytest.fixture(scope="module")
def data():
    return make_blockwise_tasks(2, 40, p_anchor=3, p_specific=2, random_state=0)


def _reads_anchor(data, **params) -> bool:
    """Whether a fitted model's task encoders have any weight on the anchor's columns."""
    model = TwoPathwayMTL(data.layout, hidden=4, max_epochs=2, patience=2, grid=None, n_threads=1,
                          random_state=0, **params).fit(data.X, data.y, data.task)
    w = model.net_.task_input_weights().detach()
    return bool((w[:, anchor_columns(data.layout)] != 0).any())


@pytest.mark.parametrize("imputer", ["mean", None])
def test_default_task_encoders_do_not_read_the_anchor(data, text, imputer):
    assert not _reads_anchor(data, imputer=imputer)
    assert ("a **task encoder** per task on that task's own observed sources (not the anchor"
            in text)
    assert "keeps the anchor in the task encoders" not in text


def test_task_inputs_all_and_the_papers_model_read_the_anchor(data, text):
    assert _reads_anchor(data, imputer=None, task_inputs="all")
    assert _reads_anchor(data, imputer="mean", architecture="paper")
    assert "`task_inputs=\"all\"` makes each task encoder read every source its task observes" in text
    assert ("`architecture=\"paper\"` gives the model of the original paper instead: the shared "
            "encoder reads the anchor only and each task encoder the completed row") in text
    # The old description had the paper's model as the default.
    assert "a shared encoder of the anchor, one encoder per task on the completed row" not in text
