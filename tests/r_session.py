"""Running R code against the R package built from this checkout, in child Rscript processes.

R code that calls the package through reticulate runs in a child process, never in rpy2's
embedded R (reticulate releases Python objects without the GIL there and the process crashes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from r_python import r_side_python

REPO = Path(__file__).resolve().parents[1]
R_PACKAGE = REPO / "r-wrapper"


def rscript() -> str:
    """Path of Rscript; a missing R fails under CI (the set-up installs it) and skips elsewhere."""
    path = shutil.which("Rscript")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Rscript not found on PATH, but CI=true: the project's set-up installs R")
        pytest.skip("Rscript not found on PATH (R is installed by the project's set-up)")
    return path


def r_environment(extra_libs: list[str]) -> dict[str, str]:
    """The environment of a child R: its libraries first, the R side's Python, no display."""
    libs = [*extra_libs, str(REPO / ".venv" / "R-library")]
    if os.environ.get("R_LIBS"):
        libs.append(os.environ["R_LIBS"])
    return {**os.environ, "R_LIBS": os.pathsep.join(libs), "RETICULATE_PYTHON": r_side_python(),
            "MPLBACKEND": "Agg", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def install_package(lib: Path) -> tuple[str, dict[str, str]]:
    """Install the R package from the current sources into ``lib``; Rscript and its environment."""
    script = rscript()
    r_bin = str(Path(script).with_name("R"))
    proc = subprocess.run([r_bin, "CMD", "INSTALL", "--no-test-load", f"--library={lib}",
                           str(R_PACKAGE)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"R CMD INSTALL failed:\n{proc.stdout}\n{proc.stderr}"
    return script, r_environment([str(lib)])


def run_r(r_env: tuple[str, dict[str, str]], args: list[str], timeout: int = 300,
          cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``Rscript --vanilla ARGS`` in the environment of :func:`install_package`."""
    script, env = r_env
    return subprocess.run([script, "--vanilla", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)
