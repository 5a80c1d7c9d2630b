// The private extension module hetmtl._core: one register_<area> call per area.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_dense(py::module_& m);
void register_fused(py::module_& m);
void register_kernel_grid(py::module_& m);
void register_npmle(py::module_& m);
void register_prox(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "hetmtl compiled core (private; use the public hetmtl API)";
    // The -march the core was built with ("" for the portable default), for benchmarks and reports.
    m.attr("build_march") = HETMTL_BUILD_MARCH;
    register_dense(m);
    register_fused(m);
    register_kernel_grid(m);
    register_npmle(m);
    register_prox(m);
}
