// Bindings of the dense kernels, for testing them directly against NumPy (the solver calls them
// from C++).
#include "common.hpp"
#include "hetmtl/dense.hpp"

void register_dense(py::module_& m) {
    m.def(
        "dense_cholesky",
        [](const Eigen::MatrixXd& A) {
            Eigen::MatrixXd L = A;
            const bool ok = hetmtl::cholesky_in_place(L);
            Eigen::MatrixXd lower = L.triangularView<Eigen::Lower>();
            return py::make_tuple(ok, lower);
        },
        py::arg("A"), "Cholesky factor L (lower) of a symmetric matrix and whether every pivot was positive.");
}
