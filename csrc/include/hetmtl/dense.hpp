// Dense kernels of the fused solver at late fusion's sizes (p from 1 to a few hundred): an
// unblocked Cholesky factorization, which tests definiteness and solves Newton's systems.
#pragma once

#include <Eigen/Core>
#include <cmath>

namespace hetmtl {

// In-place Cholesky factorization of a column-major p x p array: afterwards the lower triangle
// holds L with A = L L' (the strict upper triangle is left as it was). Returns false at the first
// pivot that is not positive. With P > 0 the dimension is a compile-time constant and the loops
// unroll (for tiny matrices); P = 0 reads it from `p_runtime`.
template <int P>
bool cholesky_small(double* a, int p_runtime) {
    const int p = P > 0 ? P : p_runtime;
    for (int k = 0; k < p; ++k) {
        double pivot = a[k + k * p];
        for (int j = 0; j < k; ++j) pivot -= a[k + j * p] * a[k + j * p];
        if (!(pivot > 0.0)) return false;
        const double root = std::sqrt(pivot);
        a[k + k * p] = root;
        for (int i = k + 1; i < p; ++i) {
            double x = a[i + k * p];
            for (int j = 0; j < k; ++j) x -= a[i + j * p] * a[k + j * p];
            a[i + k * p] = x / root;
        }
    }
    return true;
}

// The same for any p (unblocked: at late fusion's sizes faster than Eigen's blocked LLT, and it
// stops at the first bad pivot).
bool cholesky_in_place(double* a, int p);
inline bool cholesky_in_place(Eigen::MatrixXd& M) {
    return cholesky_in_place(M.data(), static_cast<int>(M.rows()));
}

}  // namespace hetmtl
