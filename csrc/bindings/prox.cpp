// Python bindings for the proximal building blocks and the head solver. Arrays arrive validated
// and C-contiguous from hetmtl.proximal; results go back as NumPy arrays or dicts of them.
#include "common.hpp"
#include "hetmtl/prox.hpp"

using hetmtl::RowMatrix;
using hetmtl::Vector;

namespace {

py::array_t<bool> as_bool_array(const std::vector<std::uint8_t>& v) {
    py::array_t<bool> out(static_cast<py::ssize_t>(v.size()));
    auto o = out.mutable_unchecked<1>();
    for (size_t i = 0; i < v.size(); ++i) o(static_cast<py::ssize_t>(i)) = v[i] != 0;
    return out;
}

template <typename Fn>
py::tuple rowwise(const RowRef& V, const VecRef& center, const VecRef& par, Fn fn) {
    RowMatrix out(V.rows(), V.cols());
    hetmtl::ProxStatus st;
    {
        py::gil_scoped_release release;
        st = fn(V, center, par, out);
    }
    return py::make_tuple(out, static_cast<int>(st));
}

}  // namespace

void register_prox(py::module_& m) {
    py::enum_<hetmtl::HeadPenalty>(m, "HeadPenalty")
        .value("none", hetmtl::HeadPenalty::None)
        .value("l2", hetmtl::HeadPenalty::L2)
        .value("l2sq", hetmtl::HeadPenalty::L2Squared)
        .value("ball", hetmtl::HeadPenalty::Ball);

    py::class_<hetmtl::GeoMedianOptions>(m, "GeoMedianOptions")
        .def(py::init<>())
        .def_readwrite("tol", &hetmtl::GeoMedianOptions::tol)
        .def_readwrite("max_iter", &hetmtl::GeoMedianOptions::max_iter);

    py::class_<hetmtl::HeadOptions>(m, "HeadOptions")
        .def(py::init<>())
        .def_readwrite("penalty_beta", &hetmtl::HeadOptions::penalty_beta)
        .def_readwrite("penalty_alpha", &hetmtl::HeadOptions::penalty_alpha)
        .def_readwrite("tol", &hetmtl::HeadOptions::tol)
        .def_readwrite("max_iter", &hetmtl::HeadOptions::max_iter)
        .def_readwrite("n_threads", &hetmtl::HeadOptions::n_threads);

    m.def(
        "group_soft_threshold",
        [](const RowRef& V, const VecRef& center, const VecRef& tau) {
            return rowwise(V, center, tau, [](auto&&... a) { return hetmtl::group_soft_threshold(a...); });
        },
        py::arg("V").noconvert(), py::arg("center").noconvert(), py::arg("tau").noconvert(),
        "Rows of V soft-thresholded toward center; returns (out, status).");
    m.def(
        "project_l2_ball",
        [](const RowRef& V, const VecRef& center, const VecRef& radius) {
            return rowwise(V, center, radius, [](auto&&... a) { return hetmtl::project_l2_ball(a...); });
        },
        py::arg("V").noconvert(), py::arg("center").noconvert(), py::arg("radius").noconvert(),
        "Rows of V projected onto l2 balls around center; returns (out, status).");
    m.def(
        "geometric_median",
        [](const RowRef& points, const VecRef& weights, const hetmtl::GeoMedianOptions& opt) {
            hetmtl::GeoMedianResult res;
            {
                py::gil_scoped_release release;
                res = hetmtl::geometric_median(points, weights, opt);
            }
            py::dict out;
            out["median"] = res.median;
            out["iterations"] = res.iterations;
            out["residual"] = res.residual;
            out["at_point"] = res.at_point;
            out["status"] = static_cast<int>(res.status);
            return out;
        },
        py::arg("points").noconvert(), py::arg("weights").noconvert(), py::arg("options"));
    m.def(
        "solve_heads",
        [](const RowRef& Z, const RowRef& H, const VecRef& y, const std::vector<std::int64_t>& offsets,
           const VecRef& loss_weights, const VecRef& pen_alpha, const VecRef& pen_beta, const VecRef& ridge,
           const VecRef& alpha_center,
           const VecRef& beta_center, const RowRef& alpha0, const RowRef& beta0, const hetmtl::HeadOptions& opt) {
            hetmtl::HeadResult res;
            {
                py::gil_scoped_release release;
                res = hetmtl::solve_heads(Z, H, y, offsets, loss_weights, pen_alpha, pen_beta, ridge,
                                          alpha_center, beta_center, alpha0, beta0, opt);
            }
            py::dict out;
            out["status_all"] = static_cast<int>(res.status_all);
            if (res.status_all == hetmtl::ProxStatus::InvalidInput) return out;
            out["alpha"] = res.alpha;
            out["beta"] = res.beta;
            out["intercept"] = res.intercept;
            out["fused_alpha"] = as_bool_array(res.fused_alpha);
            out["fused_beta"] = as_bool_array(res.fused_beta);
            out["iterations"] = py::array_t<int>(static_cast<py::ssize_t>(res.iterations.size()), res.iterations.data());
            out["kkt"] = res.kkt;
            out["status"] = py::array_t<int>(static_cast<py::ssize_t>(res.status.size()), res.status.data());
            return out;
        },
        py::arg("Z").noconvert(), py::arg("H").noconvert(), py::arg("y").noconvert(), py::arg("offsets"),
        py::arg("loss_weights").noconvert(), py::arg("pen_alpha").noconvert(), py::arg("pen_beta").noconvert(),
        py::arg("ridge").noconvert(), py::arg("alpha_center").noconvert(), py::arg("beta_center").noconvert(), py::arg("alpha0").noconvert(),
        py::arg("beta0").noconvert(), py::arg("options"));
}
