"""BlockLayout: construction errors, inference from data, splitting rows into blocks, serialization."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hetmtl.blockwise import BlockLayout

SOURCES = {"x0": ["a", "b"], "x1": ["c"], "x2": ["d", "e"]}
OBSERVED = {"A": ["x1"], "B": ["x2"], "C": ["x1", "x2"]}


def named_layout() -> BlockLayout:
    return BlockLayout(SOURCES, "x0", OBSERVED)


def test_description():
    lay = named_layout()
    assert lay.sources == ("x0", "x1", "x2") and lay.tasks == ("A", "B", "C") and lay.n_tasks == 3
    assert lay.all_columns == ("a", "b", "c", "d", "e")
    assert lay.observed("A") == ("x0", "x1") and lay.missing("A") == ("x2",)
    assert lay.observers("x2") == ("B", "C") and lay.observers("x0") == ("A", "B", "C")
    assert lay.imputed_sources == ("x1", "x2")
    np.testing.assert_array_equal(lay.observed_matrix(), [[1, 1, 0], [1, 0, 1], [1, 1, 1]])
    table = lay.summary()
    assert table.loc["B", "x1 (1)"] == "missing" and table.loc["B", "x0 (2) anchor"] == "observed"
    assert "x2: 2" in repr(lay)
    # a source every task observes is not imputed
    full = BlockLayout(SOURCES, "x0", {"A": ["x1", "x2"], "B": ["x1"]})
    assert full.imputed_sources == ("x2",)


@pytest.mark.parametrize("args, match", [
    (({}, "x0", OBSERVED), "sources: expected a non-empty mapping"),
    (({"x0": ["a"], "": ["b"]}, "x0", {"A": []}), "sources: source names"),
    (({"x0": "ab"}, "x0", {"A": []}), "sources: the columns of 'x0'"),
    (({"x0": []}, "x0", {"A": []}), "sources: source 'x0' has no columns"),
    (({"x0": ["a"], "x1": ["a"]}, "x0", {"A": ["x1"]}), "sources: column 'a' belongs to both"),
    (({"x0": ["a"], "x1": [1]}, "x0", {"A": ["x1"]}), "sources: columns must be all names"),
    ((SOURCES, "z", OBSERVED), "anchor: 'z' is not one of"),
    ((SOURCES, "x0", {}), "observed: expected a non-empty mapping"),
    ((SOURCES, "x0", {"A": "x1"}), "observed: the sources of task 'A'"),
    ((SOURCES, "x0", {"A": ["x1", "x9"]}), r"observed: task 'A' names unknown source\(s\) \['x9'\]"),
    ((SOURCES, "x0", {"A": ["x1"]}), r"observed: source\(s\) \['x2'\] are observed by no task"),
])
def test_constructor_errors_name_the_argument(args, match):
    with pytest.raises(ValueError, match=match):
        BlockLayout(*args)


def test_unknown_task_and_source():
    lay = named_layout()
    with pytest.raises(ValueError, match="task: 'Z' is not one of"):
        lay.observed("Z")
    with pytest.raises(ValueError, match="source: 'x9' is not one of"):
        lay.columns("x9")
    with pytest.raises(ValueError, match=r"task: label 'Z' \(row 1\)"):
        lay.task_codes(["A", "Z"])
    np.testing.assert_array_equal(lay.task_codes(np.array(["C", "A", "B"])), [2, 0, 1])


def frame(rng: np.random.Generator, tasks: list[str]) -> pd.DataFrame:
    """Rows of the named layout with the blocks each task misses set to NaN (columns shuffled)."""
    lay = named_layout()
    X = pd.DataFrame(rng.normal(size=(len(tasks), 5)), columns=list("abcde"))
    for i, t in enumerate(tasks):
        for s in lay.missing(t):
            X.loc[i, list(lay.columns(s))] = np.nan
    return X[["e", "c", "a", "d", "b"]]


def test_split_dataframe_and_array_agree():
    rng = np.random.default_rng(0)
    tasks = ["A", "B", "C", "A", "C"]
    X = frame(rng, tasks)
    blocks, codes = named_layout().split(X, tasks)
    np.testing.assert_array_equal(codes, [0, 1, 2, 0, 2])
    np.testing.assert_array_equal(blocks["x0"], X[["a", "b"]].to_numpy())
    assert np.isnan(blocks["x2"][[0, 3]]).all() and np.isfinite(blocks["x2"][[1, 2, 4]]).all()
    # the same data as an array, the layout by positions
    arr = X[list("abcde")].to_numpy()
    pos = BlockLayout({"x0": [0, 1], "x1": [2], "x2": [3, 4]}, "x0", OBSERVED)
    blocks2, _ = pos.split(arr, tasks)
    for s in blocks:
        np.testing.assert_array_equal(blocks2[s], blocks[s])
    with pytest.raises(ValueError, match="X: an array has no column names"):
        named_layout().split(arr, tasks)
    with pytest.raises(ValueError, match=r"X: missing column\(s\) \['c'\]"):
        named_layout().split(X.drop(columns="c"), tasks)
    with pytest.raises(ValueError, match="X: source 'x2' refers to column 4, but X has 4 columns"):
        pos.split(arr[:, :4], tasks)
    negative = BlockLayout({"x0": [0, 1], "x1": [-1]}, "x0", {"A": ["x1"]})
    with pytest.raises(ValueError, match="X: source 'x1' refers to column -1, but X has 5 columns"):
        negative.split(arr, ["A"] * 5)


def test_split_masks_placeholders_and_rejects_missing_observed_values():
    rng = np.random.default_rng(1)
    tasks = ["A", "B"]
    X = frame(rng, tasks).fillna(0.0)  # a placeholder where blocks are missing
    blocks, _ = named_layout().split(X, tasks)
    assert np.isnan(blocks["x2"][0]).all() and np.isnan(blocks["x1"][1]).all()
    X.loc[0, "c"] = np.nan  # x1 is observed by task A
    with pytest.raises(ValueError, match="X: source 'x1' is observed by task 'A' but row 0 has NaN"):
        named_layout().split(X, tasks)
    with pytest.raises(ValueError, match="task: has 3 labels but X has 2 rows"):
        named_layout().split(X, ["A", "B", "A"])
    with pytest.raises(ValueError, match="X: expected a 2-dimensional table"):
        BlockLayout({"x0": [0]}, "x0", {"A": []}).split(np.zeros((2, 1, 1)), ["A", "A"])
    bad = frame(rng, tasks).astype(object)
    bad.iloc[0, 2] = "text"
    with pytest.raises(ValueError, match="X: the columns of source 'x0' are not numeric"):
        named_layout().split(bad, tasks)


def test_from_data_infers_the_observed_sets():
    rng = np.random.default_rng(2)
    tasks = ["B", "A", "C", "B", "A"]
    X = frame(rng, tasks)
    lay = BlockLayout.from_data(X, tasks, SOURCES, "x0")
    assert lay.tasks == ("B", "A", "C")  # order of first appearance
    assert lay.observed("A") == ("x0", "x1") and lay.observed("B") == ("x0", "x2")
    assert lay.observed("C") == ("x0", "x1", "x2")
    X.loc[3, "d"] = np.nan  # task B: x2 now partly observed
    with pytest.raises(ValueError, match="X: source 'x2' is partly observed for task 'B' \\(3 of 4"):
        BlockLayout.from_data(X, tasks, SOURCES, "x0")
    X = frame(rng, tasks)
    X.loc[[1, 4], ["a", "b"]] = np.nan
    with pytest.raises(ValueError, match="X: task 'A' does not observe the anchor source 'x0'"):
        BlockLayout.from_data(X, tasks, SOURCES, "x0")
    with pytest.raises(ValueError, match="task: has 2 labels but X has 5 rows"):
        BlockLayout.from_data(frame(rng, tasks), tasks[:2], SOURCES, "x0")
    text = frame(rng, tasks).astype(object)
    text.iloc[0, 0] = "text"
    with pytest.raises(ValueError, match="X: the columns of source 'x2' are not numeric"):
        BlockLayout.from_data(text, tasks, SOURCES, "x0")


def test_dict_round_trip_through_json():
    numpy_labels = {np.int64(0): ["x1"], np.int64(1): []}
    for lay in (named_layout(), BlockLayout({"x0": [0, 1], "x1": [2]}, "x0", numpy_labels)):
        d = json.loads(json.dumps(lay.to_dict()))
        back = BlockLayout.from_dict(d)
        assert back == lay and back.all_columns == lay.all_columns
    assert named_layout() != BlockLayout(SOURCES, "x0", {"A": ["x1"], "B": ["x2"]})
    with pytest.raises(ValueError, match="layout: missing field 'anchor'"):
        BlockLayout.from_dict({"sources": SOURCES, "observed": []})


def test_from_data_rejects_missing_task_labels():
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="task: 1 row"):
        BlockLayout.from_data(X, np.array(["a", None], dtype=object), {"x0": [0], "x1": [1]}, anchor="x0")
