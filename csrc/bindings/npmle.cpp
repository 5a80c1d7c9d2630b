// Python binding of the grid NPMLE. Arrays arrive validated and C-contiguous from
// hetmtl.fusion.gmodel_eb; the weights, posterior means, gaps and iteration counts go back as
// NumPy arrays.
#include "common.hpp"
#include "hetmtl/npmle.hpp"

void register_npmle(py::module_& m) {
    m.def(
        "npmle_fit",
        [](const RowRef& z, const RowRef& w, const RowRef& site_weights, const RowRef& grid,
           double tol, int max_iter, int n_threads) {
            hetmtl::NpmleOptions opt;
            opt.tol = tol;
            opt.max_iter = max_iter;
            opt.n_threads = n_threads;
            hetmtl::NpmleResult r;
            {
                py::gil_scoped_release release;
                r = hetmtl::npmle_fit(z, w, site_weights, grid, opt);
            }
            if (!r.valid)
                throw py::value_error("npmle_fit: z, w and site_weights must be B x K and grid "
                                      "B x M, with w > 0 and max_iter >= 1");
            return py::make_tuple(r.weights, r.estimate, r.gap, to_array(r.iterations));
        },
        py::arg("z"), py::arg("w"), py::arg("site_weights"), py::arg("grid"), py::arg("tol"),
        py::arg("max_iter"), py::arg("n_threads") = 1,
        "Grid NPMLE of normal location mixtures, one per row: (weights, posterior means, gap, "
        "iterations).");
}
