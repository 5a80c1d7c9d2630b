// Python bindings for the proximal building blocks and the head solver. Arrays arrive validated
// and C-contiguous from hetmtl.prox; results go back as NumPy arrays or the core's result structs
// (status as the bound ProxStatus, or its codes per task).
#include "common.hpp"
#include "hetmtl/prox.hpp"

#include <string>

using hetmtl::RowMatrix;
using hetmtl::Vector;

namespace {

template <typename Fn>
py::tuple rowwise(const RowRef& V, const VecRef& center, const VecRef& par, Fn fn) {
    RowMatrix out(V.rows(), V.cols());
    hetmtl::ProxStatus st;
    {
        py::gil_scoped_release release;
        st = fn(V, center, par, out);
    }
    return py::make_tuple(out, st);
}

// The arrays of one head problem, held (and so kept alive) by the Python object while the core
// reads them through the views of hetmtl::HeadProblem. Bound as HeadProblem, set field by field.
struct HeadArrays {
    py::array_t<double> Z{std::vector<py::ssize_t>{0, 0}}, H{std::vector<py::ssize_t>{0, 0}};
    py::array_t<double> y, loss_weights, pen_alpha, pen_beta, ridge, alpha_center, beta_center;
    py::array_t<double> alpha0{std::vector<py::ssize_t>{0, 0}}, beta0{std::vector<py::ssize_t>{0, 0}};
    std::vector<std::int64_t> offsets;

    hetmtl::HeadProblem view() const {
        auto rows = [](const py::array_t<double>& a) { return hetmtl::RowMatrixView(a.data(), a.shape(0), a.shape(1)); };
        auto vec = [](const py::array_t<double>& a) { return hetmtl::VectorView(a.data(), a.shape(0)); };
        return hetmtl::HeadProblem{rows(Z), rows(H), vec(y), offsets, vec(loss_weights), vec(pen_alpha),
                                   vec(pen_beta), vec(ridge), vec(alpha_center), vec(beta_center),
                                   rows(alpha0), rows(beta0)};
    }
};

// A field of HeadArrays as a property that accepts only C-contiguous float64 arrays of `ndim`
// dimensions (anything else would be copied silently or read with the wrong layout).
void def_array(py::class_<HeadArrays>& cls, const char* name, py::array_t<double> HeadArrays::*field, int ndim) {
    const std::string label = name;
    cls.def_property(
        name, [field](const HeadArrays& h) { return h.*field; },
        [field, label, ndim](HeadArrays& h, const py::object& value) {
            const bool ok = py::isinstance<py::array_t<double>>(value) &&
                            value.cast<py::array>().ndim() == ndim &&
                            (value.cast<py::array>().flags() & py::array::c_style);
            if (!ok) {
                throw py::type_error(label + ": expected a C-contiguous float64 array with " +
                                     std::to_string(ndim) + " dimension(s)");
            }
            h.*field = py::reinterpret_borrow<py::array_t<double>>(value);
        });
}

void bind_head_problem(py::module_& m) {
    py::class_<HeadArrays> cls(m, "HeadProblem", "The data of the head problem (see hetmtl/prox.hpp).");
    cls.def(py::init<>()).def_readwrite("offsets", &HeadArrays::offsets);
    for (auto [name, field] : {std::pair{"Z", &HeadArrays::Z}, {"H", &HeadArrays::H},
                               {"alpha0", &HeadArrays::alpha0}, {"beta0", &HeadArrays::beta0}}) {
        def_array(cls, name, field, 2);
    }
    for (auto [name, field] : {std::pair{"y", &HeadArrays::y}, {"loss_weights", &HeadArrays::loss_weights},
                               {"pen_alpha", &HeadArrays::pen_alpha}, {"pen_beta", &HeadArrays::pen_beta},
                               {"ridge", &HeadArrays::ridge}, {"alpha_center", &HeadArrays::alpha_center},
                               {"beta_center", &HeadArrays::beta_center}}) {
        def_array(cls, name, field, 1);
    }
}

void bind_results(py::module_& m) {
    using hetmtl::GeoMedianResult;
    py::class_<GeoMedianResult>(m, "GeoMedianResult")
        .def_property_readonly("median", [](const GeoMedianResult& r) -> Vector { return r.median; })
        .def_readonly("iterations", &GeoMedianResult::iterations)
        .def_readonly("residual", &GeoMedianResult::residual)
        .def_readonly("at_point", &GeoMedianResult::at_point)
        .def_readonly("status", &GeoMedianResult::status);

    using hetmtl::HeadResult;
    py::class_<HeadResult>(m, "HeadResult", "Heads per task (empty unless status_all is below invalid_input).")
        .def_property_readonly("alpha", [](const HeadResult& r) -> RowMatrix { return r.alpha; })
        .def_property_readonly("beta", [](const HeadResult& r) -> RowMatrix { return r.beta; })
        .def_property_readonly("intercept", [](const HeadResult& r) -> Vector { return r.intercept; })
        .def_property_readonly("fused_alpha", [](const HeadResult& r) { return to_bool_array(r.fused_alpha); })
        .def_property_readonly("fused_beta", [](const HeadResult& r) { return to_bool_array(r.fused_beta); })
        .def_property_readonly("iterations", [](const HeadResult& r) { return to_array(r.iterations); })
        .def_property_readonly("kkt", [](const HeadResult& r) -> Vector { return r.kkt; })
        .def_property_readonly("status", [](const HeadResult& r) { return to_array(r.status); },
                               "ProxStatus codes, one per task.")
        .def_readonly("status_all", &HeadResult::status_all);
}

}  // namespace

void register_prox(py::module_& m) {
    py::enum_<hetmtl::HeadPenalty>(m, "HeadPenalty")
        .value("none", hetmtl::HeadPenalty::None)
        .value("l2", hetmtl::HeadPenalty::L2)
        .value("l2sq", hetmtl::HeadPenalty::L2Squared)
        .value("ball", hetmtl::HeadPenalty::Ball);
    py::enum_<hetmtl::ProxStatus>(m, "ProxStatus")
        .value("converged", hetmtl::ProxStatus::Converged)
        .value("max_iterations", hetmtl::ProxStatus::MaxIterations)
        .value("invalid_input", hetmtl::ProxStatus::InvalidInput)
        .value("numerical_failure", hetmtl::ProxStatus::NumericalFailure);

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

    bind_head_problem(m);
    bind_results(m);

    m.def(
        "group_soft_threshold",
        [](const RowRef& V, const VecRef& center, const VecRef& tau) {
            return rowwise(V, center, tau, [](auto&&... a) { return hetmtl::group_soft_threshold(a...); });
        },
        py::arg("V").noconvert(), py::arg("center").noconvert(), py::arg("tau").noconvert(),
        "Rows of V soft-thresholded toward center; returns (out, ProxStatus).");
    m.def(
        "project_l2_ball",
        [](const RowRef& V, const VecRef& center, const VecRef& radius) {
            return rowwise(V, center, radius, [](auto&&... a) { return hetmtl::project_l2_ball(a...); });
        },
        py::arg("V").noconvert(), py::arg("center").noconvert(), py::arg("radius").noconvert(),
        "Rows of V projected onto l2 balls around center; returns (out, ProxStatus).");
    m.def(
        "geometric_median",
        [](const RowRef& points, const VecRef& weights, const hetmtl::GeoMedianOptions& opt) {
            hetmtl::GeoMedianResult res;
            {
                py::gil_scoped_release release;
                res = hetmtl::geometric_median(points, weights, opt);
            }
            return res;
        },
        py::arg("points").noconvert(), py::arg("weights").noconvert(), py::arg("options"));
    m.def(
        "solve_heads",
        [](const HeadArrays& problem, const hetmtl::HeadOptions& opt) {
            const HeadArrays held = problem;  // the arrays stay alive even if the fields are reassigned
            const hetmtl::HeadProblem view = held.view();
            hetmtl::HeadResult res;
            {
                py::gil_scoped_release release;
                res = hetmtl::solve_heads(view, opt);
            }
            return res;
        },
        py::arg("problem"), py::arg("options"));
}
