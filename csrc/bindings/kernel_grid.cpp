// Python bindings for the kernel grid core. Arrays arrive validated and C-contiguous from
// hetmtl.fusion.kernel_grid; results go back as dicts of NumPy arrays plus a status code.
#include "common.hpp"
#include "hetmtl/kernel_grid.hpp"

using hetmtl::RowMatrix;
using hetmtl::Vector;

namespace {

using IntRef = Eigen::Ref<const Eigen::VectorXi>;

py::array_t<double> to_array(const std::vector<double>& data, std::vector<py::ssize_t> shape) {
    py::array_t<double> out(shape);
    std::copy(data.begin(), data.end(), out.mutable_data());
    return out;
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
            py::dict out;
            out["status"] = static_cast<int>(s.status);
            out["bad_index"] = s.bad_index;
            if (s.status != hetmtl::GridStatus::Ok) return out;
            const py::ssize_t F = s.n_folds, G = s.n_grid, P = s.P, T = s.T;
            out["M"] = to_array(s.M, {F, G, P, P});
            out["V"] = to_array(s.V, {F, G, P, T});
            out["count"] = to_array(s.count, {F, G});
            return out;
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
            py::dict out;
            out["status"] = static_cast<int>(r.status);
            out["bad_index"] = r.bad_index;
            out["n_missing"] = r.n_missing;
            if (r.status == hetmtl::GridStatus::Ok) out["values"] = r.values;
            return out;
        },
        py::arg("axes"), py::arg("values").noconvert(), py::arg("X").noconvert(), py::arg("n_threads") = 1);

    m.def(
        "fused_pointwise",
        [](const RowRef& D, const RowRef& theta_hat, const VecRef& n, const VecRef& weights, double lam,
           const hetmtl::FusedOptions& opt) {
            hetmtl::PointwiseFusedResult r;
            {
                py::gil_scoped_release release;
                r = hetmtl::fused_pointwise(D, theta_hat, n, weights, lam, opt);
            }
            py::dict out;
            out["theta"] = r.theta;
            out["center"] = r.center;
            out["status"] = py::array_t<int>(static_cast<py::ssize_t>(r.status.size()), r.status.data());
            out["iterations"] =
                py::array_t<int>(static_cast<py::ssize_t>(r.iterations.size()), r.iterations.data());
            out["kkt"] = py::array_t<double>(static_cast<py::ssize_t>(r.kkt.size()), r.kkt.data());
            return out;
        },
        py::arg("D").noconvert(), py::arg("theta_hat").noconvert(), py::arg("n").noconvert(),
        py::arg("weights").noconvert(), py::arg("lam"), py::arg("options"));
}
