"""scikit-learn's estimator checks on the neural estimators and the block-wise imputers.

The checks fit on random arrays with ``fit(X, y)``. A multi-task estimator needs a task label per
row (and a block-wise one, the columns of its layout), so every check that fits cannot apply:
those are listed below with that reason and expected to fail. The others (construction,
parameters, cloning, tags, representation, the error before fitting, refusal of a missing ``y``
and of sparse input) must pass.
"""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import check_estimator

torch = pytest.importorskip("torch")

from hetmtl.blockwise import (BlockLayout, HBIImputer, IterativeBlockImputer, MeanBlockImputer,  # noqa: E402
                              TwoPathwayMTL)
from hetmtl.dual import DualEncoderMTL, HardSharingMTL  # noqa: E402

pytestmark = pytest.mark.torch

LAYOUT = BlockLayout({"x0": [0, 1], "x1": [2]}, "x0", {"a": ["x1"], "b": []})
TINY = dict(max_epochs=2, patience=1, n_threads=1, random_state=0)

# One estimator of each family of the dual encoder's and of the block-wise regressors (the others
# share their base classes), and every imputer.
ESTIMATORS = [
    DualEncoderMTL(hidden=(4,), latent_shared=2, latent_specific=1, encoder_steps=1,
                   negative_transfer="off", **TINY),
    HardSharingMTL(hidden=(4,), latent=2, **TINY),
    TwoPathwayMTL(LAYOUT, imputer="mean", hidden=4, **TINY),
    HBIImputer(LAYOUT, width=4, depth=1, lam_orth=0.0, max_epochs=2, n_threads=1, random_state=0),
    MeanBlockImputer(LAYOUT),
    IterativeBlockImputer(LAYOUT),
]

NEEDS_TASKS = ("fits need a task label per row (and block-wise estimators the columns of their "
               "layout); the check fits on random arrays with fit(X, y) only")

# Checks that fit (or need a fitted estimator) on the check's own data.
FITTING_CHECKS = (
    "check_complex_data", "check_dict_unchanged", "check_dont_overwrite_parameters",
    "check_dtype_object", "check_estimators_dtypes", "check_estimators_empty_data_messages",
    "check_estimators_fit_returns_self", "check_estimators_nan_inf", "check_estimators_overwrite_params",
    "check_estimators_pickle", "check_f_contiguous_array_estimator", "check_fit2d_1feature",
    "check_fit2d_1sample", "check_fit2d_predict1d", "check_fit_check_is_fitted", "check_fit_idempotent",
    "check_fit_score_takes_y", "check_methods_sample_order_invariance", "check_methods_subset_invariance",
    "check_n_features_in", "check_n_features_in_after_fitting", "check_pipeline_consistency",
    "check_positive_only_tag_during_fit", "check_readonly_memmap_input",
)
REGRESSOR_CHECKS = (
    "check_regressor_data_not_an_array", "check_regressors_int", "check_regressors_no_decision_function",
    "check_regressors_train", "check_supervised_y_2d",
)
TRANSFORMER_CHECKS = (
    "check_transformer_data_not_an_array", "check_transformer_general", "check_transformer_preserve_dtypes",
    # The imputers read the task labels before the rows, so sparse rows fail on the labels first.
    "check_estimator_sparse_array", "check_estimator_sparse_matrix", "check_estimator_sparse_tag",
    "check_estimators_nan_inf",
)
# Its parameters are IterativeImputer's options, kept as one dict (get_params lists them).
OPTIONS_AS_KWARGS = {"check_no_attributes_set_in_init": "IterativeBlockImputer keeps IterativeImputer's "
                                                        "options as **kwargs in the attribute kwargs, "
                                                        "which is not a parameter name"}


# What every estimator here must pass: construction, parameters, cloning, tags, the error before
# fitting; the regressors also refuse a missing y, sparse rows and 1-d X with a clear error.
CONTRACT_CHECKS = ("check_estimator_cloneable", "check_estimator_repr", "check_no_attributes_set_in_init",
                   "check_parameters_default_constructible", "check_get_params_invariance",
                   "check_set_params", "check_valid_tag_types", "check_estimator_tags_renamed",
                   "check_mixin_order", "check_do_not_raise_errors_in_init_or_set_params")
REGRESSOR_INPUT_CHECKS = ("check_estimators_unfitted", "check_requires_y_none", "check_estimator_sparse_array",
                          "check_estimator_sparse_matrix", "check_fit1d", "check_supervised_y_no_nan")


def expected_failed_checks(estimator) -> dict[str, str]:
    names = list(FITTING_CHECKS)
    if hasattr(estimator, "transform"):
        names += TRANSFORMER_CHECKS
    else:
        names += REGRESSOR_CHECKS
    out = {name: NEEDS_TASKS for name in names}
    if isinstance(estimator, IterativeBlockImputer):
        out.update(OPTIONS_AS_KWARGS)
    return out


# check_estimator announces each skipped check (the array-API one, without SCIPY_ARRAY_API) as a
# warning; the result list records the skips.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda est: type(est).__name__)
def test_sklearn_estimator_checks(estimator):
    # check_estimator rather than one test per check: the listed checks must fail (a check that
    # starts to pass is reported, so the list stays true), every other one must pass or skip.
    expected = expected_failed_checks(estimator)
    results = check_estimator(estimator, expected_failed_checks=expected, on_fail=None)
    status = {}
    for r in results:   # a check run more than once (with several settings) counts by its worst
        status[r["check_name"]] = max(status.get(r["check_name"], "passed"), r["status"],
                                      key=["passed", "skipped", "xfail", "failed"].index)
    failed = {name: repr(r["exception"]) for r in results
              if r["status"] == "failed" for name in [r["check_name"]]}
    assert not failed, failed
    assert {name for name, st in status.items() if st == "xfail"} == set(expected) & set(status)
    unexpected_pass = sorted(name for name in expected if status.get(name) == "passed")
    assert not unexpected_pass, f"listed as failing but passed: {unexpected_pass}"
    must_pass = set(CONTRACT_CHECKS) - set(expected)
    transformer = hasattr(estimator, "transform")
    must_pass |= {"check_transformers_unfitted"} if transformer else set(REGRESSOR_INPUT_CHECKS)
    assert {name: status.get(name) for name in must_pass} == dict.fromkeys(must_pass, "passed")
