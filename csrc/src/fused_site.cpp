// Site-level algebra of the fused solver: each site's proximal map (fused test, then a secular
// equation in the eigenbasis of A_k), its curvature, and the center objective that sums them.
// Small dimensions (p <= 4) are unrolled at compile time.
#include "fused_problem.hpp"
#include "fused_dim.hpp"
#include "fused_secular.hpp"

#include <algorithm>
#include <cmath>

namespace hetmtl {

Vector FusedProblem::Impl::apply_A(int k, const Vector& x) const {
    Vector out(p_);
    apply_A(k, x, out);
    return out;
}

void FusedProblem::Impl::apply_A(int k, const Vector& x, Vector& out) const {
    with_fixed_dim(p_, [&](auto P) { apply_A_p<decltype(P)::value>(k, x, out); });
}

FusedProblem::Impl::Workspace::Workspace(int p)
    : z(p), c(p), b(p), x(p), r(p), Ar(p), Bs(p), inv_d(p), l(std::max(p - 1, 1)), Y(p, p) {}

Eigen::MatrixXd FusedProblem::Impl::eigen_matrix(int k, const Vector& d) const {
    if (diagonal_) return d.asDiagonal();
    ensure_eigen(k);
    return eigenvectors(k) * d.asDiagonal() * eigenvectors(k).transpose();
}

namespace {

// Fixed-size views of dynamic storage: for the common small dimensions the per-site algebra is
// unrolled at compile time instead of going through Eigen's general dynamic kernels.
template <int P>
using VecP = Eigen::Matrix<double, P, 1>;
template <int P>
using MatP = Eigen::Matrix<double, P, P>;

template <int P>
Eigen::Map<VecP<P>> view(Vector& x) {
    return Eigen::Map<VecP<P>>(x.data(), x.size());
}
template <int P>
Eigen::Map<const VecP<P>> view(const Vector& x) {
    return Eigen::Map<const VecP<P>>(x.data(), x.size());
}
template <int P>
Eigen::Map<const MatP<P>> view(const Eigen::MatrixXd& m) {
    return Eigen::Map<const MatP<P>>(m.data(), m.rows(), m.cols());
}
template <int P>
Eigen::Map<const MatP<P>> view(const Eigen::Map<const Eigen::MatrixXd>& m) {
    return Eigen::Map<const MatP<P>>(m.data(), m.rows(), m.cols());
}
template <int P>
Eigen::Map<const VecP<P>> view(const Eigen::Map<const Vector>& x) {
    return Eigen::Map<const VecP<P>>(x.data(), x.size());
}

// Eigendecomposition of a symmetric matrix; fixed-size for small p, where the dynamic solver's
// set-up costs more than its sweeps.
template <int P>
void eigen_decompose(const Eigen::Map<const Eigen::MatrixXd>& A, double* Q, double* evals) {
    const Eigen::Index p = A.rows();
    Eigen::SelfAdjointEigenSolver<Eigen::Matrix<double, P, P>> eig(A);
    Eigen::Map<Eigen::MatrixXd>(Q, p, p) = eig.eigenvectors();
    Eigen::Map<Vector>(evals, p) = eig.eigenvalues();
}

}  // namespace

void FusedProblem::Impl::ensure_eigen(int k) const {
    if (diagonal_ || eig_ready_[k].load(std::memory_order_acquire)) return;
    std::call_once(eig_once_[k], [this, k] {
        with_fixed_dim(p_, [&](auto P) {
            eigen_decompose<decltype(P)::value>(A(k), Q_.col(k).data(), evals_.col(k).data());
        });
        eig_ready_[k].store(true, std::memory_order_release);
    });
}

template <int P>
void FusedProblem::Impl::apply_A_p(int k, const Vector& x, Vector& out) const {
    if (diagonal_) {
        view<P>(out) = view<P>(eigenvalues(k)).cwiseProduct(view<P>(x));
    } else {
        view<P>(out).noalias() = view<P>(A(k)) * view<P>(x);
    }
}

void FusedProblem::Impl::site_products(const Eigen::Ref<const RowMatrix>& X, Vector* sum, double* largest) const {
    with_fixed_dim(p_, [&](auto P) { site_products_p<decltype(P)::value>(X, sum, largest); });
}

template <int P>
void FusedProblem::Impl::site_products_p(const Eigen::Ref<const RowMatrix>& X, Vector* sum, double* largest) const {
    VecP<P> acc = VecP<P>::Zero(p_), y(p_);
    double top = 0.0;
    for (int k = 0; k < K_; ++k) {
        const Eigen::Map<const VecP<P>> x(X.row(k).data(), p_);
        if (diagonal_) {
            y = view<P>(eigenvalues(k)).cwiseProduct(x);
        } else {
            y.noalias() = view<P>(A(k)) * x;
        }
        if (sum) acc += y;
        if (largest) top = std::max(top, y.norm());
    }
    if (sum) *sum = acc;
    if (largest) *largest = top;
}

bool FusedProblem::Impl::site_prox(int k, const Vector& z, double tau, Workspace& ws, const double* hint) const {
    return with_fixed_dim(p_, [&](auto P) { return site_prox_p<decltype(P)::value>(k, z, tau, ws, hint); });
}

template <int P>
bool FusedProblem::Impl::site_prox_p(int k, const Vector& z, double tau, Workspace& ws, const double* hint) const {
    // Fused exactly when ||A z|| <= tau, which needs no eigendecomposition. Sites on the boundary
    // (to rounding) snap to the center: an offset of relative size 1e-11 could not be told apart
    // from u in theta_k = u + v_k anyway.
    apply_A_p<P>(k, z, ws.b);
    // Squared norms: most sites of a typical problem are fused, and their test needs no root.
    const double bound = tau * (1.0 + 1e-11);
    const double bsq = view<P>(ws.b).squaredNorm();
    if (bsq <= bound * bound) {
        view<P>(ws.x).setZero();
        return true;
    }
    const double bnorm = std::sqrt(bsq);
    const double rho_hint = hint ? Eigen::Map<const VecP<P>>(hint, p_).norm() : 0.0;
    if (tau <= 0.0) {
        view<P>(ws.x) = view<P>(z);
        return false;
    }
    if constexpr (P == Eigen::Dynamic) {
        if (use_tridiag(k)) {
            site_prox_tridiag(k, z, tau, bnorm, ws, rho_hint);
            return false;
        }
    }
    // In the eigenbasis of A: x_i = b_i rho / (l_i rho + tau) with b = Lambda Q'z, where rho = ||x||
    // solves sum_i (b_i / (l_i rho + tau))^2 = 1. The root lies in (0, ||z||].
    ensure_eigen(k);
    const auto l = view<P>(eigenvalues(k));
    auto c = view<P>(ws.c);
    if (diagonal_) {
        c = view<P>(z);
    } else {
        c.noalias() = view<P>(eigenvectors(k)).transpose() * view<P>(z);
    }
    auto b = view<P>(ws.b);
    b = l.cwiseProduct(c);
    const int p = P == Eigen::Dynamic ? p_ : P;  // a constant the loops unroll on, when fixed
    auto secular = [&](double rho, double& deriv) {
        // psi(rho) = s^-1/2 - 1 with s = sum b_i^2 / (l_i rho + tau)^2; increasing in rho.
        double s = 0.0, ds = 0.0;
        for (int i = 0; i < p; ++i) {
            const double inv_den = 1.0 / (l(i) * rho + tau);  // one division per coordinate
            const double q = b(i) * inv_den;
            s += q * q;
            ds -= 2.0 * q * q * l(i) * inv_den;
        }
        const double inv = 1.0 / std::sqrt(s);
        deriv = -0.5 * inv * inv * inv * ds;
        return inv - 1.0;
    };
    // Bracket: with the eigenvalues between l_min and l_max, (||b|| - tau) / l_max <= rho <=
    // (||b|| - tau) / l_min; Newton from the lower end then needs few steps.
    const double excess = bnorm - tau;
    double lo = std::max(0.0, excess / l.maxCoeff());
    double hi = c.norm();
    if (l.minCoeff() > 0.0) hi = std::min(hi, excess / l.minCoeff());
    hi = std::max(hi, lo);
    // A nearby solution's ||x|| (a neighbouring center or lambda) is a closer start.
    const double rho = secular_root(secular, lo, hi, rho_hint);
    for (int i = 0; i < p; ++i) c(i) = b(i) * rho / (l(i) * rho + tau);
    if (diagonal_) {
        ws.x = ws.c;
    } else {
        view<P>(ws.x).noalias() = view<P>(eigenvectors(k)) * c;
    }
    return false;
}

void FusedProblem::Impl::center_objective(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda, const Vector& u,
                                    CenterEval& out, const RowMatrix* hint, int n_threads) const {
    with_fixed_dim(p_, [&](auto P) {
        center_objective_p<decltype(P)::value>(theta_hat, lambda, u, out, hint, n_threads);
    });
}

template <int P>
void FusedProblem::Impl::center_objective_p(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda, const Vector& u,
                                      CenterEval& out, const RowMatrix* hint, int n_threads) const {
    // Per-site terms are stored and added in site order afterwards, so the result does not depend
    // on the number of threads.
    Vector f_site(K_);
    const auto uu = view<P>(u);
#pragma omp parallel num_threads(n_threads) if (n_threads > 1 && K_ >= 64)
    {
        Workspace ws(p_);
        auto z = view<P>(ws.z);
        auto x = view<P>(ws.x);
        auto r = view<P>(ws.r);
        auto Ar = view<P>(ws.Ar);
#pragma omp for schedule(static)
        for (int k = 0; k < K_; ++k) {
            const double tau = lambda * w_(k);
            z = Eigen::Map<const VecP<P>>(theta_hat.row(k).data(), p_) - uu;
            const bool fused = site_prox_p<P>(k, ws.z, tau, ws, hint ? hint->row(k).data() : nullptr);
            if (fused) {
                // x = 0: the fused test left A z in ws.b, so g_k = -A z without another product.
                Ar = -view<P>(ws.b);
                f_site(k) = -0.5 * z.dot(Ar);
            } else {
                r = x - z;
                apply_A_p<P>(k, ws.r, ws.Ar);
                f_site(k) = 0.5 * r.dot(Ar) + tau * x.norm();
            }
            Eigen::Map<VecP<P>>(out.g_site.row(k).data(), p_) = Ar;
            Eigen::Map<VecP<P>>(out.v.row(k).data(), p_) = x;
        }
    }
    out.grad = out.g_site.colwise().sum().transpose();
    out.f = f_site.sum();
}

void FusedProblem::Impl::center_hessian(double lambda, const RowMatrix& v, Eigen::MatrixXd& H, int n_threads) const {
    // Fused sites (offset exactly zero) contribute A_k; unfused ones a rank-updated lower triangle
    // in their own buffer, added in site order (thread-count independent).
    // Unfused sites get a buffer row each (slot[k]); fused ones add A_k directly.
    std::vector<int> slot(K_, -1);
    int n_unfused = 0;
    for (int k = 0; k < K_; ++k) {
        if (v.row(k).squaredNorm() != 0.0) slot[k] = n_unfused++;
    }
    RowMatrix h_site(n_unfused, p_ * p_);
#pragma omp parallel num_threads(n_threads) if (n_threads > 1 && K_ >= 64)
    {
        Workspace ws(p_);
#pragma omp for schedule(static)
        for (int k = 0; k < K_; ++k) {
            if (slot[k] < 0) continue;
            ws.x = v.row(k).transpose();
            const double tau = lambda * w_(k);
            double* out = h_site.row(slot[k]).data();
            with_fixed_dim(p_, [&](auto P) {
                if constexpr (decltype(P)::value != Eigen::Dynamic) {
                    site_hessian_p<decltype(P)::value>(k, ws.x, tau, out);
                } else {
                    Eigen::Map<Eigen::MatrixXd> Hk(out, p_, p_);
                    Hk.setZero();
                    if (use_tridiag(k)) {
                        add_site_hessian_tridiag(k, ws.x, tau, ws, Hk);
                    } else {
                        add_site_hessian(k, ws.x, tau, ws, Hk);
                    }
                }
            });
        }
    }
    // Fused sites add A_k: when they are the majority, start from sum_k A_k and take the unfused
    // sites' A_k back out instead (O(p^2) per unfused site rather than per fused one).
    const bool from_total = K_ - n_unfused > n_unfused;
    if (!from_total) {
        H.setZero(p_, p_);
    } else if (diagonal_) {
        H = A_sum_diag_.asDiagonal();
    } else {
        H = A_sum_full_;
    }
    for (int k = 0; k < K_; ++k) {
        const bool unfused = slot[k] >= 0;
        if (unfused) H += Eigen::Map<const Eigen::MatrixXd>(h_site.row(slot[k]).data(), p_, p_);
        if (unfused != from_total) continue;
        const double sign = from_total ? -1.0 : 1.0;
        if (diagonal_) {
            H.diagonal() += sign * eigenvalues(k);
        } else {
            H += sign * A(k);
        }
    }
    // The rank updates fill lower triangles only: mirror them.
    H.triangularView<Eigen::StrictlyUpper>() = H.transpose();
}

template <int P>
void FusedProblem::Impl::site_hessian_p(int k, const Vector& v, double tau, double* out) const {
    // add_site_hessian for a small fixed p: the whole matrix, unrolled at compile time.
    ensure_eigen(k);  // done by the site's prox already; a check, for other callers
    const auto vv = view<P>(v);
    const double vn = vv.norm();
    const double c = vn / tau;
    const auto l = view<P>(eigenvalues(k));
    const VecP<P> d = l.array() / (1.0 + c * l.array());
    Eigen::Map<MatP<P>> Hk(out);
    VecP<P> Bs;
    if (diagonal_) {
        Hk.setZero();
        Hk.diagonal() = d;
        Bs = d.cwiseProduct(vv) / vn;
    } else {
        const auto Q = view<P>(eigenvectors(k));
        Hk.noalias() = Q * d.asDiagonal() * Q.transpose();
        const VecP<P> c_v = d.cwiseProduct(Q.transpose() * vv) / vn;
        Bs.noalias() = Q * c_v;
    }
    const double sBs = std::max(vv.dot(Bs) / vn, kFusedTiny);
    Hk.noalias() -= (Bs / sBs) * Bs.transpose();
}

void FusedProblem::Impl::add_site_hessian(int k, const Vector& v, double tau, Workspace& ws,
                                    Eigen::Map<Eigen::MatrixXd>& H) const {
    ensure_eigen(k);  // done by the site's prox already; a check, for other callers
    // Hessian of the infimal convolution of (1/2) x'A x and tau ||x|| at an unfused point:
    // B^-1 restricted to the complement of s = v/||v||, with B = A^-1 + (||v||/tau) I. B^-1 has A's
    // eigenvectors and eigenvalues d = l / (1 + c l), c = ||v|| / tau.
    const double vn = v.norm();
    const double c = vn / tau;
    const VectorView l = eigenvalues(k);
    Vector& d = ws.Ar;  // free at this point
    d = l.array() / (1.0 + c * l.array());
    if (diagonal_) {
        H.diagonal() += d;
        ws.Bs = d.cwiseProduct(v) / vn;
    } else {
        ws.Y.noalias() = eigenvectors(k) * d.cwiseSqrt().asDiagonal();
        H.selfadjointView<Eigen::Lower>().rankUpdate(ws.Y);  // + Q diag(d) Q'
        ws.c.noalias() = eigenvectors(k).transpose() * v;
        ws.c = d.cwiseProduct(ws.c) / vn;
        ws.Bs.noalias() = eigenvectors(k) * ws.c;
    }
    const double sBs = std::max(v.dot(ws.Bs) / vn, kFusedTiny);
    H.selfadjointView<Eigen::Lower>().rankUpdate(ws.Bs, -1.0 / sBs);
}

}  // namespace hetmtl
