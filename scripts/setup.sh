#!/usr/bin/env bash
# Set up hetmtl on a fresh Debian machine: R and its packages (Debian), a virtual environment in
# .venv with the package and its extras, the R side's Python in .venv-r (NumPy 1.x for Debian's
# reticulate), and the R package. Safe to run again.
#   HETMTL_DEV=1  installs the Python package in editable mode (C++ rebuilt on import).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# knitr, rmarkdown and pandoc build the vignettes, and R CMD check compacts PDFs with qpdf;
# generics lets the tidy/glance/augment methods be registered without depending on broom
# (which the tests use when present).
R_PKGS="r-base-core r-cran-reticulate r-cran-testthat r-cran-callr r-cran-metafor r-cran-jsonlite r-bioc-multiassayexperiment
  r-cran-knitr r-cran-rmarkdown pandoc r-cran-generics r-cran-broom qpdf"
missing=""
for pkg in $R_PKGS; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "[setup] installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
# pip, quiet, without its "is ignored" notices, failing when pip fails.
pip_quiet() {
  local status=0
  .venv/bin/python -m pip "$@" > .venv/pip.log 2>&1 || status=$?
  grep -v "is ignored" .venv/pip.log || true
  return $status
}
pip_quiet install -q --upgrade pip || echo "[setup] pip could not be upgraded; going on with the one there is"

# torch must be exactly the CPU build that pip finds locally; a loose pin pulls a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "[setup] installing torch (CPU)"
  pip_quiet install -q "torch==2.13.0"
fi

# The compiled core builds for baseline x86-64 by default (what a wheel must do). This build stays
# on this machine, so it targets x86-64-v3 (AVX2, FMA) when the CPU has every feature of that level;
# the module then refuses to load on a CPU without them. HETMTL_MARCH overrides ("" for portable).
if [ -z "${HETMTL_MARCH+set}" ]; then
  HETMTL_MARCH=""
  v3_flags="avx avx2 bmi1 bmi2 f16c fma abm movbe xsave"
  if [ -r /proc/cpuinfo ] && [ "$(uname -m)" = "x86_64" ]; then
    cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
    HETMTL_MARCH="x86-64-v3"
    for flag in $v3_flags; do
      case "$cpu_flags" in *" $flag "*) ;; *) HETMTL_MARCH="" ;; esac
    done
  fi
fi
MARCH_OPT="-Ccmake.define.HETMTL_MARCH=$HETMTL_MARCH"

echo "[setup] building and installing hetmtl (HETMTL_MARCH=${HETMTL_MARCH:-portable})"
if [ "${HETMTL_DEV:-0}" = "1" ]; then
  pip_quiet install -q scikit-build-core pybind11 cmeel-eigen ninja
  pip_quiet install -q --no-build-isolation -Ceditable.rebuild=true -Cbuild-dir=build/dev "$MARCH_OPT" \
    -e ".[test,data,r,torch,docs]"
else
  # One wheel serves both environments (the Python one here and the R side's below).
  rm -rf build/wheel
  pip_quiet wheel -q --no-deps "$MARCH_OPT" -w build/wheel .
  pip_quiet install -q "$(ls build/wheel/hetmtl-*.whl)[test,data,r,torch,docs]"
fi
.venv/bin/python -c "import hetmtl._core, torch" || { echo "[setup] hetmtl failed to install" >&2; exit 1; }

# rpy2 built while R was absent is a wheel without its R interface, and pip's cache keeps serving
# it: rebuild it from source once if it cannot start R.
if ! .venv/bin/python -c "import rpy2.robjects" >/dev/null 2>&1; then
  echo "[setup] rebuilding rpy2 against the installed R"
  pip_quiet install -q --no-cache-dir --force-reinstall --no-deps "rpy2>=3.5,<3.6"
  .venv/bin/python -c "import rpy2.robjects" >/dev/null || { echo "[setup] rpy2 cannot start R" >&2; exit 1; }
fi

# The R package's own Python: Debian's reticulate (1.28) cannot convert NumPy 2 arrays, so R gets
# an environment with NumPy 1.x and the same hetmtl build, while .venv keeps current NumPy.
echo "[setup] preparing the R side's Python (.venv-r)"
if [ ! -x .venv-r/bin/python ]; then
  "$PY" -m venv .venv-r
fi
pip_r() {
  local status=0
  .venv-r/bin/python -m pip "$@" > .venv/pip-r.log 2>&1 || status=$?
  grep -v "is ignored" .venv/pip-r.log || true
  return $status
}
if ! .venv-r/bin/python -c "import torch" 2>/dev/null; then
  pip_r install -q "torch==2.13.0"
fi
if [ "${HETMTL_DEV:-0}" = "1" ]; then
  # Editable too, in a build folder of its own (the two environments configure CMake differently).
  pip_r install -q scikit-build-core pybind11 cmeel-eigen ninja "numpy<2"
  pip_r install -q --no-build-isolation -Ceditable.rebuild=true -Cbuild-dir=build/dev-r "$MARCH_OPT" \
    -e ".[data,torch]" "numpy<2"
else
  pip_r install -q "numpy<2" "$(ls build/wheel/hetmtl-*.whl)[data,torch]"
fi
.venv-r/bin/python -c "import hetmtl._core, numpy; assert numpy.__version__ < '2'" \
  || { echo "[setup] the R side's Python failed to install" >&2; exit 1; }

if [ -f r-wrapper/DESCRIPTION ]; then
  echo "[setup] installing the R package"
  mkdir -p .venv/R-library
  R CMD INSTALL --no-test-load --library=.venv/R-library r-wrapper >/dev/null
fi
echo "[setup] done"
