#include "hetmtl/fused.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace hetmtl {

namespace {

constexpr double kTiny = 1e-300;

bool all_finite(const RowMatrix& m) { return m.allFinite(); }

}  // namespace

FusedProblem::FusedProblem(const Eigen::Ref<const RowMatrix>& W, const Eigen::Ref<const Vector>& n,
                           const Eigen::Ref<const Vector>& weights)
    : K_(static_cast<int>(W.rows())),
      p_(static_cast<int>(std::lround(std::sqrt(static_cast<double>(W.cols()))))),
      w_(weights) {
    A_.resize(K_);
    Q_.resize(K_);
    evals_.resize(K_);
    Eigen::MatrixXd A_sum = Eigen::MatrixXd::Zero(p_, p_);
    for (int k = 0; k < K_; ++k) {
        Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> Wk(
            W.row(k).data(), p_, p_);
        // Symmetrize so that rounding noise in the input cannot make the eigen-solver complex.
        Eigen::MatrixXd Ak = 0.5 * n(k) * (Wk + Wk.transpose());
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(Ak);
        if (eig.info() != Eigen::Success || !(eig.eigenvalues().minCoeff() > 0.0)) {
            positive_definite_ = false;
        }
        A_sum += Ak;
        A_[k] = std::move(Ak);
        Q_[k] = eig.eigenvectors();
        evals_[k] = eig.eigenvalues();
    }
    A_sum_.compute(A_sum);
}

Vector FusedProblem::apply_A(int k, const Vector& x) const { return A_[k] * x; }

Vector FusedProblem::pooled(const Eigen::Ref<const RowMatrix>& theta_hat) const {
    Vector rhs = Vector::Zero(p_);
    for (int k = 0; k < K_; ++k) rhs.noalias() += A_[k] * theta_hat.row(k).transpose();
    return A_sum_.solve(rhs);
}

double FusedProblem::lambda_max(const Eigen::Ref<const RowMatrix>& theta_hat) const {
    const Vector ubar = pooled(theta_hat);
    double lmax = 0.0;
    for (int k = 0; k < K_; ++k) {
        const Vector d = theta_hat.row(k).transpose() - ubar;
        lmax = std::max(lmax, (A_[k] * d).norm() / w_(k));
    }
    return lmax;
}

double FusedProblem::residual_scale(const Eigen::Ref<const RowMatrix>& theta_hat) const {
    const Vector ubar = pooled(theta_hat);
    double spread = 0.0;
    double level = 0.0;
    for (int k = 0; k < K_; ++k) {
        const Vector tk = theta_hat.row(k).transpose();
        spread = std::max(spread, (A_[k] * (tk - ubar)).norm());
        level = std::max(level, (A_[k] * tk).norm());
    }
    return std::max({spread, 1e-12 * level, kTiny});
}

Vector FusedProblem::center_for(const Eigen::Ref<const RowMatrix>& theta_hat, const RowMatrix& v) const {
    Vector rhs = Vector::Zero(p_);
    for (int k = 0; k < K_; ++k) {
        rhs.noalias() += A_[k] * (theta_hat.row(k) - v.row(k)).transpose();
    }
    return A_sum_.solve(rhs);
}

Vector FusedProblem::site_prox(int k, const Vector& z, double tau) const {
    // In the eigenbasis of A: x_i = b_i rho / (l_i rho + tau) with b = Lambda Q'z, where rho = ||x||
    // solves sum_i (b_i / (l_i rho + tau))^2 = 1. The root lies in (0, ||z||].
    const Vector c = Q_[k].transpose() * z;
    const Vector& l = evals_[k];
    const Vector b = l.cwiseProduct(c);
    const double bnorm = b.norm();
    if (bnorm <= tau) return Vector::Zero(p_);
    if (tau <= 0.0) return z;
    auto secular = [&](double rho, double& deriv) {
        // psi(rho) = s^-1/2 - 1 with s = sum b_i^2 / (l_i rho + tau)^2; increasing in rho.
        double s = 0.0, ds = 0.0;
        for (int i = 0; i < p_; ++i) {
            const double den = l(i) * rho + tau;
            const double q = b(i) / den;
            s += q * q;
            ds += -2.0 * q * q * l(i) / den;
        }
        const double inv = 1.0 / std::sqrt(s);
        deriv = -0.5 * inv * inv * inv * ds;
        return inv - 1.0;
    };
    double lo = 0.0;
    double hi = c.norm();
    double rho = 0.0;
    for (int it = 0; it < 100; ++it) {
        double deriv = 0.0;
        const double f = secular(rho, deriv);
        if (f < 0.0) lo = rho; else hi = rho;
        if (std::abs(f) <= 1e-15 || hi - lo <= 1e-15 * hi) break;
        double next = rho - f / deriv;
        if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);  // safeguard: bisect
        rho = next;
    }
    Vector x(p_);
    for (int i = 0; i < p_; ++i) x(i) = b(i) * rho / (l(i) * rho + tau);
    return Q_[k] * x;
}

double FusedProblem::kkt_residual(const Eigen::Ref<const RowMatrix>& theta_hat, const RowMatrix& theta,
                                  const Vector& center, double lambda, Penalty penalty) const {
    double worst = 0.0;
    Vector gsum = Vector::Zero(p_);
    for (int k = 0; k < K_; ++k) {
        const Vector g = A_[k] * (theta.row(k) - theta_hat.row(k)).transpose();
        const Vector v = theta.row(k).transpose() - center;
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
    return worst / residual_scale(theta_hat);
}

FusedResult FusedProblem::solve(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda,
                                const FusedOptions& opt, const RowMatrix* warm) const {
    if (!positive_definite_) {
        FusedResult bad;
        bad.status = SolveStatus::NotPositiveDefinite;
        return bad;
    }
    return opt.penalty == Penalty::L2Squared ? solve_l2sq(theta_hat, lambda)
                                             : solve_l2(theta_hat, lambda, opt, warm);
}

FusedResult FusedProblem::solve_l2(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda,
                                   const FusedOptions& opt, const RowMatrix* warm) const {
    // Accelerated proximal gradient on v_k = theta_k - u, with u eliminated in closed form. The
    // metric is blockdiag(A_k), which majorizes the reduced Hessian (A_k minus a rank-p term), so
    // a unit step is safe and each block's proximal map is an exact single-site problem.
    FusedResult res;
    RowMatrix v = (warm && warm->rows() == K_ && warm->cols() == p_) ? *warm : RowMatrix::Zero(K_, p_);
    RowMatrix y = v;
    RowMatrix v_new(K_, p_);
    double t = 1.0;
    auto objective = [&](const RowMatrix& vv, const Vector& u) {
        double f = 0.0;
        for (int k = 0; k < K_; ++k) {
            const Vector r = (vv.row(k) + u.transpose() - theta_hat.row(k)).transpose();
            f += 0.5 * r.dot(A_[k] * r) + lambda * w_(k) * vv.row(k).norm();
        }
        return f;
    };
    Vector u = center_for(theta_hat, v);
    double f_old = objective(v, u);
    res.status = SolveStatus::MaxIterations;
    int it = 0;
    for (; it < opt.max_iter; ++it) {
        const Vector uy = center_for(theta_hat, y);
#pragma omp parallel for num_threads(opt.n_threads) if (opt.n_threads > 1 && K_ >= 64) schedule(static)
        for (int k = 0; k < K_; ++k) {
            const Vector z = theta_hat.row(k).transpose() - uy;
            v_new.row(k) = site_prox(k, z, lambda * w_(k)).transpose();
        }
        u = center_for(theta_hat, v_new);
        const double f_new = objective(v_new, u);
        if (!std::isfinite(f_new) || !all_finite(v_new)) {
            res.status = SolveStatus::NumericalFailure;
            break;
        }
        RowMatrix theta = v_new.rowwise() + u.transpose();
        const double kkt = kkt_residual(theta_hat, theta, u, lambda, Penalty::L2);
        if (kkt <= opt.tol) {
            v = v_new;
            res.status = SolveStatus::Converged;
            ++it;
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
    u = center_for(theta_hat, v);
    res.theta = v.rowwise() + u.transpose();
    res.center = u;
    res.fused.assign(K_, 0);
    for (int k = 0; k < K_; ++k) res.fused[k] = v.row(k).squaredNorm() == 0.0 ? 1 : 0;
    res.iterations = it;
    res.kkt = kkt_residual(theta_hat, res.theta, u, lambda, Penalty::L2);
    return res;
}

FusedResult FusedProblem::solve_l2sq(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda) const {
    // Closed form: theta_k = C_k (A_k that_k + lambda w_k u), C_k = (A_k + lambda w_k I)^-1, and
    // u solves (sum_k w_k C_k A_k) u = sum_k w_k C_k A_k that_k.
    FusedResult res;
    Eigen::MatrixXd M = Eigen::MatrixXd::Zero(p_, p_);
    Vector rhs = Vector::Zero(p_);
    std::vector<Eigen::MatrixXd> CA(K_);
    for (int k = 0; k < K_; ++k) {
        const Vector shrink = evals_[k].array() / (evals_[k].array() + lambda * w_(k));
        CA[k] = Q_[k] * shrink.asDiagonal() * Q_[k].transpose();
        M.noalias() += w_(k) * CA[k];
        rhs.noalias() += w_(k) * (CA[k] * theta_hat.row(k).transpose());
    }
    const Vector u = M.ldlt().solve(rhs);
    res.theta.resize(K_, p_);
    for (int k = 0; k < K_; ++k) {
        const Vector tk = theta_hat.row(k).transpose();
        res.theta.row(k) = (CA[k] * tk + (Eigen::MatrixXd::Identity(p_, p_) - CA[k]) * u).transpose();
    }
    res.center = u;
    res.fused.assign(K_, 0);
    res.iterations = 1;
    res.kkt = kkt_residual(theta_hat, res.theta, u, lambda, Penalty::L2Squared);
    res.status = (res.theta.allFinite() && u.allFinite()) ? SolveStatus::Converged
                                                          : SolveStatus::NumericalFailure;
    return res;
}

FusedPathResult fused_path(const FusedProblem& problem, const Eigen::Ref<const RowMatrix>& theta_hat,
                           const std::vector<double>& lambdas, const FusedOptions& opt) {
    const int L = static_cast<int>(lambdas.size());
    std::vector<int> order(L);
    std::iota(order.begin(), order.end(), 0);
    // Large lambdas first: the fully fused solution is the natural start for the whole path.
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return lambdas[a] > lambdas[b]; });
    FusedPathResult out;
    out.fits.resize(L);
    RowMatrix warm;
    bool have_warm = false;
    for (int idx : order) {
        FusedResult fit = problem.solve(theta_hat, lambdas[idx], opt, have_warm ? &warm : nullptr);
        if (fit.theta.rows() == problem.n_sites()) {
            warm = fit.theta.rowwise() - fit.center.transpose();
            have_warm = true;
        }
        out.fits[idx] = std::move(fit);
    }
    return out;
}

std::vector<FusedResult> fused_solve_batch(const FusedProblem& problem,
                                           const Eigen::Ref<const RowMatrix>& theta_hats, double lambda,
                                           const FusedOptions& opt) {
    const int K = problem.n_sites();
    const int B = K > 0 ? static_cast<int>(theta_hats.rows()) / K : 0;
    std::vector<FusedResult> out(B);
    FusedOptions inner = opt;
    inner.n_threads = 1;  // parallelism is across draws
#pragma omp parallel for num_threads(opt.n_threads) schedule(dynamic)
    for (int b = 0; b < B; ++b) {
        out[b] = problem.solve(theta_hats.middleRows(static_cast<Eigen::Index>(b) * K, K), lambda, inner);
    }
    return out;
}

}  // namespace hetmtl
