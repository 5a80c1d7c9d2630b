"""One check for every option that must lie strictly between 0 and 1."""

from __future__ import annotations

import numpy as np
import pytest

from hetmtl._util.validation import ArgumentError, check_fraction
from hetmtl.fusion import LateFusion
from hetmtl.simulate import make_dual_encoder_tasks


@pytest.mark.parametrize("value", [0.5, 1e-9, np.float32(0.25), 1])
def test_numbers_inside_are_returned_as_float(value):
    if value == 1:
        with pytest.raises(ArgumentError, match=r"^level: must lie in \(0, 1\), got 1$"):
            check_fraction(value, "level")
    else:
        assert check_fraction(value, "level") == pytest.approx(float(value))


@pytest.mark.parametrize("value", [True, np.bool_(True), "0.5", None, [0.5], 0.0, 1.0, float("nan")])
def test_booleans_strings_and_the_bounds_are_refused(value):
    with pytest.raises(ArgumentError, match=r"^test_fraction: must lie in \(0, 1\)") as info:
        check_fraction(value, "test_fraction")
    assert info.value.argument == "test_fraction"


def test_entry_points_use_the_shared_check():
    with pytest.raises(ArgumentError, match=r"^level: must lie in \(0, 1\), got '0.9'"):
        LateFusion(level="0.9").fit([])
    with pytest.raises(ArgumentError, match=r"^test_fraction: must lie in \(0, 1\), got True"):
        make_dual_encoder_tasks(test_fraction=True)
