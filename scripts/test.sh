#!/usr/bin/env bash
# Set up everything (see scripts/setup.sh) and run the whole test suite: Python, the C++ core
# through its bindings, torch, and R (testthat, run from pytest so it counts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
exec .venv/bin/python -m pytest "$@"
