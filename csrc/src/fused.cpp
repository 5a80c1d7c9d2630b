#include "fused_problem.hpp"
#include "hetmtl/dense.hpp"
#include "fused_dim.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>


namespace hetmtl {

namespace {

constexpr int kChordMinDim = 8;  // from this dimension on, Newton steps may reuse a curvature
// Newton steps in a row that neither move the center beyond rounding of the sites' spread nor
// halve the best gradient so far: the arithmetic cannot take the residual any lower.
constexpr int kNewtonStagnation = 5;
// Proximal-gradient steps in a row without a decrease of the objective beyond its rounding.
constexpr int kFistaStagnation = 50;
constexpr double kRoundoff = 1e-13;  // relative size of a change lost in rounding (with margin)

// The status of a solve that ended short of the tolerance, given why its iterations stopped.
SolveStatus short_of_tol(SolveStatus why) {
    return why == SolveStatus::Converged ? SolveStatus::MaxIterations : why;
}
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

FusedProblem::Impl::Impl(const Eigen::Ref<const RowMatrix>& W, const Eigen::Ref<const Vector>& n,
                         const Eigen::Ref<const Vector>& weights)
    : K_(static_cast<int>(W.rows())),
      p_(static_cast<int>(std::lround(std::sqrt(static_cast<double>(W.cols()))))),
      w_(weights) {
    valid_input_ = K_ > 0 && p_ > 0 && static_cast<Eigen::Index>(p_) * p_ == W.cols() && n.size() == K_ &&
                   weights.size() == K_;
    if (!valid_input_) return;
    // Q_ and evals_ are filled lazily; their pages are not touched before.
    A_.resize(static_cast<Eigen::Index>(p_) * p_, K_);
    Q_.resize(static_cast<Eigen::Index>(p_) * p_, K_);
    evals_.resize(p_, K_);
    eig_once_.reset(new std::once_flag[K_ > 0 ? K_ : 1]);
    eig_ready_.reset(new std::atomic<bool>[K_ > 0 ? K_ : 1]);
    for (int k = 0; k < K_; ++k) eig_ready_[k].store(false, std::memory_order_relaxed);
    tridiagonal_ = p_ > 4;
    if (tridiagonal_) {
        tri_.resize(K_);
        tri_once_.reset(new std::once_flag[K_ > 0 ? K_ : 1]);
        tri_ready_.reset(new std::atomic<bool>[K_ > 0 ? K_ : 1]);
        for (int k = 0; k < K_; ++k) tri_ready_[k].store(false, std::memory_order_relaxed);
    }
    trace_.resize(K_);
    with_fixed_dim(p_, [&](auto P) { load_dense<decltype(P)::value>(W, n); });
}

template <int P>
void FusedProblem::Impl::load_dense(const Eigen::Ref<const RowMatrix>& W, const Eigen::Ref<const Vector>& n) {
    // Fixed-size types for small p: the per-site work is a few dozen flops, less than the set-up
    // of Eigen's dynamic-size expressions.
    using Mat = Eigen::Matrix<double, P, P>;
    const int p = P == Eigen::Dynamic ? p_ : P;  // a constant the loops unroll on, when fixed
    Mat A_sum = Mat::Zero(p_, p_);
    Eigen::MatrixXd shifted(p_, p_);  // scratch of the definiteness test
    for (int k = 0; k < K_; ++k) {
        // One pass over the lower triangle: the asymmetry test, the symmetric part (so that
        // rounding noise in the input cannot make the eigen-solver complex) and its largest entry.
        const double* Wk = W.row(k).data();  // row-major: W_k(i, j) = Wk[i * p + j]
        Eigen::Map<Mat> Ak(A_.col(k).data(), p_, p_);
        double asymmetry = 0.0, largest_w = 0.0, largest_a = 0.0;
        const double half_n = 0.5 * n(k);
        for (int j = 0; j < p; ++j) {
            for (int i = j; i < p; ++i) {
                const double wij = Wk[i * p + j], wji = Wk[j * p + i];
                asymmetry = std::max(asymmetry, std::abs(wij - wji));
                largest_w = std::max(largest_w, std::max(std::abs(wij), std::abs(wji)));
                const double a = half_n * (wij + wji);
                largest_a = std::max(largest_a, std::abs(a));
                Ak(i, j) = a;
                Ak(j, i) = a;
            }
        }
        if (asymmetric_site_ < 0 && asymmetry > 1e-8 * largest_w) asymmetric_site_ = k;
        // Positive definite beyond rounding of the largest entry: a Cholesky factorization of the
        // shifted matrix decides at a fraction of an eigendecomposition's cost.
        if (positive_definite_) {
            bool definite;
            if constexpr (P == Eigen::Dynamic) {
                shifted = Ak;
                shifted.diagonal().array() -= 1e-12 * largest_a;
                definite = cholesky_in_place(shifted);
            } else {
                Mat m = Ak;
                m.diagonal().array() -= 1e-12 * largest_a;
                definite = cholesky_small<P>(m.data(), p);
            }
            if (!definite) {
                positive_definite_ = false;
                bad_site_ = k;
                Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(Eigen::MatrixXd(Ak), Eigen::EigenvaluesOnly);
                bad_eigenvalue_ = eig.eigenvalues().minCoeff() / n(k);
            }
        }
        A_sum += Ak;
        trace_(k) = Ak.trace();
    }
    A_sum_full_ = A_sum;
    A_sum_.compute(A_sum_full_);
}

FusedProblem::Impl FusedProblem::Impl::diagonal(const Eigen::Ref<const RowMatrix>& D,
                                                 const Eigen::Ref<const Vector>& n,
                                                 const Eigen::Ref<const Vector>& weights, bool allow_semidefinite) {
    Impl pb;
    pb.diagonal_ = true;
    pb.K_ = static_cast<int>(D.rows());
    pb.p_ = static_cast<int>(D.cols());
    pb.valid_input_ = pb.K_ > 0 && pb.p_ > 0 && n.size() == pb.K_ && weights.size() == pb.K_;
    if (!pb.valid_input_) return pb;
    pb.w_ = weights;
    pb.evals_.resize(pb.p_, pb.K_);
    pb.trace_.resize(pb.K_);
    pb.A_sum_diag_ = Vector::Zero(pb.p_);
    for (int k = 0; k < pb.K_; ++k) {
        pb.evals_.col(k) = n(k) * D.row(k).transpose();
        const double lo = pb.evals_.col(k).minCoeff();
        if (!(allow_semidefinite ? lo >= 0.0 : lo > 0.0) && pb.positive_definite_) {
            pb.positive_definite_ = false;
            pb.bad_site_ = k;
            pb.bad_eigenvalue_ = lo / n(k);
        }
        pb.A_sum_diag_ += pb.evals_.col(k);
        pb.trace_(k) = pb.evals_.col(k).sum();
    }
    if (!(pb.A_sum_diag_.minCoeff() > 0.0) && pb.positive_definite_) {
        pb.positive_definite_ = false;  // a coordinate no site informs
        pb.bad_site_ = -1;
    }
    return pb;
}

void FusedProblem::Impl::ensure_all_eigen() const {
    if (!tridiagonal_) return;  // small p: the eigenbasis is the only form; diagonal: nothing to do
    for (int k = 0; k < K_; ++k) ensure_eigen(k);
}

Vector FusedProblem::Impl::solve_A_sum(const Vector& rhs) const {
    return diagonal_ ? Vector(rhs.cwiseQuotient(A_sum_diag_)) : Vector(A_sum_.solve(rhs));
}

Vector FusedProblem::Impl::pooled(const Eigen::Ref<const RowMatrix>& theta_hat) const {
    if (!valid_input_ || !matches(theta_hat)) return Vector::Constant(p_, kNaN);
    Vector rhs(p_);
    site_products(theta_hat, &rhs, nullptr);
    return solve_A_sum(rhs);
}

SolveStatus FusedProblem::Impl::check(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda,
                                      const FusedOptions& opt) const {
    const bool options_ok = opt.tol > 0.0 && opt.max_iter >= 0 && opt.n_threads >= 1;
    if (!valid_input_ || !matches(theta_hat) || !options_ok || !(lambda >= 0.0) || std::isinf(lambda)) {
        return SolveStatus::InvalidInput;
    }
    return positive_definite_ ? SolveStatus::Converged : SolveStatus::NotPositiveDefinite;
}

double FusedProblem::Impl::lambda_max(const Eigen::Ref<const RowMatrix>& theta_hat) const {
    if (!valid_input_ || !matches(theta_hat)) return kNaN;
    const Vector ubar = pooled(theta_hat);
    double lmax = 0.0;
    Vector d(p_), Ad(p_);
    for (int k = 0; k < K_; ++k) {
        d = theta_hat.row(k).transpose() - ubar;
        apply_A(k, d, Ad);
        lmax = std::max(lmax, Ad.norm() / w_(k));
    }
    return lmax;
}

double FusedProblem::Impl::residual_scale(const Eigen::Ref<const RowMatrix>& centered) const {
    // The spread of the sites around their pooled value: the natural size of every gradient in
    // the problem, and invariant to shifting all estimates by a common vector.
    double spread = 0.0;
    site_products(centered, nullptr, &spread);
    return std::max(spread, kFusedTiny);
}

RowMatrix FusedProblem::Impl::centered(const Eigen::Ref<const RowMatrix>& theta_hat, Vector& shift) const {
    shift = pooled(theta_hat);
    return theta_hat.rowwise() - shift.transpose();
}

Vector FusedProblem::Impl::center_for(const Eigen::Ref<const RowMatrix>& theta_hat, const RowMatrix& v) const {
    Vector rhs(p_);
    site_products(theta_hat - v, &rhs, nullptr);
    return solve_A_sum(rhs);
}

double FusedProblem::Impl::kkt_residual(const Eigen::Ref<const RowMatrix>& theta_hat, const RowMatrix& theta,
                                  const Vector& center, double lambda, Penalty penalty) const {
    if (!valid_input_ || !matches(theta_hat) || !matches(theta) || center.size() != p_) return kNaN;
    Vector shift;
    const RowMatrix c = centered(theta_hat, shift);
    const RowMatrix theta_c = theta.rowwise() - shift.transpose();
    return centered_kkt(c, theta_c, center - shift, lambda, penalty, residual_scale(c));
}

double FusedProblem::Impl::centered_kkt(const Eigen::Ref<const RowMatrix>& theta_hat, const RowMatrix& theta,
                                  const Vector& center, double lambda, Penalty penalty, double scale) const {
    double worst = 0.0;
    Vector gsum = Vector::Zero(p_);
    Workspace ws(p_);
    const Vector& g = ws.Ar;
    const Vector& v = ws.x;
    for (int k = 0; k < K_; ++k) {
        ws.r = (theta.row(k) - theta_hat.row(k)).transpose();
        apply_A(k, ws.r, ws.Ar);
        ws.x = theta.row(k).transpose() - center;
        const double tau = lambda * w_(k);
        double r = 0.0;
        if (penalty == Penalty::L2Squared) {
            r = (g + tau * v).norm();
            gsum.noalias() += tau * v;
        } else {
            const double vn = v.norm();
            if (vn > 0.0) {
                r = (g + (tau / vn) * v).norm();
            } else {
                r = std::max(0.0, g.norm() - tau);
            }
            gsum.noalias() += g;
        }
        worst = std::max(worst, r);
    }
    worst = std::max(worst, gsum.norm());
    return worst / scale;
}

FusedResult FusedProblem::Impl::solve(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda,
                                const FusedOptions& opt) const {
    const SolveStatus ready = check(theta_hat, lambda, opt);
    if (ready != SolveStatus::Converged) {
        FusedResult bad;
        bad.status = ready;
        return bad;
    }
    // The problem is invariant to shifting every estimate and the center by one vector. Solving
    // around the pooled estimate keeps the tolerance, which is relative to the spread of the sites,
    // above rounding however far the estimates lie from zero, and lets offsets of sites just
    // outside the fusion ball be represented to full precision.
    Vector shift;
    const RowMatrix c = centered(theta_hat, shift);
    FusedResult res = solve_centered(c, residual_scale(c), lambda, opt, nullptr);
    if (res.theta.rows() == K_) {
        res.theta.rowwise() += shift.transpose();
        res.center += shift;
    }
    return res;
}

FusedResult FusedProblem::Impl::solve_centered(const Eigen::Ref<const RowMatrix>& c, double scale, double lambda,
                                         const FusedOptions& opt, WarmStart* warm) const {
    if (K_ == 1) return single_site(c, opt);  // always fused: the center is the site's own estimate
    if (opt.penalty == Penalty::L2Squared) return solve_l2sq(c, scale, lambda, opt);
    return solve_l2(c, scale, lambda, opt, warm);
}

FusedPathResult FusedProblem::Impl::path(const Eigen::Ref<const RowMatrix>& theta_hat, const std::vector<double>& lambdas,
                                   const FusedOptions& opt) const {
    const int L = static_cast<int>(lambdas.size());
    std::vector<int> order(L);
    std::iota(order.begin(), order.end(), 0);
    // Large lambdas first: the fully fused solution is the natural start for the whole path.
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return lambdas[a] > lambdas[b]; });
    FusedPathResult out;
    out.fits.resize(L);
    SolveStatus ready = check(theta_hat, 0.0, opt);
    for (double lambda : lambdas) {
        if (ready == SolveStatus::Converged) ready = check(theta_hat, lambda, opt);
    }
    if (ready != SolveStatus::Converged) {
        for (auto& fit : out.fits) fit.status = ready;
        return out;
    }
    ensure_all_eigen();
    // Centering and the residual scale depend on the data only: once for the whole path.
    Vector shift;
    const RowMatrix c = centered(theta_hat, shift);
    const double scale = residual_scale(c);
    WarmStart warm;
    bool stopped = false;
    for (int idx : order) {
        FusedResult& res = out.fits[idx];
        if (stopped || (stopped = stop_requested(opt))) {
            res.status = SolveStatus::Interrupted;
            continue;
        }
        res = solve_centered(c, scale, lambdas[idx], opt, &warm);
        if (res.theta.rows() == K_) {
            res.theta.rowwise() += shift.transpose();
            res.center += shift;
        }
    }
    return out;
}

FusedResult FusedProblem::Impl::single_site(const Eigen::Ref<const RowMatrix>& centered, const FusedOptions& opt) const {
    FusedResult res;
    res.center = centered.row(0).transpose();
    res.theta = centered;
    res.fused.assign(1, opt.penalty == Penalty::L2 ? 1 : 0);
    res.iterations = 0;
    res.kkt = 0.0;
    res.status = res.theta.allFinite() ? SolveStatus::Converged : SolveStatus::NumericalFailure;
    return res;
}

bool FusedProblem::Impl::newton_center(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda, double scale,
                                 const FusedOptions& opt, Vector& u, int& iterations, Eigen::MatrixXd& H,
                                 CenterEval& e, bool have_hint, SolveStatus& why) const {
    double radius = 0.0;
    for (int k = 0; k < K_; ++k) radius = std::max(radius, (theta_hat.row(k).transpose() - u).norm());
    radius = 2.0 * radius + kFusedTiny;
    double curvature_scale = 0.0;
    for (int k = 0; k < K_; ++k) curvature_scale += trace_(k) / p_;
    CenterEval trial(K_, p_);
    // Where no site is fused along a direction, F is flat-curved there (H singular): a ridge on
    // the scale of the full curvature keeps the step finite; the radius cap and the line search
    // then act like a bisection along that direction.
    const double ridge = 1e-10 * std::max(curvature_scale, kFusedTiny);
    // The first step may use a neighbouring lambda's curvature (a path's warm start).
    bool reuse = H.rows() == p_ && H.cols() == p_;
    center_objective(theta_hat, lambda, u, e, have_hint ? &e.v : nullptr, opt.n_threads);
    double best_grad = e.grad.norm();
    int stagnant = 0;
    while (iterations < opt.max_iter) {
        const double grad_norm = e.grad.norm();
        if (grad_norm <= opt.tol * scale) return true;
        if (grad_norm < 0.5 * best_grad) {
            best_grad = grad_norm;
            stagnant = 0;
        } else if (stagnant >= kNewtonStagnation) {
            why = SolveStatus::Stagnated;
            return true;
        }
        if (stop_requested(opt)) {
            why = SolveStatus::Interrupted;
            return true;
        }
        ++iterations;
        // The offsets at the accepted point give the curvature without another pass of proxes.
        const bool stale = reuse;  // a curvature from an earlier point or lambda
        if (!reuse) center_hessian(lambda, e.v, H, opt.n_threads);
        reuse = false;
        Eigen::MatrixXd Hr = H;
        Hr.diagonal().array() += ridge;
        Vector d = -e.grad;
        if (cholesky_in_place(Hr)) {
            Hr.triangularView<Eigen::Lower>().solveInPlace(d);
            Hr.triangularView<Eigen::Lower>().adjoint().solveInPlace(d);
        } else {  // not numerically positive definite: a pivoted factorization decides
            Hr = H;
            Hr.diagonal().array() += ridge;
            d = Hr.ldlt().solve(d);
        }
        const double dn = d.norm();
        if (dn > radius) d *= radius / dn;  // the solution lies within reach of the site estimates
        const double slope = e.grad.dot(d);
        if (!(d.allFinite() && slope < 0.0)) {
            if (stale) continue;  // retry with the curvature at this point
            return false;
        }
        const double gnorm = e.grad.norm();
        double alpha = 1.0;
        bool accepted = false;
        for (int ls = 0; ls < 60; ++ls) {
            const Vector u_try = u + alpha * d;
            center_objective(theta_hat, lambda, u_try, trial, &e.v, opt.n_threads);
            // Armijo, with slack for rounding once F no longer changes in its leading digits.
            if (trial.f <= e.f + 1e-4 * alpha * slope + 1e-15 * std::abs(e.f) ||
                trial.grad.norm() < 1e-3 * gnorm) {
                // For larger p, where the curvature (p^3 a site) costs far more than a pass of
                // proxes (p^2 a site), keep it while a step still shrinks the gradient tenfold (a
                // chord method): along a lambda path it is rebuilt only once it has gone stale.
                reuse = p_ >= kChordMinDim && alpha == 1.0 && trial.grad.norm() <= 0.1 * gnorm;
                if ((alpha * d).norm() <= kRoundoff * radius) ++stagnant;
                u = u_try;
                e.swap(trial);
                accepted = true;
                break;
            }
            alpha *= 0.5;
        }
        if (!accepted) {
            if (!stale) return false;
            ++stagnant;
        }
    }
    return e.grad.norm() <= opt.tol * scale;
}

FusedResult FusedProblem::Impl::finish_l2(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda, double scale,
                                    const Vector& u, const CenterEval& e, int iterations,
                                    const FusedOptions& opt, SolveStatus why) const {
    FusedResult res;
    res.theta = e.v.rowwise() + u.transpose();
    res.center = u;
    res.fused.assign(K_, 0);
    // The KKT residual from the evaluation at u: g_k = A_k (theta_k - that_k) is what
    // centered_kkt would recompute, so no further pass over the sites is needed.
    double worst = e.grad.norm();
    for (int k = 0; k < K_; ++k) {
        const double vn = e.v.row(k).norm();
        const double tau = lambda * w_(k);
        res.fused[k] = vn == 0.0 ? 1 : 0;
        const double r = vn > 0.0 ? (e.g_site.row(k) + (tau / vn) * e.v.row(k)).norm()
                                  : std::max(0.0, e.g_site.row(k).norm() - tau);
        worst = std::max(worst, r);
    }
    res.iterations = iterations;
    res.kkt = worst / scale;
    if (res.kkt > opt.tol && res.theta.allFinite()) {
        // A site left a hair's breadth from the center (the center need not be unique, e.g. two
        // sites of equal weight: any point between them) has an offset too small to carry its
        // direction through theta_k - u. Reading it as fused is the same point to rounding; keep
        // that reading when it satisfies the optimality conditions better.
        double spread = 0.0;
        for (int k = 0; k < K_; ++k) spread = std::max(spread, theta_hat.row(k).norm());
        RowMatrix snapped = res.theta;
        std::vector<std::uint8_t> fused = res.fused;
        for (int k = 0; k < K_; ++k) {
            if (!fused[k] && e.v.row(k).norm() <= 1e-8 * spread) {
                snapped.row(k) = u.transpose();
                fused[k] = 1;
            }
        }
        const double kkt = centered_kkt(theta_hat, snapped, u, lambda, Penalty::L2, scale);
        if (kkt < res.kkt) {
            res.theta = std::move(snapped);
            res.fused = std::move(fused);
            res.kkt = kkt;
        }
    }
    if (!res.theta.allFinite()) {
        res.status = SolveStatus::NumericalFailure;
    } else {
        res.status = res.kkt <= opt.tol ? SolveStatus::Converged : short_of_tol(why);
    }
    return res;
}

FusedResult FusedProblem::Impl::solve_l2(const Eigen::Ref<const RowMatrix>& theta_hat, double scale, double lambda,
                                   const FusedOptions& opt, WarmStart* warm) const {
    // Eliminating each site given the center leaves F(u) = sum_k e_k(u), where e_k is the
    // infimal convolution of the site's quadratic and lambda w_k ||.||: smooth and convex in the
    // p-dimensional u. Damped Newton on u converges in a few steps; accelerated proximal gradient
    // on the offsets v_k = theta_k - u is the fallback when the line search stalls.
    CenterEval e(K_, p_);
    Eigen::MatrixXd H;
    // The data are centered at their pooled estimate: the cold start is the origin.
    Vector u = Vector::Zero(p_);
    bool have_hint = false;
    if (warm && warm->lambda > 0.0 && warm->center.size() == p_ && warm->offsets.rows() == K_) {
        u = warm->center;
        if (warm->prev_lambda > warm->lambda && warm->prev_center.size() == p_ && lambda > 0.0) {
            // The center moves smoothly with log(lambda) between fusion events: extrapolate.
            const double t = std::log(warm->lambda / lambda) / std::log(warm->prev_lambda / warm->lambda);
            if (t > 0.0 && t <= 2.0) u += t * (warm->center - warm->prev_center);
        }
        e.v = warm->offsets;
        have_hint = true;
        if (warm->hessian.rows() == p_) H = warm->hessian;
    }
    int iterations = 0;
    FusedResult res;
    // Without a penalty every site keeps its estimate, and the direct answer is as exact as the
    // arithmetic allows: short of tol only because tol is below rounding.
    SolveStatus why = lambda <= 0.0 ? SolveStatus::Stagnated : SolveStatus::Converged;
    if (lambda <= 0.0) {
        // The center is taken at the pooled estimate.
        u.setZero();
        center_objective(theta_hat, lambda, u, e, nullptr, opt.n_threads);
        res = finish_l2(theta_hat, lambda, scale, u, e, iterations, opt, why);
    } else if (newton_center(theta_hat, lambda, scale, opt, u, iterations, H, e, have_hint, why)) {
        res = finish_l2(theta_hat, lambda, scale, u, e, iterations, opt, why);
    } else {
        u = fista_center(theta_hat, lambda, opt, e.v, iterations, why);
        center_objective(theta_hat, lambda, u, e, nullptr, opt.n_threads);
        res = finish_l2(theta_hat, lambda, scale, u, e, iterations, opt, why);
        H.resize(0, 0);
    }
    if (warm && res.status == SolveStatus::Converged) {
        warm->offsets = e.v;
        warm->hessian = std::move(H);
        warm->prev_center = std::move(warm->center);
        warm->prev_lambda = warm->lambda;
        warm->center = u;
        warm->lambda = lambda;
    }
    return res;
}

Vector FusedProblem::Impl::fista_center(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda,
                                  const FusedOptions& opt, RowMatrix v, int& iterations,
                                  SolveStatus& why) const {
    // Accelerated proximal gradient on the offsets with u = u(v) in closed form. The metric is
    // blockdiag(A_k), which majorizes the reduced Hessian (A_k minus a rank-p term), so a unit step
    // is safe and each block's proximal map is an exact single-site problem.
    RowMatrix y = v;
    RowMatrix v_new(K_, p_);
    double t = 1.0;
    auto objective = [&](const RowMatrix& vv, const Vector& uu) {
        double f = 0.0;
        for (int k = 0; k < K_; ++k) {
            const Vector r = (vv.row(k) + uu.transpose() - theta_hat.row(k)).transpose();
            f += 0.5 * r.dot(apply_A(k, r)) + lambda * w_(k) * vv.row(k).norm();
        }
        return f;
    };
    Vector u = center_for(theta_hat, v);
    double f_old = objective(v, u);
    double f_best = f_old;
    int stagnant = 0;
    const double scale = residual_scale(theta_hat);
    while (iterations < opt.max_iter) {
        if (stop_requested(opt)) {
            why = SolveStatus::Interrupted;
            break;
        }
        ++iterations;
        const Vector uy = center_for(theta_hat, y);
#pragma omp parallel num_threads(opt.n_threads) if (opt.n_threads > 1 && K_ >= 64)
        {
            Workspace ws(p_);
#pragma omp for schedule(static)
            for (int k = 0; k < K_; ++k) {
                ws.z = theta_hat.row(k).transpose() - uy;
                site_prox(k, ws.z, lambda * w_(k), ws);
                v_new.row(k) = ws.x.transpose();
            }
        }
        u = center_for(theta_hat, v_new);
        const double f_new = objective(v_new, u);
        if (!std::isfinite(f_new)) break;
        RowMatrix theta = v_new.rowwise() + u.transpose();
        if (centered_kkt(theta_hat, theta, u, lambda, Penalty::L2, scale) <= opt.tol) {
            v = v_new;
            break;
        }
        if (f_new < f_best - kRoundoff * std::abs(f_best)) {
            f_best = f_new;
            stagnant = 0;
        } else if (++stagnant >= kFistaStagnation) {
            if (f_new <= f_old) v = v_new;
            why = SolveStatus::Stagnated;
            break;
        }
        if (f_new > f_old) {
            // Adaptive restart: drop the momentum and take a plain step from the last iterate.
            t = 1.0;
            y = v;
            continue;
        }
        const double t_next = 0.5 * (1.0 + std::sqrt(1.0 + 4.0 * t * t));
        y = v_new + ((t - 1.0) / t_next) * (v_new - v);
        v = v_new;
        t = t_next;
        f_old = f_new;
    }
    return center_for(theta_hat, v);
}

FusedResult FusedProblem::Impl::solve_l2sq(const Eigen::Ref<const RowMatrix>& theta_hat, double scale, double lambda,
                                     const FusedOptions& opt) const {
    // Closed form: theta_k = C_k (A_k that_k + lambda w_k u), C_k = (A_k + lambda w_k I)^-1, and
    // u solves (sum_k w_k C_k A_k) u = sum_k w_k C_k A_k that_k.
    FusedResult res;
    Eigen::MatrixXd M = Eigen::MatrixXd::Zero(p_, p_);
    Vector rhs = Vector::Zero(p_);
    std::vector<Eigen::MatrixXd> CA(K_);
    for (int k = 0; k < K_; ++k) {
        ensure_eigen(k);
        const Vector shrink = eigenvalues(k).array() / (eigenvalues(k).array() + lambda * w_(k));
        CA[k] = eigen_matrix(k, shrink);
        M.noalias() += w_(k) * CA[k];
        rhs.noalias() += w_(k) * (CA[k] * theta_hat.row(k).transpose());
    }
    const auto ldlt = M.ldlt();
    Vector u = ldlt.solve(rhs);
    // Iterative refinement: the linear system can be ill-conditioned when lambda is tiny.
    for (int it = 0; it < 3; ++it) u += ldlt.solve(rhs - M * u);
    res.theta.resize(K_, p_);
    for (int k = 0; k < K_; ++k) {
        const Vector tk = theta_hat.row(k).transpose();
        const Vector d = u - tk;  // theta_k = C_k A_k that_k + (I - C_k A_k) u
        res.theta.row(k) = (tk + d - CA[k] * d).transpose();
    }
    res.center = u;
    res.fused.assign(K_, 0);
    res.iterations = 1;
    res.kkt = centered_kkt(theta_hat, res.theta, u, lambda, Penalty::L2Squared, scale);
    if (!(res.theta.allFinite() && u.allFinite())) {
        res.status = SolveStatus::NumericalFailure;
    } else {
        // A direct solve with refinement: short of tol only where tol is below rounding.
        res.status = res.kkt <= opt.tol ? SolveStatus::Converged : SolveStatus::Stagnated;
    }
    return res;
}

// FusedProblem forwards to its Impl.
FusedProblem::FusedProblem(const Eigen::Ref<const RowMatrix>& W, const Eigen::Ref<const Vector>& n,
                           const Eigen::Ref<const Vector>& weights)
    : impl_(std::make_unique<Impl>(W, n, weights)) {}
FusedProblem::FusedProblem(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FusedProblem::FusedProblem(FusedProblem&&) noexcept = default;
FusedProblem& FusedProblem::operator=(FusedProblem&&) noexcept = default;
FusedProblem::~FusedProblem() = default;

FusedProblem FusedProblem::diagonal(const Eigen::Ref<const RowMatrix>& D, const Eigen::Ref<const Vector>& n,
                                    const Eigen::Ref<const Vector>& weights, bool allow_semidefinite) {
    return FusedProblem(std::make_unique<Impl>(Impl::diagonal(D, n, weights, allow_semidefinite)));
}

int FusedProblem::n_sites() const { return impl_->n_sites(); }
int FusedProblem::dim() const { return impl_->dim(); }
bool FusedProblem::valid_input() const { return impl_->valid_input(); }
bool FusedProblem::positive_definite() const { return impl_->positive_definite(); }
int FusedProblem::bad_site() const { return impl_->bad_site(); }
double FusedProblem::bad_eigenvalue() const { return impl_->bad_eigenvalue(); }
int FusedProblem::asymmetric_site() const { return impl_->asymmetric_site(); }
Vector FusedProblem::pooled(const Eigen::Ref<const RowMatrix>& theta_hat) const { return impl_->pooled(theta_hat); }
double FusedProblem::lambda_max(const Eigen::Ref<const RowMatrix>& theta_hat) const {
    return impl_->lambda_max(theta_hat);
}
FusedResult FusedProblem::solve(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda,
                                const FusedOptions& opt) const {
    return impl_->solve(theta_hat, lambda, opt);
}
FusedPathResult FusedProblem::path(const Eigen::Ref<const RowMatrix>& theta_hat, const std::vector<double>& lambdas,
                                   const FusedOptions& opt) const {
    return impl_->path(theta_hat, lambdas, opt);
}
void FusedProblem::ensure_all_eigen() const { impl_->ensure_all_eigen(); }
double FusedProblem::kkt_residual(const Eigen::Ref<const RowMatrix>& theta_hat, const RowMatrix& theta,
                                  const Vector& center, double lambda, Penalty penalty) const {
    return impl_->kkt_residual(theta_hat, theta, center, lambda, penalty);
}

FusedPathResult fused_path(const FusedProblem& problem, const Eigen::Ref<const RowMatrix>& theta_hat,
                           const std::vector<double>& lambdas, const FusedOptions& opt) {
    return problem.path(theta_hat, lambdas, opt);
}

std::vector<FusedResult> fused_solve_batch(const FusedProblem& problem,
                                           const Eigen::Ref<const RowMatrix>& theta_hats, double lambda,
                                           const FusedOptions& opt) {
    const int K = problem.n_sites();
    if (K <= 0 || theta_hats.rows() % K != 0) {  // not whole blocks of K rows: nothing to solve
        FusedResult bad;
        bad.status = SolveStatus::InvalidInput;
        return {bad};
    }
    const int B = static_cast<int>(theta_hats.rows()) / K;
    std::vector<FusedResult> out(B);
    FusedOptions inner = opt;
    inner.n_threads = 1;  // parallelism is across draws
    if (B > 1) problem.ensure_all_eigen();
#pragma omp parallel for num_threads(std::max(1, opt.n_threads)) schedule(dynamic)
    for (int b = 0; b < B; ++b) {
        out[b] = problem.solve(theta_hats.middleRows(static_cast<Eigen::Index>(b) * K, K), lambda, inner);
    }
    return out;
}

}  // namespace hetmtl
