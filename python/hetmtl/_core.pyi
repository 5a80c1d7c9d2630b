"""Type stub of the compiled core (private: use the public wrappers hetmtl.fusion.fused,
hetmtl.fusion.kernel_grid_core and hetmtl.prox). Arrays are float64 and C-contiguous unless said."""

from typing import ClassVar, Sequence

import numpy as np
from numpy.typing import NDArray

build_march: str

class _Enum:
    """A bound C++ enum: compare with its members, int() gives the C++ value."""
    def __init__(self, value: int) -> None: ...
    def __int__(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

class Penalty(_Enum):
    l2: ClassVar[Penalty]  # 0
    l2sq: ClassVar[Penalty]  # 1

class SolveStatus(_Enum):
    converged: ClassVar[SolveStatus]  # 0
    max_iterations: ClassVar[SolveStatus]  # 1
    not_positive_definite: ClassVar[SolveStatus]  # 2
    numerical_failure: ClassVar[SolveStatus]  # 3
    invalid_input: ClassVar[SolveStatus]  # 4
    stagnated: ClassVar[SolveStatus]  # 5
    interrupted: ClassVar[SolveStatus]  # 6

class GridKernel(_Enum):
    gaussian: ClassVar[GridKernel]  # 0
    epanechnikov: ClassVar[GridKernel]  # 1

class GridFit(_Enum):
    constant: ClassVar[GridFit]  # 0
    linear: ClassVar[GridFit]  # 1

class GridStatus(_Enum):
    ok: ClassVar[GridStatus]  # 0
    bad_dimension: ClassVar[GridStatus]  # 1
    bad_grid: ClassVar[GridStatus]  # 2
    bad_bandwidth: ClassVar[GridStatus]  # 3
    non_finite: ClassVar[GridStatus]  # 4
    out_of_range: ClassVar[GridStatus]  # 5
    bad_fold: ClassVar[GridStatus]  # 6
    empty_fold: ClassVar[GridStatus]  # 7

class HeadPenalty(_Enum):
    none: ClassVar[HeadPenalty]  # 0
    l2: ClassVar[HeadPenalty]  # 1
    l2sq: ClassVar[HeadPenalty]  # 2
    ball: ClassVar[HeadPenalty]  # 3

class ProxStatus(_Enum):
    converged: ClassVar[ProxStatus]  # 0
    max_iterations: ClassVar[ProxStatus]  # 1
    invalid_input: ClassVar[ProxStatus]  # 2
    numerical_failure: ClassVar[ProxStatus]  # 3

class FusedOptions:
    penalty: Penalty
    tol: float
    max_iter: int
    n_threads: int

class FusedFits:
    theta: NDArray[np.float64]      # (L, K, p)
    center: NDArray[np.float64]     # (L, p)
    fused: NDArray[np.bool_]        # (L, K)
    iterations: NDArray[np.int32]   # (L,)
    kkt: NDArray[np.float64]        # (L,)
    status: NDArray[np.int32]       # (L,) SolveStatus codes

class FusedProblem:
    def __init__(self, W: NDArray[np.float64], n: NDArray[np.float64], weights: NDArray[np.float64]) -> None: ...
    @staticmethod
    def diagonal(D: NDArray[np.float64], n: NDArray[np.float64], weights: NDArray[np.float64],
                 allow_semidefinite: bool = False) -> FusedProblem: ...
    valid_input: bool
    positive_definite: bool
    bad_site: int
    bad_eigenvalue: float
    asymmetric_site: int
    def pooled(self, theta_hat: NDArray[np.float64]) -> NDArray[np.float64]: ...
    def lambda_max(self, theta_hat: NDArray[np.float64]) -> float: ...
    def solve(self, theta_hat: NDArray[np.float64], lam: float, options: FusedOptions) -> FusedFits: ...
    def path(self, theta_hat: NDArray[np.float64], lambdas: Sequence[float], options: FusedOptions) -> FusedFits: ...
    def solve_batch(self, theta_hats: NDArray[np.float64], lam: float, options: FusedOptions) -> FusedFits: ...

class GridOptions:
    kernel: GridKernel
    fit: GridFit
    support: float
    n_threads: int
    gauss_recurrence: bool

class GridSums:
    status: GridStatus
    bad_index: int
    M: NDArray[np.float64]          # (F, G, P, P)
    V: NDArray[np.float64]          # (F, G, P, T)
    count: NDArray[np.float64]      # (F, G)

class InterpResult:
    status: GridStatus
    bad_index: int
    n_missing: int
    values: NDArray[np.float64]     # (n, T)

class PointwiseFusedResult:
    theta: NDArray[np.float64]      # (K, G)
    center: NDArray[np.float64]     # (G,)
    status: NDArray[np.int32]       # (G,) SolveStatus codes, -1 where no site has weight
    iterations: NDArray[np.int32]
    kkt: NDArray[np.float64]

def grid_sums(X: NDArray[np.float64], Y: NDArray[np.float64], folds: NDArray[np.int32], n_folds: int,
              axes: Sequence[NDArray[np.float64]], bandwidth: NDArray[np.float64],
              options: GridOptions) -> GridSums: ...
def grid_interpolate(axes: Sequence[NDArray[np.float64]], values: NDArray[np.float64], X: NDArray[np.float64],
                     n_threads: int = 1) -> InterpResult: ...
def fused_pointwise(D: NDArray[np.float64], theta_hat: NDArray[np.float64], n: NDArray[np.float64],
                    weights: NDArray[np.float64], lam: float, options: FusedOptions) -> PointwiseFusedResult: ...

class GeoMedianOptions:
    tol: float
    max_iter: int

class GeoMedianResult:
    median: NDArray[np.float64]
    iterations: int
    residual: float
    at_point: int
    status: ProxStatus

class HeadOptions:
    penalty_beta: HeadPenalty
    penalty_alpha: HeadPenalty
    tol: float
    max_iter: int
    n_threads: int

class HeadProblem:
    """Fields accept only C-contiguous float64 arrays (2-d: Z, H, alpha0, beta0; 1-d: the rest)."""
    Z: NDArray[np.float64]
    H: NDArray[np.float64]
    y: NDArray[np.float64]
    offsets: list[int]
    loss_weights: NDArray[np.float64]
    pen_alpha: NDArray[np.float64]
    pen_beta: NDArray[np.float64]
    ridge: NDArray[np.float64]
    alpha_center: NDArray[np.float64]
    beta_center: NDArray[np.float64]
    alpha0: NDArray[np.float64]
    beta0: NDArray[np.float64]

class HeadResult:
    alpha: NDArray[np.float64]      # (R, q)
    beta: NDArray[np.float64]       # (R, p)
    intercept: NDArray[np.float64]  # (R,)
    fused_alpha: NDArray[np.bool_]
    fused_beta: NDArray[np.bool_]
    iterations: NDArray[np.int32]
    kkt: NDArray[np.float64]
    status: NDArray[np.int32]       # (R,) ProxStatus codes
    status_all: ProxStatus

def group_soft_threshold(V: NDArray[np.float64], center: NDArray[np.float64],
                         tau: NDArray[np.float64]) -> tuple[NDArray[np.float64], ProxStatus]: ...
def project_l2_ball(V: NDArray[np.float64], center: NDArray[np.float64],
                    radius: NDArray[np.float64]) -> tuple[NDArray[np.float64], ProxStatus]: ...
def geometric_median(points: NDArray[np.float64], weights: NDArray[np.float64],
                     options: GeoMedianOptions) -> GeoMedianResult: ...
def solve_heads(problem: HeadProblem, options: HeadOptions) -> HeadResult: ...
def dense_cholesky(A: NDArray[np.float64]) -> tuple[bool, NDArray[np.float64]]: ...
def npmle_fit(z: NDArray[np.float64], w: NDArray[np.float64], site_weights: NDArray[np.float64],
              grid: NDArray[np.float64], tol: float, max_iter: int,
              n_threads: int = 1) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                           NDArray[np.float64], NDArray[np.int32]]: ...
