// The one place where the solver turns its run-time dimension into a compile-time one.
#pragma once

#include <Eigen/Core>
#include <type_traits>

namespace hetmtl {

// Calls f(std::integral_constant<int, P>{}) with P = p for p <= 4 and P = Eigen::Dynamic above:
// small per-site algebra is then unrolled, larger uses Eigen's dynamic kernels.
template <class F>
decltype(auto) with_fixed_dim(int p, F&& f) {
    switch (p) {
        case 1: return f(std::integral_constant<int, 1>{});
        case 2: return f(std::integral_constant<int, 2>{});
        case 3: return f(std::integral_constant<int, 3>{});
        case 4: return f(std::integral_constant<int, 4>{});
        default: return f(std::integral_constant<int, Eigen::Dynamic>{});
    }
}

}  // namespace hetmtl
