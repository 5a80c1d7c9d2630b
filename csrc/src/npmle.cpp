// Grid NPMLE of a normal location mixture: SQUAREM-accelerated EM with vertex steps (see npmle.hpp).
#include "hetmtl/npmle.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace hetmtl {
namespace {

constexpr double kTiny = 1e-300;

// One data set: the likelihood matrix (K x M, row-major, each row scaled to maximum one) and
// the site weights, with the work buffers of the iterations.
class Problem {
public:
    Problem(const double* z, const double* w, const double* s, const double* a, int K, int M)
        : K_(K), M_(M), L_(static_cast<size_t>(K) * M), s_(s, s + K), f_(K), D_(M) {
        for (int k = 0; k < K; ++k) {
            double dmin = std::numeric_limits<double>::infinity();
            double* row = &L_[static_cast<size_t>(k) * M];
            for (int j = 0; j < M; ++j) {
                row[j] = (z[k] - a[j]) * (z[k] - a[j]) / w[k];
                dmin = std::min(dmin, row[j]);
            }
            for (int j = 0; j < M; ++j) row[j] = std::exp(-0.5 * (row[j] - dmin));
        }
    }

    const double* lik_row(int k) const { return &L_[static_cast<size_t>(k) * M_]; }

    // f = L g (floored), returns sum_k s_k log f_k.
    double mixture(const std::vector<double>& g) {
        double ll = 0.0;
        for (int k = 0; k < K_; ++k) {
            const double* row = lik_row(k);
            double fk = 0.0;
            for (int j = 0; j < M_; ++j) fk += row[j] * g[j];
            f_[k] = std::max(fk, kTiny);
            ll += s_[k] * std::log(f_[k]);
        }
        return ll;
    }

    // D = L' (s / f) from the current f; returns max_j D_j - 1.
    double gradient() {
        std::fill(D_.begin(), D_.end(), 0.0);
        for (int k = 0; k < K_; ++k) {
            const double* row = lik_row(k);
            const double c = s_[k] / f_[k];
            for (int j = 0; j < M_; ++j) D_[j] += c * row[j];
        }
        return *std::max_element(D_.begin(), D_.end()) - 1.0;
    }

    // One EM step in place; returns the gap at the old g.
    double em(std::vector<double>& g) {
        mixture(g);
        const double gap = gradient();
        double total = 0.0;
        for (int j = 0; j < M_; ++j) total += (g[j] *= D_[j]);
        for (int j = 0; j < M_; ++j) g[j] /= total;
        return gap;
    }

    // SQUAREM (SqS3) step from g, in place; returns the gap at the incoming g.
    double squarem(std::vector<double>& g) {
        g0_ = g;
        const double gap = em(g);          // g = g1
        g1_ = g;
        em(g);                             // g = g2
        double rr = 0.0, uu = 0.0;
        for (int j = 0; j < M_; ++j) {
            const double r = g1_[j] - g0_[j], u = g[j] - 2.0 * g1_[j] + g0_[j];
            rr += r * r;
            uu += u * u;
        }
        const double alpha = uu > 0.0 ? std::min(-std::sqrt(rr / uu), -1.0) : -1.0;
        gx_.resize(M_);
        bool inside = true;
        double total = 0.0;
        for (int j = 0; j < M_; ++j) {
            const double r = g1_[j] - g0_[j], u = g[j] - 2.0 * g1_[j] + g0_[j];
            gx_[j] = g0_[j] - 2.0 * alpha * r + alpha * alpha * u;
            inside = inside && gx_[j] > 0.0;
            total += gx_[j];
        }
        // Outside the simplex: keep the two EM steps (clipping would zero weights for good).
        if (!inside) return gap;
        for (int j = 0; j < M_; ++j) gx_[j] /= total;
        em(gx_);
        if (mixture(gx_) >= mixture(g)) g.swap(gx_);
        return gap;
    }

    // Step a in [0, 1] maximizing sum_k s_k log(f_k + a df_k) (concave): bisection on the derivative.
    double line_search(const std::vector<double>& df) const {
        auto deriv = [&](double a) {
            double d = 0.0;
            for (int k = 0; k < K_; ++k) d += s_[k] * df[k] / std::max(f_[k] + a * df[k], kTiny);
            return d;
        };
        if (deriv(1.0) > 0.0) return 1.0;
        double lo = 0.0, hi = 1.0;
        for (int it = 0; it < 40; ++it) {
            const double mid = 0.5 * (lo + hi);
            (deriv(mid) > 0.0 ? lo : hi) = mid;
        }
        return lo;
    }

    // Vertex direction towards argmax D, then vertex exchange from the support point of smallest D.
    void vertex_steps(std::vector<double>& g) {
        mixture(g);
        gradient();
        const int best = static_cast<int>(std::max_element(D_.begin(), D_.end()) - D_.begin());
        df_.resize(K_);
        for (int k = 0; k < K_; ++k) df_[k] = lik_row(k)[best] - f_[k];
        const double a = line_search(df_);
        for (int j = 0; j < M_; ++j) g[j] *= 1.0 - a;
        g[best] += a;
        mixture(g);
        gradient();
        int worst = -1;
        for (int j = 0; j < M_; ++j)
            if (g[j] > 1e-14 && (worst < 0 || D_[j] < D_[worst])) worst = j;
        if (worst < 0 || worst == best) return;
        const double moved = g[worst];
        for (int k = 0; k < K_; ++k)
            df_[k] = moved * (lik_row(k)[best] - lik_row(k)[worst]);
        const double b = line_search(df_);
        g[worst] -= b * moved;
        g[best] += b * moved;
        double total = 0.0;
        for (int j = 0; j < M_; ++j) total += (g[j] = std::max(g[j], 0.0));
        for (int j = 0; j < M_; ++j) g[j] /= total;
    }

    // Posterior means of the effects under g (grid a), into est.
    void posterior_means(const std::vector<double>& g, const double* a, double* est) const {
        for (int k = 0; k < K_; ++k) {
            const double* row = lik_row(k);
            double num = 0.0, den = 0.0;
            for (int j = 0; j < M_; ++j) {
                num += row[j] * g[j] * a[j];
                den += row[j] * g[j];
            }
            est[k] = num / std::max(den, kTiny);
        }
    }

private:
    int K_, M_;
    std::vector<double> L_, s_, f_, D_, g0_, g1_, gx_, df_;
};

}  // namespace

NpmleResult npmle_fit(const Eigen::Ref<const RowMatrix>& z, const Eigen::Ref<const RowMatrix>& w,
                      const Eigen::Ref<const RowMatrix>& site_weights,
                      const Eigen::Ref<const RowMatrix>& grid, const NpmleOptions& opt) {
    NpmleResult out;
    const Eigen::Index B = z.rows(), K = z.cols(), M = grid.cols();
    if (w.rows() != B || w.cols() != K || site_weights.rows() != B || site_weights.cols() != K ||
        grid.rows() != B || K < 1 || M < 1 || !((w.array() > 0.0).all()) || opt.max_iter < 1) {
        out.valid = false;
        return out;
    }
    out.weights.resize(B, M);
    out.estimate.resize(B, K);
    out.gap.resize(B);
    out.iterations.assign(static_cast<size_t>(B), 0);
    // Rows of Eigen::Ref<const RowMatrix> are contiguous (inner stride one).
#pragma omp parallel for schedule(dynamic, 16) num_threads(std::max(1, opt.n_threads))
    for (Eigen::Index b = 0; b < B; ++b) {
        const double* a = grid.row(b).data();
        Problem problem(z.row(b).data(), w.row(b).data(), site_weights.row(b).data(), a,
                        static_cast<int>(K), static_cast<int>(M));
        std::vector<double> g(static_cast<size_t>(M), 1.0 / static_cast<double>(M));
        double gap = std::numeric_limits<double>::infinity();
        int it = 0;
        for (; it < opt.max_iter; ++it) {
            std::vector<double> before = g;
            gap = problem.squarem(g);
            // The gap was measured at the incoming weights: keep those once it is small enough.
            if (gap <= opt.tol) {
                g.swap(before);
                break;
            }
            problem.vertex_steps(g);
        }
        if (it == opt.max_iter) {
            problem.mixture(g);
            gap = problem.gradient();
        }
        for (Eigen::Index j = 0; j < M; ++j) out.weights(b, j) = g[static_cast<size_t>(j)];
        problem.posterior_means(g, a, out.estimate.row(b).data());
        out.gap(b) = gap;
        out.iterations[static_cast<size_t>(b)] = it;
    }
    return out;
}

}  // namespace hetmtl
