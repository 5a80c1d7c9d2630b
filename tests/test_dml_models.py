"""The per-model classes behind SiteDML: roles, propensities, prediction shapes."""

from __future__ import annotations

import numpy as np
import pytest

from hetmtl.fusion.dml_models import MODELS, CATELinear, IRM, PLR, get_model


def test_models_and_their_roles():
    assert MODELS == ("plr", "irm", "cate_linear")
    assert [type(get_model(m)) for m in MODELS] == [PLR, IRM, CATELinear]
    assert get_model("plr").roles == ("ml_l", "ml_m") and get_model("irm").roles == ("ml_g", "ml_m")
    # Only the binary-treatment models estimate a propensity score.
    assert not get_model("plr").needs_propensity("ml_m")
    assert get_model("irm").needs_propensity("ml_m") and get_model("cate_linear").needs_propensity("ml_m")
    assert not get_model("irm").needs_propensity("ml_g")


def test_external_predictions_are_shaped_per_model():
    plr, irm = get_model("plr"), get_model("irm")
    n, k = 6, 2
    got = plr.check_predictions({"ml_l": np.zeros(n), "ml_m": np.zeros((n, k))}, n, 1, k)
    assert got["ml_l"].shape == (1, n) and got["ml_m"].shape == (1, n, k)
    got = irm.check_predictions({"ml_g0": np.zeros((3, n))}, n, 3, 1)
    assert got["ml_g0"].shape == (3, n)
    with pytest.raises(ValueError, match=r"predictions: unknown role 'ml_l' for model 'irm'"):
        irm.check_predictions({"ml_l": np.zeros(n)}, n, 1, 1)
    with pytest.raises(ValueError, match=r"predictions\['ml_m'\]: expected shape \(6, 2\)"):
        plr.check_predictions({"ml_m": np.zeros(n)}, n, 1, k)
    with pytest.raises(ValueError, match="predictions: expected a dict"):
        plr.check_predictions([np.zeros(n)], n, 1, 1)
