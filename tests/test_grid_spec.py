"""NuisanceGridSpec: the grid specification file of nuisance fusion."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hetmtl._util.validation import ArgumentError
from hetmtl.fusion.kernel_grid import GRID_SPEC_SCHEMA, KernelGrid, NuisanceGridSpec


def _grid() -> KernelGrid:
    return KernelGrid.from_ranges([[0.0, 1.0], [-2.0, 2.0]], 5, kernel="epanechnikov", fit="linear")


def test_round_trip_through_json(tmp_path):
    spec = NuisanceGridSpec(_grid(), [0.5, 1.0], threshold=3)
    assert spec.bandwidths.shape == (2, 2) and np.all(spec.bandwidths[1] == 1.0)
    path = tmp_path / "grid.json"
    spec.to_json(path)
    on_disk = json.loads(path.read_text())
    assert on_disk["schema"] == GRID_SPEC_SCHEMA and on_disk["threshold"] == 3.0
    back = NuisanceGridSpec.from_json(path)
    assert back.grid.same_as(spec.grid) and back.grid.outside == spec.grid.outside
    np.testing.assert_array_equal(back.bandwidths, spec.bandwidths)
    assert back.threshold == spec.threshold


@pytest.mark.parametrize("kwargs,argument", [
    (dict(bandwidths=[0.5, -1.0]), "bandwidths"),
    (dict(bandwidths=np.ones((2, 3))), "bandwidths"),
    (dict(bandwidths=[1.0], threshold=-1.0), "threshold"),
])
def test_bad_values_name_the_argument(kwargs, argument):
    with pytest.raises(ArgumentError) as info:
        NuisanceGridSpec(_grid(), **kwargs)
    assert info.value.argument == argument
    assert str(info.value).startswith(f"{argument}: ")


def test_other_files_are_refused(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"schema": "hetmtl.grid_summary"}))
    with pytest.raises(ValueError, match="not a nuisance grid specification"):
        NuisanceGridSpec.from_json(path)
    spec = NuisanceGridSpec(_grid(), [1.0]).to_dict()
    del spec["threshold"]
    with pytest.raises(ValueError, match=r"missing field\(s\) \['threshold'\]"):
        NuisanceGridSpec.from_dict(spec)


def test_points_outside_the_grid_name_their_row():
    grid = KernelGrid.from_ranges([[0.0, 1.0]], 5)
    with pytest.raises(ArgumentError, match=r"^X: row 2 lies outside the grid's range"):
        grid.prepare_points(np.array([0.0, 1.0, 1.5, -3.0]))
    clipped = KernelGrid.from_ranges([[0.0, 1.0]], 5, outside="clip").prepare_points([1.5, -3.0])
    np.testing.assert_array_equal(clipped[:, 0], [1.0, 0.0])


def test_argument_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(ArgumentError("n_folds", "must be at least 2")))
    assert (err.argument, err.problem, str(err)) == ("n_folds", "must be at least 2",
                                                     "n_folds: must be at least 2")
