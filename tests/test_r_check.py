"""``R CMD check --as-cran`` of the R package: 0 errors, 0 warnings, every note explained.

The tarball is built (vignettes included) and checked in a temporary folder, with the R side's
Python for the examples, tests and vignettes. No network here: the remote parts of the CRAN
incoming checks are switched off, and suggested packages absent from the machine do not fail
the check. The check takes a few minutes; its duration is printed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from r_session import R_PACKAGE, r_environment, rscript

pytestmark = pytest.mark.r

CHECK_ENV = {
    "_R_CHECK_FORCE_SUGGESTS_": "false",
    "_R_CHECK_CRAN_INCOMING_REMOTE_": "false",
    # The check's own time stamps need a clock service on the network.
    "_R_CHECK_SYSTEM_CLOCK_": "false",
    "NOT_CRAN": "false",
}


def _notes(log: str) -> list[str]:
    """The first line of every NOTE of a check log."""
    return re.findall(r"^\* (checking [^\n]*?) \.\.\.(?: \[[^\]\n]*\])? NOTE$", log, flags=re.M)


@pytest.fixture(scope="module")
def check_log(tmp_path_factory) -> str:
    r_bin = str(Path(rscript()).with_name("R"))
    work = tmp_path_factory.mktemp("R-check")
    src = work / "hetmtl"
    shutil.copytree(R_PACKAGE, src, ignore=shutil.ignore_patterns("*.Rcheck", "*.tar.gz"))
    env = {**r_environment([]), **CHECK_ENV}
    start = time.monotonic()
    build = subprocess.run([r_bin, "CMD", "build", str(src)], cwd=work, env=env,
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, f"R CMD build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    tarball = next(work.glob("hetmtl_*.tar.gz"))
    check = subprocess.run([r_bin, "CMD", "check", "--as-cran", "--no-manual", tarball.name],
                           cwd=work, env=env, capture_output=True, text=True, timeout=1500)
    elapsed = time.monotonic() - start
    print(f"R CMD build + check --as-cran took {elapsed:.0f} s")
    log_path = work / "hetmtl.Rcheck" / "00check.log"
    assert log_path.exists(), f"no check log:\n{check.stdout[-4000:]}\n{check.stderr[-4000:]}"
    return log_path.read_text(encoding="utf-8", errors="replace")


def test_check_has_no_errors_or_warnings(check_log):
    status = re.search(r"^Status: (.*)$", check_log, flags=re.M)
    assert status is not None, check_log[-4000:]
    assert "ERROR" not in status.group(1) and "WARNING" not in status.group(1), check_log[-8000:]


def test_every_note_is_explained(check_log):
    comments = (R_PACKAGE / "cran-comments.md").read_text(encoding="utf-8")
    unexplained = [n for n in _notes(check_log) if n not in comments]
    assert not unexplained, f"notes not explained in cran-comments.md: {unexplained}\n{check_log[-6000:]}"


def test_examples_vignettes_and_tests_ran(check_log):
    for step in ("checking examples", "checking tests", "checking re-building of vignette outputs"):
        assert re.search(rf"^\* {step} \.\.\.", check_log, flags=re.M), f"{step} missing:\n{check_log[-4000:]}"
