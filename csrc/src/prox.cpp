#include "hetmtl/prox.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace hetmtl {

namespace {

bool all_finite_nonneg(const Eigen::Ref<const Vector>& v, bool allow_inf) {
    for (Eigen::Index i = 0; i < v.size(); ++i) {
        const double x = v(i);
        if (std::isnan(x) || x < 0.0 || (!allow_inf && std::isinf(x))) return false;
    }
    return true;
}

// The proximal map of step t * pen * P(. - c) for one block, in place.
void prox_block(Eigen::Ref<Vector> v, const Eigen::Ref<const Vector>& c, double pen, HeadPenalty form, double t) {
    if (v.size() == 0) return;
    switch (form) {
        case HeadPenalty::None:
            return;
        case HeadPenalty::L2: {
            const double norm = (v - c).norm();
            const double tau = t * pen;
            if (norm <= tau) {
                v = c;
            } else {
                v = c + (1.0 - tau / norm) * (v - c);
            }
            return;
        }
        case HeadPenalty::L2Squared:
            v = c + (v - c) / (1.0 + t * pen);
            return;
        case HeadPenalty::Ball: {
            const double norm = (v - c).norm();
            if (norm > pen) v = c + (pen / norm) * (v - c);
            return;
        }
    }
}

struct TaskProblem {
    Eigen::MatrixXd A;  // (2 w / n) Fc' Fc over the centered features [Z H]
    Vector b;           // (2 w / n) Fc' yc
    Vector mean;        // column means of [Z H]
    double ybar = 0.0;
    double L = 1.0;     // Lipschitz constant of the gradient
};

TaskProblem build_task(const Eigen::Ref<const RowMatrix>& Z, const Eigen::Ref<const RowMatrix>& H,
                       const Eigen::Ref<const Vector>& y, std::int64_t lo, std::int64_t hi, double w,
                       double ridge) {
    const Eigen::Index n = hi - lo, q = Z.cols(), p = H.cols();
    Eigen::MatrixXd F(n, q + p);
    F.leftCols(q) = Z.middleRows(lo, n);
    F.rightCols(p) = H.middleRows(lo, n);
    TaskProblem tp;
    tp.mean = F.colwise().mean().transpose();
    tp.ybar = y.segment(lo, n).mean();
    F.rowwise() -= tp.mean.transpose();
    const Vector yc = y.segment(lo, n).array() - tp.ybar;
    const double s = 2.0 * w / static_cast<double>(n);
    tp.A = Eigen::MatrixXd::Zero(q + p, q + p);
    tp.A.selfadjointView<Eigen::Lower>().rankUpdate(F.transpose(), s);
    tp.A.triangularView<Eigen::StrictlyUpper>() = tp.A.transpose();
    tp.A.diagonal().array() += ridge;
    tp.b = s * (F.transpose() * yc);
    double L = 0.0;
    if (q + p > 0) {
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(tp.A, Eigen::EigenvaluesOnly);
        L = eig.eigenvalues().maxCoeff();
    }
    // A zero smooth part (one row, constant encodings, zero weight): any positive step is exact.
    tp.L = (std::isfinite(L) && L > 0.0) ? L : 1.0;
    return tp;
}

}  // namespace

ProxStatus group_soft_threshold(const Eigen::Ref<const RowMatrix>& V, const Eigen::Ref<const Vector>& center,
                                const Eigen::Ref<const Vector>& tau, Eigen::Ref<RowMatrix> out) {
    if (center.size() != V.cols() || tau.size() != V.rows() || out.rows() != V.rows() || out.cols() != V.cols() ||
        !all_finite_nonneg(tau, true)) {
        return ProxStatus::InvalidInput;
    }
    Vector v(V.cols());
    for (Eigen::Index i = 0; i < V.rows(); ++i) {
        v = V.row(i).transpose();
        prox_block(v, center, tau(i), HeadPenalty::L2, 1.0);
        out.row(i) = v.transpose();
    }
    return ProxStatus::Converged;
}

ProxStatus project_l2_ball(const Eigen::Ref<const RowMatrix>& V, const Eigen::Ref<const Vector>& center,
                           const Eigen::Ref<const Vector>& radius, Eigen::Ref<RowMatrix> out) {
    if (center.size() != V.cols() || radius.size() != V.rows() || out.rows() != V.rows() ||
        out.cols() != V.cols() || !all_finite_nonneg(radius, true)) {
        return ProxStatus::InvalidInput;
    }
    Vector v(V.cols());
    for (Eigen::Index i = 0; i < V.rows(); ++i) {
        v = V.row(i).transpose();
        prox_block(v, center, radius(i), HeadPenalty::Ball, 1.0);
        out.row(i) = v.transpose();
    }
    return ProxStatus::Converged;
}

GeoMedianResult geometric_median(const Eigen::Ref<const RowMatrix>& points, const Eigen::Ref<const Vector>& weights,
                                 const GeoMedianOptions& opt) {
    GeoMedianResult res;
    const Eigen::Index m = points.rows(), p = points.cols();
    if (m == 0 || weights.size() != m || !all_finite_nonneg(weights, false) || !(weights.sum() > 0.0) ||
        !points.allFinite() || opt.max_iter < 1 || !(opt.tol > 0.0)) {
        res.status = ProxStatus::InvalidInput;
        return res;
    }
    const double wsum = weights.sum();
    // Points closer than this to the iterate count as coinciding with it.
    const double scale = 1.0 + points.cwiseAbs().maxCoeff();
    const double eps = 1e-13 * scale;
    Vector x = (points.transpose() * weights) / wsum;
    Vector num(p), d(m);
    res.status = ProxStatus::MaxIterations;
    for (int it = 0; it <= opt.max_iter; ++it) {
        double den = 0.0, eta = 0.0;
        int at = -1;
        num.setZero();
        for (Eigen::Index i = 0; i < m; ++i) {
            d(i) = (points.row(i).transpose() - x).norm();
            if (d(i) <= eps) {
                eta += weights(i);
                at = static_cast<int>(i);
            } else {
                num += (weights(i) / d(i)) * points.row(i).transpose();
                den += weights(i) / d(i);
            }
        }
        res.iterations = it;
        res.at_point = at;
        // R = sum over other points of w_i (p_i - x) / d_i; x is optimal iff ||R|| <= eta.
        const double r = den > 0.0 ? (num - den * x).norm() : 0.0;
        res.residual = std::max(0.0, r - eta) / wsum;
        if (res.residual <= opt.tol) {
            res.status = ProxStatus::Converged;
            if (at >= 0) x = points.row(at).transpose();  // exactly on the data point
            break;
        }
        if (it == opt.max_iter) break;
        const Vector T = num / den;
        // Vardi-Zhang: move only part of the way off a data point that carries weight eta.
        const double g = std::min(1.0, eta / r);
        x = (1.0 - g) * T + g * x;
        if (!x.allFinite()) {
            res.status = ProxStatus::NumericalFailure;
            break;
        }
    }
    res.median = x;
    return res;
}

HeadResult solve_heads(const HeadProblem& problem, const HeadOptions& opt) {
    // Short names for the fields (the formulas below read as in the header's problem statement).
    const RowMatrixView &Z = problem.Z, &H = problem.H, &alpha0 = problem.alpha0, &beta0 = problem.beta0;
    const VectorView &y = problem.y, &loss_weights = problem.loss_weights, &ridge = problem.ridge;
    const VectorView &pen_alpha = problem.pen_alpha, &pen_beta = problem.pen_beta;
    const VectorView &alpha_center = problem.alpha_center, &beta_center = problem.beta_center;
    const std::vector<std::int64_t>& offsets = problem.offsets;
    HeadResult res;
    const Eigen::Index N = y.size(), q = Z.cols(), p = H.cols();
    const Eigen::Index R = static_cast<Eigen::Index>(offsets.size()) - 1;
    bool ok = R >= 1 && Z.rows() == N && H.rows() == N && loss_weights.size() == R && pen_alpha.size() == R &&
              pen_beta.size() == R && ridge.size() == R && alpha_center.size() == q && beta_center.size() == p &&
              (alpha0.rows() == 0 || (alpha0.rows() == R && alpha0.cols() == q)) &&
              (beta0.rows() == 0 || (beta0.rows() == R && beta0.cols() == p)) && opt.max_iter >= 1 &&
              opt.tol > 0.0 && all_finite_nonneg(ridge, false) && all_finite_nonneg(loss_weights, false) &&
              all_finite_nonneg(pen_alpha, opt.penalty_alpha == HeadPenalty::Ball) &&
              all_finite_nonneg(pen_beta, opt.penalty_beta == HeadPenalty::Ball);
    if (ok) {
        ok = offsets.front() == 0 && offsets.back() == N;
        for (Eigen::Index r = 0; ok && r < R; ++r) ok = offsets[r + 1] > offsets[r];
    }
    if (!ok) {
        res.status_all = ProxStatus::InvalidInput;
        return res;
    }
    res.alpha.resize(R, q);
    res.beta.resize(R, p);
    res.intercept.resize(R);
    res.fused_alpha.assign(R, 0);
    res.fused_beta.assign(R, 0);
    res.iterations.assign(R, 0);
    res.kkt.resize(R);
    res.status.assign(R, 0);
    const int n_threads = std::max(1, opt.n_threads);

#pragma omp parallel for num_threads(n_threads) if (n_threads > 1 && R > 1) schedule(dynamic)
    for (Eigen::Index r = 0; r < R; ++r) {
        const TaskProblem tp = build_task(Z, H, y, offsets[r], offsets[r + 1], loss_weights(r), ridge(r));
        const Eigen::Index k = q + p;
        Vector center(k);
        center << alpha_center, beta_center;
        auto prox = [&](Vector& v, double t) {
            prox_block(v.head(q), alpha_center, pen_alpha(r), opt.penalty_alpha, t);
            prox_block(v.tail(p), beta_center, pen_beta(r), opt.penalty_beta, t);
        };
        const double step = 1.0 / tp.L;
        const double scale = 1.0 + tp.b.norm();
        // Relative fixed-point (KKT) residual L ||x - prox(x - grad / L)|| / (1 + ||b||).
        auto kkt = [&](const Vector& x) {
            Vector z = x - step * (tp.A * x - tp.b);
            prox(z, step);
            return tp.L * (x - z).norm() / scale;
        };
        Vector x(k);
        x.head(q) = alpha0.rows() ? Vector(alpha0.row(r).transpose()) : Vector(alpha_center);
        x.tail(p) = beta0.rows() ? Vector(beta0.row(r).transpose()) : Vector(beta_center);
        prox(x, 0.0);  // a warm start outside a ball constraint is projected first
        Vector yk = x, xn(k);
        double t = 1.0, res_kkt = kkt(x);
        int it = 0;
        ProxStatus st = ProxStatus::Converged;
        while (res_kkt > opt.tol) {
            if (it >= opt.max_iter) {
                st = ProxStatus::MaxIterations;
                break;
            }
            ++it;
            xn = yk - step * (tp.A * yk - tp.b);
            prox(xn, step);
            const double tn = 0.5 * (1.0 + std::sqrt(1.0 + 4.0 * t * t));
            // Adaptive restart (O'Donoghue & Candes): drop the momentum when it points uphill.
            if ((yk - xn).dot(xn - x) > 0.0) {
                yk = xn;
                t = 1.0;
            } else {
                yk = xn + ((t - 1.0) / tn) * (xn - x);
                t = tn;
            }
            x = xn;
            if (it % 10 == 0 || it == opt.max_iter) {
                if (!x.allFinite()) {
                    st = ProxStatus::NumericalFailure;
                    break;
                }
                res_kkt = kkt(x);
            }
        }
        res.alpha.row(r) = x.head(q).transpose();
        res.beta.row(r) = x.tail(p).transpose();
        res.intercept(r) = tp.ybar - tp.mean.dot(x);
        res.fused_alpha[r] = opt.penalty_alpha == HeadPenalty::L2 && q > 0 && pen_alpha(r) > 0.0 && x.head(q) == alpha_center;
        res.fused_beta[r] = opt.penalty_beta == HeadPenalty::L2 && p > 0 && pen_beta(r) > 0.0 && x.tail(p) == beta_center;
        res.iterations[r] = it;
        res.kkt(r) = res_kkt;
        res.status[r] = static_cast<int>(st);
    }
    for (Eigen::Index r = 0; r < R; ++r) {
        res.status_all = static_cast<ProxStatus>(std::max(static_cast<int>(res.status_all), res.status[r]));
    }
    return res;
}

}  // namespace hetmtl
