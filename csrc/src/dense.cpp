#include "hetmtl/dense.hpp"

namespace hetmtl {

bool cholesky_in_place(double* a, int p) {
    if (p <= 8) return cholesky_small<0>(a, p);
    // Left-looking: column k is finished with one matrix-vector product of the columns before it
    // (faster here than the right-looking form, which streams the trailing triangle each step).
    Eigen::Map<Eigen::MatrixXd> M(a, p, p);
    for (int k = 0; k < p; ++k) {
        const int below = p - k - 1;
        const double pivot = M(k, k) - M.row(k).head(k).squaredNorm();
        if (!(pivot > 0.0)) return false;
        const double root = std::sqrt(pivot);
        M(k, k) = root;
        if (below > 0) {
            M.col(k).tail(below).noalias() -= M.bottomLeftCorner(below, k) * M.row(k).head(k).transpose();
            M.col(k).tail(below) /= root;
        }
    }
    return true;
}

}  // namespace hetmtl
