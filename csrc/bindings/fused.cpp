// Python bindings for the fused quadratic solver. Arrays arrive already validated and
// C-contiguous from hetmtl.fusion.fused; results go back as FusedFits (NumPy arrays stacked over
// lambdas or draws, with a status code each).
#include "common.hpp"
#include "hetmtl/fused.hpp"

#include <limits>

using hetmtl::RowMatrix;
using hetmtl::Vector;

namespace {

// Fits of one problem stacked along a first axis (one entry per lambda or draw): theta (L, K, p),
// center (L, p), fused (L, K), iterations, kkt and status (L). A fit the core could not compute
// (its status says why) is NaN.
struct FusedFits {
    py::array_t<double> theta, center, kkt;
    py::array_t<bool> fused;
    py::array_t<int> iterations, status;  // status: SolveStatus codes
};

FusedFits stack_fits(const std::vector<hetmtl::FusedResult>& fits, int K, int p) {
    const py::ssize_t L = static_cast<py::ssize_t>(fits.size());
    FusedFits out;
    out.theta = py::array_t<double>({L, static_cast<py::ssize_t>(K), static_cast<py::ssize_t>(p)});
    out.center = py::array_t<double>({L, static_cast<py::ssize_t>(p)});
    out.fused = py::array_t<bool>({L, static_cast<py::ssize_t>(K)});
    out.iterations = py::array_t<int>(L);
    out.status = py::array_t<int>(L);
    out.kkt = py::array_t<double>(L);
    auto th = out.theta.mutable_unchecked<3>();
    auto ce = out.center.mutable_unchecked<2>();
    auto fu = out.fused.mutable_unchecked<2>();
    auto it = out.iterations.mutable_unchecked<1>();
    auto st = out.status.mutable_unchecked<1>();
    auto kk = out.kkt.mutable_unchecked<1>();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (py::ssize_t l = 0; l < L; ++l) {
        const auto& f = fits[l];
        const bool ok = f.theta.rows() == K;
        for (int k = 0; k < K; ++k) {
            for (int j = 0; j < p; ++j) th(l, k, j) = ok ? f.theta(k, j) : nan;
            fu(l, k) = ok && f.fused[k] != 0;
        }
        for (int j = 0; j < p; ++j) ce(l, j) = ok ? f.center(j) : nan;
        it(l) = f.iterations;
        st(l) = static_cast<int>(f.status);
        kk(l) = ok ? f.kkt : nan;
    }
    return out;
}

}  // namespace

void register_fused(py::module_& m) {
    py::enum_<hetmtl::Penalty>(m, "Penalty")
        .value("l2", hetmtl::Penalty::L2)
        .value("l2sq", hetmtl::Penalty::L2Squared);
    py::enum_<hetmtl::SolveStatus>(m, "SolveStatus")
        .value("converged", hetmtl::SolveStatus::Converged)
        .value("max_iterations", hetmtl::SolveStatus::MaxIterations)
        .value("not_positive_definite", hetmtl::SolveStatus::NotPositiveDefinite)
        .value("numerical_failure", hetmtl::SolveStatus::NumericalFailure)
        .value("invalid_input", hetmtl::SolveStatus::InvalidInput)
        .value("stagnated", hetmtl::SolveStatus::Stagnated)
        .value("interrupted", hetmtl::SolveStatus::Interrupted);

    py::class_<FusedFits>(m, "FusedFits", "Fits stacked along a first axis (one per lambda or draw).")
        .def_readonly("theta", &FusedFits::theta)
        .def_readonly("center", &FusedFits::center)
        .def_readonly("fused", &FusedFits::fused)
        .def_readonly("iterations", &FusedFits::iterations)
        .def_readonly("kkt", &FusedFits::kkt)
        .def_readonly("status", &FusedFits::status, "SolveStatus codes, one per fit.");

    py::class_<hetmtl::FusedOptions>(m, "FusedOptions")
        .def(py::init<>())
        .def_readwrite("penalty", &hetmtl::FusedOptions::penalty)
        .def_readwrite("tol", &hetmtl::FusedOptions::tol)
        .def_readwrite("max_iter", &hetmtl::FusedOptions::max_iter)
        .def_readwrite("n_threads", &hetmtl::FusedOptions::n_threads);

    py::class_<hetmtl::FusedProblem>(m, "FusedProblem")
        .def(py::init<const RowRef&, const VecRef&, const VecRef&>(), py::arg("W").noconvert(),
             py::arg("n").noconvert(), py::arg("weights").noconvert())
        .def_static("diagonal", &hetmtl::FusedProblem::diagonal, py::arg("D").noconvert(),
                    py::arg("n").noconvert(), py::arg("weights").noconvert(),
                    py::arg("allow_semidefinite") = false)
        .def_property_readonly("valid_input", &hetmtl::FusedProblem::valid_input)
        .def_property_readonly("positive_definite", &hetmtl::FusedProblem::positive_definite)
        .def_property_readonly("bad_site", &hetmtl::FusedProblem::bad_site)
        .def_property_readonly("bad_eigenvalue", &hetmtl::FusedProblem::bad_eigenvalue)
        .def_property_readonly("asymmetric_site", &hetmtl::FusedProblem::asymmetric_site)
        .def("pooled", &hetmtl::FusedProblem::pooled, py::arg("theta_hat").noconvert())
        .def("lambda_max", &hetmtl::FusedProblem::lambda_max, py::arg("theta_hat").noconvert())
        .def(
            "solve",
            [](const hetmtl::FusedProblem& pb, const RowRef& theta_hat, double lam,
               const hetmtl::FusedOptions& opt) {
                std::vector<hetmtl::FusedResult> fits(1);
                fits[0] = solve_interruptibly(opt, [&](const hetmtl::FusedOptions& o) {
                    return pb.solve(theta_hat, lam, o);
                });
                return stack_fits(fits, pb.n_sites(), pb.dim());
            },
            py::arg("theta_hat").noconvert(), py::arg("lam"), py::arg("options"))
        .def(
            "path",
            [](const hetmtl::FusedProblem& pb, const RowRef& theta_hat, const std::vector<double>& lams,
               const hetmtl::FusedOptions& opt) {
                const auto path = solve_interruptibly(opt, [&](const hetmtl::FusedOptions& o) {
                    return hetmtl::fused_path(pb, theta_hat, lams, o);
                });
                return stack_fits(path.fits, pb.n_sites(), pb.dim());
            },
            py::arg("theta_hat").noconvert(), py::arg("lambdas"), py::arg("options"))
        .def(
            "solve_batch",
            [](const hetmtl::FusedProblem& pb, const RowRef& theta_hats, double lam,
               const hetmtl::FusedOptions& opt) {
                const auto fits = solve_interruptibly(opt, [&](const hetmtl::FusedOptions& o) {
                    return hetmtl::fused_solve_batch(pb, theta_hats, lam, o);
                });
                return stack_fits(fits, pb.n_sites(), pb.dim());
            },
            py::arg("theta_hats").noconvert(), py::arg("lam"), py::arg("options"));
}
