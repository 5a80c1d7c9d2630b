// One-dimensional Gaussian kernel factors of the kernel grid core (private to kernel_grid.cpp).
//
// A row x contributes, on an axis a_0 < .. < a_{m-1} with bandwidth h, the factors
// f_i = exp(-u_i^2 / 2), u_i = (x - a_i) / h. Two ways to compute them:
//
// * exact: one exp per axis point within kGaussCut bandwidths of x (any axis);
// * recurrence (equally spaced axes, a_i = a_0 + i s): with delta = s / h,
//       f_{c+k} = f_c r^k W_k,   r = exp(+-u_c delta - delta^2 / 2),   W_k = exp(-delta^2 k (k-1) / 2)
//   walking up (+) or down (-) from the axis point c nearest x. There |u_c| <= delta / 2, so r <= 1
//   and every partial product lies between 1 and the factor it builds: nothing overflows. W is a
//   table per axis and r^k a chain of products, so a row costs three exps per axis instead of one
//   per axis point, and a walk of fixed length per axis (no data-dependent branches).
//
// The recurrence is used only where it is safe and accurate:
// * the axis points lie within kSpacingTol * h of a_0 + i s (s = (a_{m-1} - a_0) / (m - 1)), so
//   using a_c + k s instead of a_{c+k} moves u by at most 2 kSpacingTol, a relative change of a
//   factor of at most 2 |u| kSpacingTol;
// * the walks, which take 4 ceil((m - 1) / 4) <= m + 2 steps each way whatever c (steps past an
//   end of the axis land in padding), stay within kGaussCut bandwidths of x: (m + 3) delta <=
//   kGaussCut. Every value they compute is then above exp(-kGaussCut^2 / 2) ~ 1e-297 (no
//   subnormal numbers, no cut-off to apply);
// * m <= kMaxWalk + 1. The relative error of f_{c+k} is about (2 k + u^2 + 4) eps: k eps from the
//   rounding of r (whose argument is at most delta^2 in size, and k delta <= kGaussCut) compounded
//   over k products, and u^2 eps from the argument of W_k, the same as the exact path's
//   exp(-u^2 / 2). Bounding k bounds the first term (about 3e-14 at k = 64).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <Eigen/Dense>

namespace hetmtl {
namespace grid_detail {

constexpr double kGaussCut = 37.0;       // exp(-37^2 / 2) ~ 1e-297: farther factors are set to 0
constexpr int kMaxWalk = 64;             // longest recurrence walk (axis points - 1)
constexpr double kSpacingTol = 0x1p-46;  // ~1.4e-14 bandwidths
constexpr int kPad = 4;                  // writable slots needed each side of a row's factors

// exp(x) for -700 <= x <= 700, written so that the compiler vectorizes a loop over it (libm's exp
// is a scalar call and dominated the Gaussian kernel's cost). Cody-Waite reduction x = k ln2 + r
// with |r| <= ln2 / 2, then a degree-13 Taylor polynomial: relative error below 2e-16. Callers keep
// arguments in range without a branch (which would stop the vectorizer).
inline double exp_small(double xc) {
    constexpr double kLog2e = 1.4426950408889634;
    constexpr double kLn2Hi = 6.93147180369123816490e-01;
    constexpr double kLn2Lo = 1.90821492927058770002e-10;
    constexpr double kShift = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
    const double t = xc * kLog2e + kShift;
    const double k = t - kShift;
    const double r = (xc - k * kLn2Hi) - k * kLn2Lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // 2^k from the integer held in the low bits of t.
    std::int64_t bits;
    std::memcpy(&bits, &t, sizeof bits);
    bits = (bits - static_cast<std::int64_t>(0x4338000000000000LL) + 1023) << 52;
    double scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// Index range [lo, hi) of axis points within `radius` of x (inclusive of the ends).
inline void axis_window(const double* a, int m, double x, double radius, int& lo, int& hi) {
    lo = static_cast<int>(std::lower_bound(a, a + m, x - radius) - a);
    hi = static_cast<int>(std::upper_bound(a, a + m, x + radius) - a);
}

// What the Gaussian factors of one axis need, fixed for a whole call.
struct GaussAxis {
    const double* a = nullptr;
    int m = 0;
    double h = 1.0;
    double inv_h = 1.0;
    bool short_axis = false;   // the whole axis lies within the cut-off of any of its points
    bool uniform = false;      // the recurrence applies
    int groups = 0;            // recurrence: groups of four steps walked each way
    int pad = 0;               // 4 * groups
    double inv_spacing = 0.0;
    double delta = 0.0;        // spacing / h
    double half_delta2 = 0.0;  // delta^2 / 2
    std::vector<double> W;     // W[k] = exp(-delta^2 k (k - 1) / 2), k = 0..pad
    std::vector<double> Wrev;  // Wrev[t] = W[pad - t]

    GaussAxis(const Eigen::VectorXd& axis, double bandwidth, bool allow_recurrence)
        : a(axis.data()), m(static_cast<int>(axis.size())), h(bandwidth), inv_h(1.0 / bandwidth) {
        short_axis = a[m - 1] - a[0] <= kGaussCut * h;
        const double spacing = (a[m - 1] - a[0]) / (m - 1);
        // Distance of the points from the exact progression a_0 + i s: the measured one plus the
        // rounding of s and of a_0 + i s (a couple of ulps of the largest coordinate).
        double dev = 2.0 * std::numeric_limits<double>::epsilon() * std::max(std::abs(a[0]), std::abs(a[m - 1]));
        double measured = 0.0;
        for (int i = 1; i < m; ++i) measured = std::max(measured, std::abs(a[i] - (a[0] + i * spacing)));
        dev += measured;
        delta = spacing / h;
        uniform = allow_recurrence && m - 1 <= kMaxWalk && dev <= kSpacingTol * h &&
                  (m + 3) * delta <= kGaussCut;
        if (!uniform) return;
        groups = (m + 2) / 4;  // ceil((m - 1) / 4)
        pad = 4 * groups;
        inv_spacing = 1.0 / spacing;
        half_delta2 = 0.5 * delta * delta;
        W.resize(pad + 1);
        for (int k = 0; k <= pad; ++k) W[k] = std::exp(-half_delta2 * k * (k - 1.0));
        Wrev.assign(W.rbegin(), W.rend());
    }
};

// f[c + S k] = e r^k W[k] for k = 1 .. 4 groups (S = +1 walks up, -1 down), four steps at a time:
// step 4j + l + 1 is (e r^(4j)) r^(l + 1) W[4j + l + 1], so the dependency chain (the scalar
// e r^(4j)) is `groups` products long and the four lanes vectorize. Going down, lane l is step
// 4j + 4 - l, stored at c - 4j - 4 + l, and Wrev makes its weights contiguous too. Every walk has
// the same length, whatever c (no data-dependent branches): a group that starts past an end of the
// axis is written to the kPad slots there instead, as is the part of a group that runs past it.
template <int S>
inline void gauss_walk(const GaussAxis& ax, double* f, int c, double e, double r) {
    using Quad = Eigen::Array4d;  // one SIMD register with AVX
    // Locals, so that the stores to f need not be assumed to change them.
    const int groups = ax.groups;
    const int m = ax.m;
    const double* w = S > 0 ? ax.W.data() + 1 : ax.Wrev.data() + ax.pad - 4;
    const double r2 = r * r;
    const double r4 = r2 * r2;
    const Quad rl = S > 0 ? Quad(r, r2, r2 * r, r4) : Quad(r4, r2 * r, r2, r);
    double ej = e;
    for (int j = 0; j < groups; ++j) {
        // Lowest index of the group, clamped to the padding (min / max compile without a branch).
        const int first = S > 0 ? std::min(c + 1 + 4 * j, m) : std::max(c - 4 - 4 * j, -kPad);
        Eigen::Map<Quad> out(f + first);
        out = ej * (rl * Eigen::Map<const Quad>(w + S * 4 * j));
        ej *= r4;
    }
}

// The recurrence's anchors of a batch of rows: the axis point c nearest each x, f_c and the ratios
// r of both walks. Computed for the whole batch at once: the chain from x to its exps is long, and
// a loop over independent rows keeps the vector units busy where one row at a time would wait.
struct GaussAnchors {
    std::vector<int> c;
    std::vector<double> e, up, down;
};

inline void gauss_anchors(const GaussAxis& ax, const double* __restrict x, int n, GaussAnchors& out) {
    out.c.resize(n);
    out.e.resize(n);
    out.up.resize(n);
    out.down.resize(n);
    const double* __restrict a = ax.a;
    int* __restrict cs = out.c.data();
    double* __restrict es = out.e.data();
    double* __restrict ups = out.up.data();
    double* __restrict downs = out.down.data();
    const int last = ax.m - 1;
    const double a0 = a[0], inv_spacing = ax.inv_spacing, inv_h = ax.inv_h;
    const double delta = ax.delta, half_delta2 = ax.half_delta2;
    // Two loops: the offsets (an indexed load, which would stop the vectorizer), then the exps.
    for (int b = 0; b < n; ++b) {
        const int c = std::min(last, static_cast<int>((x[b] - a0) * inv_spacing + 0.5));
        cs[b] = c;
        es[b] = (x[b] - a[c]) * inv_h;
    }
    for (int b = 0; b < n; ++b) {
        const double u = es[b];
        const double ud = u * delta;
        es[b] = exp_small(-0.5 * u * u);
        ups[b] = exp_small(ud - half_delta2);
        downs[b] = exp_small(-ud - half_delta2);
    }
}

// Recurrence path: the factors of one row from its anchor. f[-kPad] to f[m - 1 + kPad] must be
// writable.
inline void gauss_walks(const GaussAxis& ax, int c, double e, double up, double down, double* f) {
    gauss_walk<+1>(ax, f, c, e, up);
    gauss_walk<-1>(ax, f, c, e, down);
    f[c] = e;
}

// Exact path: f[i] = exp(-u_i^2 / 2) for the m axis points, 0 beyond kGaussCut bandwidths.
inline void gauss_exact(const GaussAxis& ax, double x, double* f) {
    const int m = ax.m;
    int wlo = 0, whi = m;
    if (!ax.short_axis) axis_window(ax.a, m, x, kGaussCut * ax.h, wlo, whi);
    std::fill(f, f + wlo, 0.0);
    std::fill(f + whi, f + m, 0.0);
    const double* __restrict a = ax.a;
    for (int i = wlo; i < whi; ++i) {
        const double u = (x - a[i]) * ax.inv_h;
        f[i] = exp_small(-0.5 * u * u);
    }
}

}  // namespace grid_detail
}  // namespace hetmtl
