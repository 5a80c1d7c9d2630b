// Python bindings for the kernel grid core. Arrays arrive validated and C-contiguous from
// hetmtl.fusion.kernel_grid_core; results go back as the core's result structs (arrays copied to
// NumPy on access, status as the bound GridStatus or SolveStatus codes).
#include "common.hpp"
#include "hetmtl/kernel_grid.hpp"

using hetmtl::RowMatrix;
using hetmtl::Vector;

namespace {

using IntRef = Eigen::Ref<const Eigen::VectorXi>;

void bind_results(py::module_& m) {
    using hetmtl::GridSums;
    py::class_<GridSums>(m, "GridSums", "Kernel moments per fold and grid point (empty unless status is ok).")
        .def_readonly("status", &GridSums::status)
        .def_readonly("bad_index", &GridSums::bad_index)
        .def_property_readonly("M", [](const GridSums& s) { return to_array(s.M, {s.n_folds, s.n_grid, s.P, s.P}); })
        .def_property_readonly("V", [](const GridSums& s) { return to_array(s.V, {s.n_folds, s.n_grid, s.P, s.T}); })
        .def_property_readonly("count", [](const GridSums& s) { return to_array(s.count, {s.n_folds, s.n_grid}); });

    using hetmtl::InterpResult;
    py::class_<InterpResult>(m, "InterpResult", "Interpolated values (n x T) and the status of the call.")
        .def_readonly("status", &InterpResult::status)
        .def_readonly("bad_index", &InterpResult::bad_index)
        .def_readonly("n_missing", &InterpResult::n_missing)
        .def_property_readonly("values", [](const InterpResult& r) -> hetmtl::RowMatrix { return r.values; });

    using hetmtl::PointwiseFusedResult;
    py::class_<PointwiseFusedResult>(m, "PointwiseFusedResult", "One scalar fused problem per grid point.")
        .def_property_readonly("theta", [](const PointwiseFusedResult& r) -> hetmtl::RowMatrix { return r.theta; })
        .def_property_readonly("center", [](const PointwiseFusedResult& r) -> hetmtl::Vector { return r.center; })
        .def_property_readonly("status", [](const PointwiseFusedResult& r) { return to_array(r.status); },
                               "SolveStatus codes per grid point; -1 where no site has weight.")
        .def_property_readonly("iterations", [](const PointwiseFusedResult& r) { return to_array(r.iterations); })
        .def_property_readonly("kkt", [](const PointwiseFusedResult& r) { return to_array(r.kkt); });
}

}  // namespace

void register_kernel_grid(py::module_& m) {
    py::enum_<hetmtl::GridKernel>(m, "GridKernel")
        .value("gaussian", hetmtl::GridKernel::Gaussian)
        .value("epanechnikov", hetmtl::GridKernel::Epanechnikov);
    py::enum_<hetmtl::GridFit>(m, "GridFit")
        .value("constant", hetmtl::GridFit::LocalConstant)
        .value("linear", hetmtl::GridFit::LocalLinear);
    py::enum_<hetmtl::GridStatus>(m, "GridStatus")
        .value("ok", hetmtl::GridStatus::Ok)
        .value("bad_dimension", hetmtl::GridStatus::BadDimension)
        .value("bad_grid", hetmtl::GridStatus::BadGrid)
        .value("bad_bandwidth", hetmtl::GridStatus::BadBandwidth)
        .value("non_finite", hetmtl::GridStatus::NonFinite)
        .value("out_of_range", hetmtl::GridStatus::OutOfRange)
        .value("bad_fold", hetmtl::GridStatus::BadFold)
        .value("empty_fold", hetmtl::GridStatus::EmptyFold);
    bind_results(m);

    py::class_<hetmtl::GridOptions>(m, "GridOptions")
        .def(py::init<>())
        .def_readwrite("kernel", &hetmtl::GridOptions::kernel)
        .def_readwrite("fit", &hetmtl::GridOptions::fit)
        .def_readwrite("support", &hetmtl::GridOptions::support)
        .def_readwrite("n_threads", &hetmtl::GridOptions::n_threads)
        .def_readwrite("gauss_recurrence", &hetmtl::GridOptions::gauss_recurrence);

    m.def(
        "grid_sums",
        [](const RowRef& X, const RowRef& Y, const IntRef& folds, int n_folds, const std::vector<Vector>& axes,
           const VecRef& bandwidth, const hetmtl::GridOptions& opt) {
            hetmtl::GridSums s;
            {
                py::gil_scoped_release release;
                s = hetmtl::grid_sums(X, Y, folds, n_folds, axes, bandwidth, opt);
            }
            return s;
        },
        py::arg("X").noconvert(), py::arg("Y").noconvert(), py::arg("folds").noconvert(), py::arg("n_folds"),
        py::arg("axes"), py::arg("bandwidth").noconvert(), py::arg("options"));

    m.def(
        "grid_interpolate",
        [](const std::vector<Vector>& axes, const RowRef& values, const RowRef& X, int n_threads) {
            hetmtl::InterpResult r;
            {
                py::gil_scoped_release release;
                r = hetmtl::grid_interpolate(axes, values, X, n_threads);
            }
            return r;
        },
        py::arg("axes"), py::arg("values").noconvert(), py::arg("X").noconvert(), py::arg("n_threads") = 1);

    m.def(
        "fused_pointwise",
        [](const RowRef& D, const RowRef& theta_hat, const VecRef& n, const VecRef& weights, double lam,
           const hetmtl::FusedOptions& opt) {
            return solve_interruptibly(opt, [&](const hetmtl::FusedOptions& o) {
                return hetmtl::fused_pointwise(D, theta_hat, n, weights, lam, o);
            });
        },
        py::arg("D").noconvert(), py::arg("theta_hat").noconvert(), py::arg("n").noconvert(),
        py::arg("weights").noconvert(), py::arg("lam"), py::arg("options"));
}
