#include "hetmtl/kernel_grid.hpp"

#include "kernel_grid_factors.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hetmtl {

namespace {

using grid_detail::GaussAxis;

constexpr int kMaxDim = 3;
// One accumulated moment: the product over dimensions of k(u_j) (x_j - a_j)^exps[j], times Y_t
// (target >= 0) or 1 (target < 0).
struct Moment {
    std::array<int, kMaxDim> exps{};
    int target = -1;
};

// z = (1, x - a): index 0 is the intercept, index j >= 1 is dimension j - 1.
std::array<int, kMaxDim> power_of(int a, int b) {
    std::array<int, kMaxDim> e{};
    if (a > 0) e[a - 1] += 1;
    if (b > 0) e[b - 1] += 1;
    return e;
}

// Matrix entries (a <= b) first, then vector entries (a, t).
std::vector<Moment> moment_list(int P, int T) {
    std::vector<Moment> out;
    for (int a = 0; a < P; ++a)
        for (int b = a; b < P; ++b) out.push_back({power_of(a, b), -1});
    for (int a = 0; a < P; ++a)
        for (int t = 0; t < T; ++t) out.push_back({power_of(a, 0), t});
    return out;
}

GridStatus check_axes(const std::vector<Vector>& axes, long long& bad) {
    for (std::size_t j = 0; j < axes.size(); ++j) {
        const Vector& a = axes[j];
        bool ok = a.size() >= 2 && a.allFinite();
        for (Eigen::Index i = 1; ok && i < a.size(); ++i) ok = a(i) > a(i - 1);
        if (!ok) {
            bad = static_cast<long long>(j);
            return GridStatus::BadGrid;
        }
    }
    return GridStatus::Ok;
}

// Rows of X must be finite and inside the grid's box.
GridStatus check_points(const std::vector<Vector>& axes, const Eigen::Ref<const RowMatrix>& X, long long& bad) {
    const int d = static_cast<int>(axes.size());
    for (Eigen::Index i = 0; i < X.rows(); ++i) {
        for (int j = 0; j < d; ++j) {
            const double x = X(i, j);
            if (!std::isfinite(x)) {
                bad = i;
                return GridStatus::NonFinite;
            }
            if (x < axes[j](0) || x > axes[j](axes[j].size() - 1)) {
                bad = i;
                return GridStatus::OutOfRange;
            }
        }
    }
    return GridStatus::Ok;
}

// Per-thread workspace.
struct Workspace {
    // Sparse path, one point: kernel and counting windows per dimension, the factors
    // fac[j][e][i - lo[j]] = k(u) (x_j - a_i)^e for e = 0..2, and the outer cells (all axes but the
    // last) with their coefficients and grid offsets.
    std::array<int, kMaxDim> lo{}, hi{};
    std::array<int, kMaxDim> clo{}, chi{};
    std::array<std::array<std::vector<double>, 3>, kMaxDim> fac;
    std::vector<double> outer;
    std::vector<long long> offset;
    // Dense path, one block of rows: coordinates per axis, the recurrence's anchors, the factors of
    // the outer axes (outer_line; line[j][e] points at the current row's), and the product operands.
    std::array<std::vector<double>, kMaxDim> xs;
    std::array<grid_detail::GaussAnchors, kMaxDim> anchors;
    std::array<std::vector<double>, kMaxDim> lines;
    std::array<std::array<double*, 3>, kMaxDim> line{};
    RowMatrix left, right;
};

// What every point needs: the grid shape, bandwidths and the moments to accumulate.
struct Plan {
    std::array<int, kMaxDim> m{1, 1, 1};
    std::array<double, kMaxDim> h{1.0, 1.0, 1.0};
    const std::vector<Vector>* axes = nullptr;
    const std::vector<Moment>* moments = nullptr;
    bool epa = false;
    std::vector<GaussAxis> gauss;  // Gaussian kernel: per-axis constants of the factors
    double support = 3.0;
    int max_e = 0;
    long long G = 1;
    long long outer_size = 1;  // grid points spanned by all axes but the last
};

// f[e][i] = f[e - 1][i] (x - a_i) for e = 1..max_e: the moments' powers of the offsets.
inline void offset_powers(double* const* f, int max_e, double x, const double* __restrict a, int len) {
    for (int e = 1; e <= max_e; ++e) {
        const double* __restrict prev = f[e - 1];
        double* __restrict fe = f[e];
        for (int i = 0; i < len; ++i) fe[i] = prev[i] * (x - a[i]);
    }
}

// Compact kernel: windows and one-dimensional factors k(u) (x_j - a)^e of one point.
template <int D>
void compact_factors(const double* x, const Plan& pl, Workspace& ws) {
    for (int j = 0; j < D; ++j) {
        const Vector& a = (*pl.axes)[j];
        const int m = pl.m[j];
        grid_detail::axis_window(a.data(), m, x[j], pl.h[j], ws.lo[j], ws.hi[j]);
        ws.clo[j] = ws.lo[j];
        ws.chi[j] = ws.hi[j];
        // Points exactly at distance h get zero weight and do not count.
        while (ws.clo[j] < ws.chi[j] && !(std::abs(x[j] - a(ws.clo[j])) < pl.h[j])) ++ws.clo[j];
        while (ws.chi[j] > ws.clo[j] && !(std::abs(x[j] - a(ws.chi[j] - 1)) < pl.h[j])) --ws.chi[j];
        const int len = ws.hi[j] - ws.lo[j];
        double* f[3];
        for (int e = 0; e <= pl.max_e; ++e) {
            ws.fac[j][e].resize(len);
            f[e] = ws.fac[j][e].data();
        }
        const double inv_h = 1.0 / pl.h[j];
        const double xj = x[j];
        const double* __restrict aj = a.data() + ws.lo[j];
        double* __restrict f0 = f[0];
        for (int i = 0; i < len; ++i) {
            const double u = (xj - aj[i]) * inv_h;
            f0[i] = std::max(0.0, 1.0 - u * u);
        }
        offset_powers(f, pl.max_e, xj, aj, len);
    }
}

// Gaussian kernel, whole axis j, row b of the block: f[e][i] = k(u_i) (x - a_i)^e for
// e = 0..max_e, by the recurrence from the row's anchor or by one exp per axis point.
inline void gauss_axis(int j, int b, const Plan& pl, const Workspace& ws, double* const* f) {
    const GaussAxis& ax = pl.gauss[j];
    const double x = ws.xs[j][b];
    if (ax.uniform) {
        const grid_detail::GaussAnchors& an = ws.anchors[j];
        grid_detail::gauss_walks(ax, an.c[b], an.e[b], an.up[b], an.down[b], f[0]);
    } else {
        grid_detail::gauss_exact(ax, x, f[0]);
    }
    offset_powers(f, pl.max_e, x, ax.a, ax.m);
}

// Axis points within `radius` of x, by the same comparison |x - a_i| <= radius: the range
// [lo, hi), counted branch-free (x - a_i falls and a_i - x rises along the sorted axis).
inline void count_window(const double* __restrict a, int m, double x, double radius, int& lo, int& hi) {
    std::int64_t below = 0, upto = 0;  // as wide as a double, so that the loop vectorizes
    for (int i = 0; i < m; ++i) {
        below += x - a[i] > radius;
        upto += a[i] - x <= radius;
    }
    lo = static_cast<int>(below);
    hi = static_cast<int>(upto);
}

// Counts of the dense path: a row counts for the box of grid points lo <= i < hi (per axis), kept
// as a difference array of shape (m_0 + 1) x .. x (m_{d-1} + 1): +-1 at the box's 2^d corners.
// counts_from_boxes turns it into counts by prefix sums along every axis.
template <int D>
void add_box(const std::array<int, kMaxDim>& lo, const std::array<int, kMaxDim>& hi, const Plan& pl,
             double* diff) {
    for (int corner = 0; corner < (1 << D); ++corner) {
        long long idx = 0;
        int parity = 0;
        for (int j = 0; j < D; ++j) {
            const int up = (corner >> j) & 1;
            idx = idx * (pl.m[j] + 1) + (up ? hi[j] : lo[j]);
            parity ^= up;
        }
        diff[idx] += parity ? -1.0 : 1.0;
    }
}

template <int D>
void counts_from_boxes(double* diff, const Plan& pl, double* count) {
    std::array<long long, kMaxDim> stride{};  // strides of the difference array
    stride[D - 1] = 1;
    for (int j = D - 2; j >= 0; --j) stride[j] = stride[j + 1] * (pl.m[j + 1] + 1);
    const long long size = stride[0] * (pl.m[0] + 1);
    for (int j = 0; j < D; ++j) {
        const long long len = pl.m[j] + 1;
        for (long long k = 0; k < size; ++k)
            if ((k / stride[j]) % len != 0) diff[k] += diff[k - stride[j]];
    }
    long long g = 0;
    for (long long k = 0; k < size; ++k) {
        bool inside = true;
        for (int j = 0; j < D; ++j) inside = inside && (k / stride[j]) % (pl.m[j] + 1) < pl.m[j];
        if (inside) count[g++] = diff[k];
    }
}

// Sparse path: coefficients of the outer cells (all axes but the last) of one moment within the
// point's window, written to `coef`, and their grid offsets (in units of the last axis' length).
template <int D>
int outer_cells(const Moment& mo, double w, const Workspace& ws, double* coef, long long* offset,
                const Plan& pl) {
    if constexpr (D == 1) {
        coef[0] = w;
        offset[0] = 0;
        return 1;
    } else if constexpr (D == 2) {
        const int len0 = ws.hi[0] - ws.lo[0];
        const double* f0 = ws.fac[0][mo.exps[0]].data();
        for (int i = 0; i < len0; ++i) {
            coef[i] = w * f0[i];
            offset[i] = ws.lo[0] + i;
        }
        return len0;
    } else {
        const int len0 = ws.hi[0] - ws.lo[0];
        const int len1 = ws.hi[1] - ws.lo[1];
        const double* f0 = ws.fac[0][mo.exps[0]].data();
        const double* f1 = ws.fac[1][mo.exps[1]].data();
        int o = 0;
        for (int i = 0; i < len0; ++i) {
            const double c0 = w * f0[i];
            for (int k = 0; k < len1; ++k, ++o) {
                coef[o] = c0 * f1[k];
                offset[o] = static_cast<long long>(ws.lo[0] + i) * pl.m[1] + ws.lo[1] + k;
            }
        }
        return o;
    }
}

// Counts of observations with non-negligible weight: a box of ones.
template <int D>
void count_point(const Workspace& ws, const Plan& pl, double* count) {
    if constexpr (D == 1) {
        for (int i = ws.clo[0]; i < ws.chi[0]; ++i) count[i] += 1.0;
    } else if constexpr (D == 2) {
        for (int i = ws.clo[0]; i < ws.chi[0]; ++i)
            for (int k = ws.clo[1]; k < ws.chi[1]; ++k) count[static_cast<long long>(i) * pl.m[1] + k] += 1.0;
    } else {
        for (int i = ws.clo[0]; i < ws.chi[0]; ++i)
            for (int k = ws.clo[1]; k < ws.chi[1]; ++k)
                for (int l = ws.clo[2]; l < ws.chi[2]; ++l)
                    count[(static_cast<long long>(i) * pl.m[1] + k) * pl.m[2] + l] += 1.0;
    }
}

// Sparse path (compact kernel): scatter one point into the grid points of its window only.
template <int D>
void scatter_point(const double* x, const double* y, double* acc, double* count, const Plan& pl,
                   Workspace& ws) {
    compact_factors<D>(x, pl, ws);
    constexpr int L = D - 1;  // last axis: the contiguous inner loop
    const int lo_last = ws.lo[L];
    const int len_last = ws.hi[L] - ws.lo[L];
    ws.outer.resize(pl.outer_size);
    ws.offset.resize(pl.outer_size);
    const std::vector<Moment>& moments = *pl.moments;
    for (std::size_t c = 0; c < moments.size(); ++c) {
        const Moment& mo = moments[c];
        const double w = mo.target < 0 ? 1.0 : y[mo.target];
        double* acc_c = acc + static_cast<long long>(c) * pl.G;
        const double* __restrict last = ws.fac[L][mo.exps[L]].data();
        const int n_outer = outer_cells<D>(mo, w, ws, ws.outer.data(), ws.offset.data(), pl);
        for (int o = 0; o < n_outer; ++o) {
            const double coef = ws.outer[o];
            double* __restrict row = acc_c + ws.offset[o] * pl.m[L] + lo_last;
            for (int i = 0; i < len_last; ++i) row[i] += coef * last[i];
        }
    }
    count_point<D>(ws, pl, count);
}

// Dense path, outer axis j: the block's factors of power e of row b, each line padded on both sides
// for the recurrence's overrun (kPad slots).
inline int line_stride(const Plan& pl, int j) { return pl.m[j] + 2 * grid_detail::kPad; }

inline double* outer_line(Workspace& ws, const Plan& pl, int j, int b, int e) {
    return ws.lines[j].data() + (static_cast<long long>(b) * (pl.max_e + 1) + e) * line_stride(pl, j) +
           grid_detail::kPad;
}

// Dense path: coefficients of all outer cells (all axes but the last, whole axes) of one moment,
// the products w f_0[i] f_1[k] in grid order, written to `coef`.
template <int D>
void dense_outer(const std::array<int, kMaxDim>& exps, double w, const Workspace& ws, const Plan& pl,
                 double* __restrict coef) {
    if constexpr (D == 1) {
        coef[0] = w;
    } else if constexpr (D == 2) {
        const double* __restrict f0 = ws.line[0][exps[0]];
        for (int i = 0; i < pl.m[0]; ++i) coef[i] = w * f0[i];
    } else {
        const double* __restrict f0 = ws.line[0][exps[0]];
        const double* __restrict f1 = ws.line[1][exps[1]];
        const int m1 = pl.m[1];
        for (int i = 0; i < pl.m[0]; ++i) {
            const double c0 = w * f0[i];
            double* __restrict out = coef + static_cast<long long>(i) * m1;
            for (int k = 0; k < m1; ++k) out[k] = c0 * f1[k];
        }
    }
}

// Dense path (Gaussian): a block of rows of one fold becomes small matrix products. For moment c,
// acc_c (outer x last) += Left_c' Right_e, with Left_c (B x outer) the moment's outer-cell
// coefficients and Right_e (B x last) the last axis' factors of power e. In passes over the block:
// the rows' coordinates and (equally spaced axes) the recurrence's anchors, for all rows at once;
// per row, the factors (the last axis' straight into the row's place in Right, the others' into
// the workspace) and the count box (into the difference array `diff`, see add_box); per row, the
// outer-cell products into Left; then the products.
template <int D>
void dense_block(const Eigen::Ref<const RowMatrix>& X, const Eigen::Ref<const RowMatrix>& Y, const int* rows,
                 int B, double* acc, double* diff, const Plan& pl, Workspace& ws) {
    constexpr int L = D - 1;
    constexpr int pad = grid_detail::kPad;
    const std::vector<Moment>& moments = *pl.moments;
    const long long C = static_cast<long long>(moments.size());
    const long long O = pl.outer_size;
    const int mL = pl.m[L];
    const int E = pl.max_e;
    // Columns: C moments (left); powers 0..max_e of the last axis, each segment of `right`
    // followed by `pad` slots for the factors' overrun.
    const int seg = mL + pad;
    ws.left.resize(B, C * O);
    ws.right.resize(B, pad + (E + 1) * seg);
    for (int j = 0; j < L; ++j) ws.lines[j].resize(static_cast<std::size_t>(B) * (E + 1) * line_stride(pl, j));
    // The outer-cell products get a pass of their own so that they read factors whose stores have
    // long completed (the recurrence's stores do not line up with the products' loads, and a load
    // waiting on such a store stalls).
    for (int j = 0; j < D; ++j) {
        ws.xs[j].resize(B);
        for (int b = 0; b < B; ++b) ws.xs[j][b] = X(rows[b], j);
        if (pl.gauss[j].uniform) grid_detail::gauss_anchors(pl.gauss[j], ws.xs[j].data(), B, ws.anchors[j]);
    }
    std::array<int, kMaxDim> lo{}, hi{};
    for (int b = 0; b < B; ++b) {
        for (int j = 0; j < L; ++j) {
            double* f[3];
            for (int e = 0; e <= E; ++e) f[e] = outer_line(ws, pl, j, b, e);
            gauss_axis(j, b, pl, ws, f);
        }
        double* rrow = ws.right.data() + b * ws.right.cols() + pad;
        double* last[3];
        for (int e = 0; e <= E; ++e) last[e] = rrow + e * seg;
        gauss_axis(L, b, pl, ws, last);
        for (int j = 0; j < D; ++j)
            count_window(pl.gauss[j].a, pl.m[j], ws.xs[j][b], pl.support * pl.h[j], lo[j], hi[j]);
        add_box<D>(lo, hi, pl, diff);
    }
    for (int b = 0; b < B; ++b) {
        const double* y = Y.cols() ? Y.data() + rows[b] * Y.outerStride() : nullptr;
        for (int j = 0; j < L; ++j)
            for (int e = 0; e <= E; ++e) ws.line[j][e] = outer_line(ws, pl, j, b, e);
        double* lrow = ws.left.data() + b * ws.left.cols();
        for (long long c = 0; c < C; ++c) {
            const Moment& mo = moments[c];
            const double w = mo.target < 0 ? 1.0 : y[mo.target];
            dense_outer<D>(mo.exps, w, ws, pl, lrow + c * O);
        }
    }
    // Consecutive moments with the same last-axis power share one product: their accumulators
    // are consecutive (O x mL) blocks, i.e. one (run O x mL) matrix.
    for (long long c0 = 0; c0 < C;) {
        long long c1 = c0 + 1;
        while (c1 < C && moments[c1].exps[L] == moments[c0].exps[L]) ++c1;
        Eigen::Map<RowMatrix> out(acc + c0 * pl.G, (c1 - c0) * O, mL);
        out.noalias() += ws.left.middleCols(c0 * O, (c1 - c0) * O).transpose() *
                         ws.right.middleCols(pad + moments[c0].exps[L] * seg, mL);
        c0 = c1;
    }
}

template <int D>
void accumulate(const Eigen::Ref<const RowMatrix>& X, const Eigen::Ref<const RowMatrix>& Y,
                const Eigen::Ref<const Eigen::VectorXi>& folds, int F, const std::vector<Vector>& axes,
                const Eigen::Ref<const Vector>& bandwidth, const GridOptions& opt,
                const std::vector<Moment>& moments, long long G, std::vector<double>& acc_out,
                std::vector<double>& count_out) {
    Plan pl;
    for (int j = 0; j < D; ++j) {
        pl.m[j] = static_cast<int>(axes[j].size());
        pl.h[j] = bandwidth(j);
    }
    for (int j = 0; j + 1 < D; ++j) pl.outer_size *= pl.m[j];
    pl.axes = &axes;
    pl.moments = &moments;
    pl.epa = opt.kernel == GridKernel::Epanechnikov;
    if (!pl.epa)
        for (int j = 0; j < D; ++j) pl.gauss.emplace_back(axes[j], pl.h[j], opt.gauss_recurrence);
    pl.support = opt.support;
    pl.G = G;
    for (const Moment& mo : moments)
        for (int j = 0; j < D; ++j) pl.max_e = std::max(pl.max_e, mo.exps[j]);
    const long long C = static_cast<long long>(moments.size());
    const long long per_fold = C * G;
    const Eigen::Index n = X.rows();
    // Counts per fold: the counts themselves (compact kernel) or their difference array (dense).
    long long count_size = G;
    if (!pl.epa) {
        count_size = 1;
        for (int j = 0; j < D; ++j) count_size *= pl.m[j] + 1;
    }

    // Rows grouped by fold (stable), cut into blocks that each lie in one fold.
    constexpr int kBlock = 512;
    std::vector<int> order(n);
    std::vector<long long> start(F + 1, 0);
    for (Eigen::Index i = 0; i < n; ++i) ++start[folds(i) + 1];
    for (int f = 0; f < F; ++f) start[f + 1] += start[f];
    {
        std::vector<long long> pos(start.begin(), start.end() - 1);
        for (Eigen::Index i = 0; i < n; ++i) order[pos[folds(i)]++] = static_cast<int>(i);
    }
    std::vector<std::array<long long, 3>> blocks;  // fold, first, size
    for (int f = 0; f < F; ++f)
        for (long long b = start[f]; b < start[f + 1]; b += kBlock)
            blocks.push_back({f, b, std::min<long long>(kBlock, start[f + 1] - b)});

    int n_threads = std::max(1, opt.n_threads);
#ifdef _OPENMP
    n_threads = static_cast<int>(std::min<std::size_t>(n_threads, blocks.size()));
#else
    n_threads = 1;
#endif
    n_threads = std::max(1, n_threads);
    // Private accumulators per thread, summed in thread order afterwards (deterministic for a
    // fixed thread count).
    std::vector<std::vector<double>> acc(n_threads, std::vector<double>(F * per_fold, 0.0));
    std::vector<std::vector<double>> cnt(n_threads, std::vector<double>(F * count_size, 0.0));
    const long long n_blocks = static_cast<long long>(blocks.size());
#pragma omp parallel num_threads(n_threads)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        Workspace ws;
        double* a = acc[tid].data();
        double* c = cnt[tid].data();
#pragma omp for schedule(static)
        for (long long k = 0; k < n_blocks; ++k) {
            const auto& blk = blocks[k];
            const long long f = blk[0];
            const int* rows = order.data() + blk[1];
            if (pl.epa) {
                for (long long b = 0; b < blk[2]; ++b) {
                    const Eigen::Index i = rows[b];
                    scatter_point<D>(X.data() + i * X.outerStride(),
                                     Y.cols() ? Y.data() + i * Y.outerStride() : nullptr, a + f * per_fold,
                                     c + f * count_size, pl, ws);
                }
            } else {
                dense_block<D>(X, Y, rows, static_cast<int>(blk[2]), a + f * per_fold, c + f * count_size, pl,
                               ws);
            }
        }
    }
    acc_out = std::move(acc[0]);
    count_out = std::move(cnt[0]);
    for (int t = 1; t < n_threads; ++t) {
        for (std::size_t k = 0; k < acc_out.size(); ++k) acc_out[k] += acc[t][k];
        for (std::size_t k = 0; k < count_out.size(); ++k) count_out[k] += cnt[t][k];
    }
    if (!pl.epa) {
        std::vector<double> diff = std::move(count_out);
        count_out.assign(F * G, 0.0);
        for (int f = 0; f < F; ++f) counts_from_boxes<D>(diff.data() + f * count_size, pl, count_out.data() + f * G);
    }
}

}  // namespace

GridSums grid_sums(const Eigen::Ref<const RowMatrix>& X, const Eigen::Ref<const RowMatrix>& Y,
                   const Eigen::Ref<const Eigen::VectorXi>& folds, int n_folds,
                   const std::vector<Vector>& axes, const Eigen::Ref<const Vector>& bandwidth,
                   const GridOptions& opt) {
    GridSums out;
    const int d = static_cast<int>(axes.size());
    const Eigen::Index n = X.rows();
    if (d < 1 || d > kMaxDim || X.cols() != d || bandwidth.size() != d || Y.rows() != n ||
        folds.size() != n || n_folds < 1) {
        out.status = GridStatus::BadDimension;
        return out;
    }
    if ((out.status = check_axes(axes, out.bad_index)) != GridStatus::Ok) return out;
    for (int j = 0; j < d; ++j) {
        if (!(std::isfinite(bandwidth(j)) && bandwidth(j) > 0.0)) {
            out.status = GridStatus::BadBandwidth;
            out.bad_index = j;
            return out;
        }
    }
    if ((out.status = check_points(axes, X, out.bad_index)) != GridStatus::Ok) return out;
    for (Eigen::Index i = 0; i < n; ++i) {
        if (!Y.row(i).allFinite()) {
            out.status = GridStatus::NonFinite;
            out.bad_index = i;
            return out;
        }
    }
    std::vector<long long> fold_size(n_folds, 0);
    for (Eigen::Index i = 0; i < n; ++i) {
        const int f = folds(i);
        if (f < 0 || f >= n_folds) {
            out.status = GridStatus::BadFold;
            out.bad_index = i;
            return out;
        }
        ++fold_size[f];
    }
    for (int f = 0; f < n_folds; ++f) {
        if (fold_size[f] == 0) {
            out.status = GridStatus::EmptyFold;
            out.bad_index = f;
            return out;
        }
    }

    const int P = opt.fit == GridFit::LocalLinear ? d + 1 : 1;
    const int T = static_cast<int>(Y.cols());
    long long G = 1;
    for (const Vector& a : axes) G *= a.size();
    const std::vector<Moment> moments = moment_list(P, T);
    std::vector<double> acc;
    if (d == 1) accumulate<1>(X, Y, folds, n_folds, axes, bandwidth, opt, moments, G, acc, out.count);
    if (d == 2) accumulate<2>(X, Y, folds, n_folds, axes, bandwidth, opt, moments, G, acc, out.count);
    if (d == 3) accumulate<3>(X, Y, folds, n_folds, axes, bandwidth, opt, moments, G, acc, out.count);

    // Unpack the (F, C, G) accumulators into full (F, G, P, P) and (F, G, P, T) blocks.
    out.n_folds = n_folds;
    out.n_grid = static_cast<int>(G);
    out.P = P;
    out.T = T;
    out.M.assign(static_cast<std::size_t>(n_folds) * G * P * P, 0.0);
    out.V.assign(static_cast<std::size_t>(n_folds) * G * P * T, 0.0);
    const long long C = static_cast<long long>(moments.size());
    for (int f = 0; f < n_folds; ++f) {
        const double* af = acc.data() + f * C * G;
        long long c = 0;
        for (int a = 0; a < P; ++a) {
            for (int b = a; b < P; ++b, ++c) {
                for (long long g = 0; g < G; ++g) {
                    const double v = af[c * G + g];
                    double* Mg = out.M.data() + ((f * G + g) * P) * P;
                    Mg[a * P + b] = v;
                    Mg[b * P + a] = v;
                }
            }
        }
        for (int a = 0; a < P; ++a) {
            for (int t = 0; t < T; ++t, ++c) {
                for (long long g = 0; g < G; ++g) out.V[((f * G + g) * P + a) * T + t] = af[c * G + g];
            }
        }
    }
    return out;
}

InterpResult grid_interpolate(const std::vector<Vector>& axes, const Eigen::Ref<const RowMatrix>& values,
                              const Eigen::Ref<const RowMatrix>& X, int n_threads) {
    InterpResult out;
    const int d = static_cast<int>(axes.size());
    long long G = 1;
    for (const Vector& a : axes) G *= a.size();
    if (d < 1 || d > kMaxDim || X.cols() != d || values.rows() != G) {
        out.status = GridStatus::BadDimension;
        return out;
    }
    if ((out.status = check_axes(axes, out.bad_index)) != GridStatus::Ok) return out;
    if ((out.status = check_points(axes, X, out.bad_index)) != GridStatus::Ok) return out;
    const Eigen::Index n = X.rows();
    const int T = static_cast<int>(values.cols());
    out.values.resize(n, T);
    std::array<long long, kMaxDim> stride{0, 0, 0};
    stride[d - 1] = 1;
    for (int j = d - 2; j >= 0; --j) stride[j] = stride[j + 1] * axes[j + 1].size();
    const int n_corners = 1 << d;
    long long missing = 0;
#pragma omp parallel for schedule(static) num_threads(std::max(1, n_threads)) reduction(+ : missing)
    for (Eigen::Index i = 0; i < n; ++i) {
        std::array<long long, kMaxDim> cell{};
        std::array<double, kMaxDim> frac{};
        for (int j = 0; j < d; ++j) {
            const Vector& a = axes[j];
            const double* begin = a.data();
            const double* end = begin + a.size();
            long long c = static_cast<long long>(std::upper_bound(begin, end, X(i, j)) - begin) - 1;
            c = std::min<long long>(std::max<long long>(c, 0), a.size() - 2);
            cell[j] = c;
            frac[j] = (X(i, j) - a(c)) / (a(c + 1) - a(c));
        }
        bool any_missing = false;
        for (int t = 0; t < T; ++t) {
            double num = 0.0, den = 0.0;
            for (int corner = 0; corner < n_corners; ++corner) {
                double w = 1.0;
                long long g = 0;
                for (int j = 0; j < d; ++j) {
                    const int up = (corner >> (d - 1 - j)) & 1;
                    w *= up ? frac[j] : 1.0 - frac[j];
                    g += (cell[j] + up) * stride[j];
                }
                const double v = values(g, t);
                if (w > 0.0 && !std::isnan(v)) {
                    num += w * v;
                    den += w;
                }
            }
            if (den > 0.0) {
                out.values(i, t) = num / den;
            } else {
                out.values(i, t) = std::numeric_limits<double>::quiet_NaN();
                any_missing = true;
            }
        }
        if (any_missing) ++missing;
    }
    out.n_missing = missing;
    return out;
}

PointwiseFusedResult fused_pointwise(const Eigen::Ref<const RowMatrix>& D,
                                     const Eigen::Ref<const RowMatrix>& theta_hat,
                                     const Eigen::Ref<const Vector>& n, const Eigen::Ref<const Vector>& weights,
                                     double lambda, const FusedOptions& opt) {
    const int K = static_cast<int>(D.rows());
    const int G = static_cast<int>(D.cols());
    const double nan = std::numeric_limits<double>::quiet_NaN();
    PointwiseFusedResult out;
    out.theta = RowMatrix::Constant(K, G, nan);
    out.center = Vector::Constant(G, nan);
    out.status.assign(G, -1);
    out.iterations.assign(G, 0);
    out.kkt.assign(G, nan);
    if (theta_hat.rows() != K || theta_hat.cols() != G || n.size() != K || weights.size() != K) {
        out.status.assign(G, static_cast<int>(SolveStatus::InvalidInput));
        return out;
    }
    FusedOptions inner = opt;
    inner.n_threads = 1;  // parallel over grid points instead
#pragma omp parallel for schedule(dynamic, 8) num_threads(std::max(1, opt.n_threads))
    for (int g = 0; g < G; ++g) {
        if (!(D.col(g).maxCoeff() > 0.0)) continue;  // no site released this grid point
        const RowMatrix Dg = D.col(g);
        const RowMatrix tg = theta_hat.col(g);
        const FusedProblem pb = FusedProblem::diagonal(Dg, n, weights, true);
        const FusedResult r = pb.solve(tg, lambda, inner);
        out.status[g] = static_cast<int>(r.status);
        out.iterations[g] = r.iterations;
        if (r.theta.rows() == K) {
            out.theta.col(g) = r.theta.col(0);
            out.center(g) = r.center(0);
            out.kkt[g] = r.kkt;
        }
    }
    return out;
}

}  // namespace hetmtl
