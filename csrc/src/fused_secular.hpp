// The root search shared by every form of a site's proximal map (eigenbasis, tridiagonal basis):
// the norm rho of the site's offset solves a secular equation psi(rho) = 0 with psi increasing,
// found by Newton's method inside a bracket that bisection keeps valid.
#pragma once

#include <cmath>

namespace hetmtl {

// Root of `secular` (called as secular(rho, deriv), returning psi(rho) and writing psi'(rho)) in
// [lo, hi], starting at `start` when it lies strictly inside, else at lo.
template <class Secular>
inline double secular_root(Secular&& secular, double lo, double hi, double start) {
    double rho = start > lo && start < hi ? start : lo;
    for (int it = 0; it < 100; ++it) {
        double deriv = 0.0;
        const double f = secular(rho, deriv);
        if (f < 0.0) lo = rho; else hi = rho;
        if (std::abs(f) <= 1e-15 || hi - lo <= 1e-15 * hi) break;
        double next = rho - f / deriv;
        if (!(next > lo && next < hi)) {
            next = 0.5 * (lo + hi);  // safeguard: bisect
        } else if (std::abs(next - rho) <= 1e-9 * rho) {
            // Newton converges quadratically: after a step of relative size 1e-9 the next iterate
            // is exact to rounding, so the evaluation that would confirm it is skipped.
            return next;
        }
        rho = next;
    }
    return rho;
}

}  // namespace hetmtl
