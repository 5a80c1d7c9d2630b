// Kernel sums on a shared tensor grid (nuisance fusion), the per-grid-point fused solve and
// multilinear interpolation back to data points.
//
// The grid is the tensor product of d sorted axes (d = 1..3); grid point g = (i_1, .., i_d) is
// stored at g = ((i_1 * m_2) + i_2) * m_3 + i_3 (last axis fastest). Kernels are products of
// one-dimensional kernels with k(0) = 1, so S0 is a kernel-weighted count of observations.
//
// For every grid point x_g and fold f the core accumulates, over the rows i of fold f,
//   M_g = sum_i K_h(X_i - x_g) z_i z_i'        (P x P, P = 1 or d + 1)
//   V_g = sum_i K_h(X_i - x_g) z_i Y_i'        (P x T)
//   count_g = #{i : |X_ij - x_gj| <= support_j h_j for every j}
// with z_i = 1 (local constant, so M = S0 and V = S1) or z_i = (1, X_i - x_g) (local linear).
// Every moment is a product over dimensions of one-dimensional factors k(u) u^e, so a data point
// costs its factors on each axis plus one multiply-add per grid point and moment. The Gaussian
// factors of an axis cost one exp per axis point, or three exps and a multiplicative recurrence on
// an equally spaced axis (see src/kernel_grid_factors.hpp). A data point counts for a box of grid
// points: 2^d updates of a difference array (Gaussian) or one per grid point of the box
// (Epanechnikov).
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <vector>

#include "hetmtl/fused.hpp"
#include "hetmtl/types.hpp"

namespace hetmtl {

enum class GridKernel : int {
    Gaussian = 0,      // exp(-u^2 / 2), u = (x - a) / h; never skips points
    Epanechnikov = 1,  // max(0, 1 - u^2); compact: only grid points with |u| < 1 are visited
};

enum class GridFit : int { LocalConstant = 0, LocalLinear = 1 };

enum class GridStatus : int {
    Ok = 0,
    BadDimension = 1,   // d outside 1..3, or inputs of mismatched sizes
    BadGrid = 2,        // an axis is empty, not finite or not strictly increasing
    BadBandwidth = 3,   // a bandwidth is <= 0 or not finite
    NonFinite = 4,      // NaN or infinity in X or Y
    OutOfRange = 5,     // a point of X lies outside the grid's range
    BadFold = 6,        // a fold label outside 0..n_folds-1
    EmptyFold = 7,      // a fold has no rows
};

struct GridOptions {
    GridKernel kernel = GridKernel::Gaussian;
    GridFit fit = GridFit::LocalConstant;
    // An observation counts for grid point g when |X_ij - x_gj| <= support * h_j in every
    // dimension (the Epanechnikov kernel's support is 1, whatever this value).
    double support = 3.0;
    int n_threads = 1;
    // Gaussian kernel on an equally spaced axis: build a row's factors by a multiplicative
    // recurrence (three exps per row and axis) instead of one exp per axis point. false forces the
    // exact path everywhere (a reference for tests and benchmarks).
    bool gauss_recurrence = true;
};

struct GridSums {
    int n_folds = 0;
    int n_grid = 0;
    int P = 0;                 // 1 (local constant) or d + 1 (local linear)
    int T = 0;                 // targets
    // Row-major blocks: M is (F, G, P, P), V is (F, G, P, T), count is (F, G).
    std::vector<double> M;
    std::vector<double> V;
    std::vector<double> count;
    GridStatus status = GridStatus::Ok;
    long long bad_index = -1;  // first offending row (or axis / fold), for the error message
};

// One pass over the rows of X (n x d) and Y (n x T) with fold labels in 0..n_folds-1.
GridSums grid_sums(const Eigen::Ref<const RowMatrix>& X, const Eigen::Ref<const RowMatrix>& Y,
                   const Eigen::Ref<const Eigen::VectorXi>& folds, int n_folds,
                   const std::vector<Vector>& axes, const Eigen::Ref<const Vector>& bandwidth,
                   const GridOptions& opt);

struct InterpResult {
    RowMatrix values;          // n x T
    GridStatus status = GridStatus::Ok;
    long long bad_index = -1;
    long long n_missing = 0;   // rows whose every surrounding grid value was NaN (left NaN)
};

// Multilinear interpolation of grid values (G x T, rows in grid order) at the rows of X. NaN grid
// values are treated as missing: the weights of the remaining corners of the cell are rescaled.
InterpResult grid_interpolate(const std::vector<Vector>& axes, const Eigen::Ref<const RowMatrix>& values,
                              const Eigen::Ref<const RowMatrix>& X, int n_threads);

struct PointwiseFusedResult {
    RowMatrix theta;                  // K x G (NaN where no site has weight)
    Vector center;                    // G
    std::vector<int> status;          // G, SolveStatus codes; -1 where no site has weight
    std::vector<int> iterations;      // G
    std::vector<double> kkt;          // G
};

// The per-grid-point penalty: G independent scalar fused problems
//   min sum_k (n_k / 2) D_kg (a_kg - that_kg)^2 + lambda sum_k w_k |a_kg - u_g|,
// each solved by the diagonal FusedProblem; zero D_kg are missing values. Parallel over g.
PointwiseFusedResult fused_pointwise(const Eigen::Ref<const RowMatrix>& D,
                                     const Eigen::Ref<const RowMatrix>& theta_hat,
                                     const Eigen::Ref<const Vector>& n, const Eigen::Ref<const Vector>& weights,
                                     double lambda, const FusedOptions& opt);

}  // namespace hetmtl
