// Proximal building blocks for multi-task heads.
//
// * group soft-thresholding of rows toward a center:  c + max(0, 1 - tau_i / ||v_i - c||) (v_i - c)
// * projection of rows onto l2 balls around a center: c + min(1, r_i / ||v_i - c||) (v_i - c)
// * weighted geometric median argmin_x sum_i w_i ||x - p_i|| (Weiszfeld with the Vardi-Zhang step,
//   well defined when an iterate lands on a data point)
// * the head problem of the dual-encoder model: for R tasks with encodings Z_r (n_r x q, task
//   specific) and H_r (n_r x p, shared), with the centers abar, bbar fixed,
//
//     minimize over (alpha_r, beta_r, b_r), r = 1..R
//       sum_r (w_r / n_r) || y_r - Z_r alpha_r - H_r beta_r - b_r ||^2
//     + sum_r pen_beta(r)  * P_beta (beta_r  - bbar)
//     + sum_r pen_alpha(r) * P_alpha(alpha_r - abar)
//     + sum_r (ridge_r / 2) (||alpha_r||^2 + ||beta_r||^2)
//
//   with P = ||.||_2 (L2: exact fusion with the center), ||.||_2^2 / 2 (L2Squared), the indicator
//   of {||.||_2 <= pen} (Ball: pen is the radius) or 0 (None). The problem separates over tasks;
//   each task is solved by accelerated proximal gradient (FISTA with adaptive restart) after the
//   unpenalized intercept is eliminated in closed form.
//
// Row data are row-major; the rows of task r are offsets[r] .. offsets[r+1]-1.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <vector>

#include "hetmtl/types.hpp"

namespace hetmtl {

enum class HeadPenalty : int { None = 0, L2 = 1, L2Squared = 2, Ball = 3 };

enum class ProxStatus : int {
    Converged = 0,
    MaxIterations = 1,
    InvalidInput = 2,      // shapes, offsets or weights that do not describe a problem
    NumericalFailure = 3,  // non-finite values appeared during the iterations
};

// Rows of V moved toward `center` by group soft-thresholding with per-row thresholds tau (>= 0).
// Writes `out` (same shape as V); returns InvalidInput on mismatched shapes or negative tau.
ProxStatus group_soft_threshold(const Eigen::Ref<const RowMatrix>& V, const Eigen::Ref<const Vector>& center,
                                const Eigen::Ref<const Vector>& tau, Eigen::Ref<RowMatrix> out);

// Rows of V projected onto the balls {x : ||x - center|| <= radius_i} (radius_i >= 0, may be inf).
ProxStatus project_l2_ball(const Eigen::Ref<const RowMatrix>& V, const Eigen::Ref<const Vector>& center,
                           const Eigen::Ref<const Vector>& radius, Eigen::Ref<RowMatrix> out);

struct GeoMedianOptions {
    double tol = 1e-10;   // stop when the relative optimality residual falls below tol
    int max_iter = 1000;
};

struct GeoMedianResult {
    Vector median;
    int iterations = 0;
    double residual = 0.0;  // relative optimality residual at the returned point
    int at_point = -1;      // index of the data point the median coincides with, or -1
    ProxStatus status = ProxStatus::Converged;
};

// Weighted geometric median of the rows of `points` (weights >= 0, not all zero).
GeoMedianResult geometric_median(const Eigen::Ref<const RowMatrix>& points, const Eigen::Ref<const Vector>& weights,
                                 const GeoMedianOptions& opt);

struct HeadOptions {
    HeadPenalty penalty_beta = HeadPenalty::L2;
    HeadPenalty penalty_alpha = HeadPenalty::None;
    double tol = 1e-8;      // relative KKT tolerance per task
    int max_iter = 5000;
    int n_threads = 1;
};

struct HeadResult {
    RowMatrix alpha;                        // R x q
    RowMatrix beta;                         // R x p
    Vector intercept;                       // R
    std::vector<std::uint8_t> fused_alpha;  // R, 1 where alpha_r == abar exactly (L2 penalty)
    std::vector<std::uint8_t> fused_beta;   // R, 1 where beta_r == bbar exactly (L2 penalty)
    std::vector<int> iterations;            // R
    Vector kkt;                             // R, relative KKT residual
    std::vector<int> status;                // R, ProxStatus per task
    ProxStatus status_all = ProxStatus::Converged;  // the worst task status
};

// The data of the head problem above, as views of the caller's arrays. Task r's rows are
// offsets[r] .. offsets[r+1]-1 of Z, H and y. Per-task vectors have R entries.
struct HeadProblem {
    RowMatrixView Z{nullptr, 0, 0};          // N x q task-specific encodings (q may be 0)
    RowMatrixView H{nullptr, 0, 0};          // N x p shared encodings (p may be 0)
    VectorView y{nullptr, 0};                // N
    std::vector<std::int64_t> offsets;       // R + 1, from 0 to N, strictly increasing
    VectorView loss_weights{nullptr, 0};     // w_r >= 0
    VectorView pen_alpha{nullptr, 0};        // pen_alpha(r) >= 0 (a radius, possibly inf, for Ball)
    VectorView pen_beta{nullptr, 0};         // pen_beta(r) >= 0 (likewise)
    VectorView ridge{nullptr, 0};            // ridge_r >= 0 on alpha and beta (not the intercept)
    VectorView alpha_center{nullptr, 0};     // q
    VectorView beta_center{nullptr, 0};      // p
    // Warm starts, R x q and R x p; 0 rows for a cold start at the centers.
    RowMatrixView alpha0{nullptr, 0, 0};
    RowMatrixView beta0{nullptr, 0, 0};
};

// The head problem above. The ridge keeps heads finite on tasks with fewer rows than encodings or
// collinear encodings. Shapes that do not describe one problem give status_all = InvalidInput.
HeadResult solve_heads(const HeadProblem& problem, const HeadOptions& opt);

}  // namespace hetmtl
