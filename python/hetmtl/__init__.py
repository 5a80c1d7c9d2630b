"""hetmtl: multi-task learning for heterogeneous tasks.

Subpackages
-----------
fusion
    Late fusion of per-site double machine learning estimates (no row-level data leaves a site).
dual
    Dual-encoder multi-task regression (shared and task-specific encoders) and its baselines
    (needs torch).
nn
    Torch building blocks shared by the neural methods (needs torch).
proximal
    Compiled proximal building blocks: group soft-thresholding, ball projection, geometric
    median, the multi-task head solver.
simulate
    Data-generating processes of the package's methods.
studies
    Running simulation studies in parallel, reproducibly.
datasets
    Loaders for real multi-site data shipped in registry packages.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hetmtl")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
