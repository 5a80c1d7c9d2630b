// Nonparametric maximum likelihood (Kiefer-Wolfowitz) of a normal location mixture on a grid, for
// many small data sets at once (the g-modeling empirical Bayes of late fusion).
//
// For data set b with standardized estimates z_k, variances w_k > 0 and site weights s_k >= 0
// (summing to one), and grid points a_1..a_M, find mixing weights g on the simplex maximizing
//
//     sum_k s_k log f_k,    f_k = sum_j g_j L_kj,    L_kj = exp(-(z_k - a_j)^2 / (2 w_k)).
//
// The gradient D_j = sum_k s_k L_kj / f_k satisfies D_j <= 1 at the maximum (equality on the
// support), and the objective is within max_j D_j - 1 of its maximum at any g, so iterations stop
// once that gap is below `tol`. Each iteration is one SQUAREM-accelerated EM step (Varadhan and
// Roland 2008; two EM steps when the extrapolation leaves the simplex or lowers the objective)
// followed by a vertex-direction and a vertex-exchange step with exact line searches (Boehning
// 1986), which move mass to grid points where EM's multiplicative update is slow.
#pragma once

#include <Eigen/Core>
#include <vector>

#include "hetmtl/types.hpp"

namespace hetmtl {

struct NpmleOptions {
    double tol = 1e-4;   // stop at max_j D_j - 1 <= tol
    int max_iter = 1000;
    int n_threads = 1;   // data sets run in parallel
};

struct NpmleResult {
    RowMatrix weights;            // B x M mixing weights
    RowMatrix estimate;           // B x K posterior means of the effects
    Vector gap;                   // B, max_j D_j - 1 at the returned weights
    std::vector<int> iterations;  // B
    bool valid = true;            // false: shapes that do not describe B problems, or w <= 0
};

// z, w, site_weights: B x K; grid: B x M (each row its own grid).
NpmleResult npmle_fit(const Eigen::Ref<const RowMatrix>& z, const Eigen::Ref<const RowMatrix>& w,
                      const Eigen::Ref<const RowMatrix>& site_weights,
                      const Eigen::Ref<const RowMatrix>& grid, const NpmleOptions& opt);

}  // namespace hetmtl
