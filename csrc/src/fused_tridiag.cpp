// Site algebra of the fused solver in each site's Householder tridiagonal basis, A_k = Q T Q'
// (dense mode, p > 4). A site's proximal map and curvature are functions of A_k alone, and every
// one of them can be evaluated through (alpha T + beta I)^-1, whose LDL' factors cost O(p). The
// tridiagonal form is the first stage of an eigendecomposition; skipping the second stage (QR
// sweeps that accumulate rotations into the eigenvectors) saves most of its cost.
#include "fused_problem.hpp"
#include "fused_secular.hpp"

#include <algorithm>
#include <cmath>

namespace hetmtl {

namespace {

// LDL' factors of alpha T + beta I (T symmetric tridiagonal, diagonal a, off-diagonal b): the
// reciprocals of D's diagonal in `inv_d`, and L unit lower bidiagonal with subdiagonal l. Positive
// definite whenever T is, alpha >= 0 and beta > 0, where the recurrence needs no pivoting. Storing
// reciprocals keeps the solves free of divisions.
void tridiag_factor(const Vector& a, const Vector& b, double alpha, double beta, Vector& inv_d, Vector& l) {
    const Eigen::Index p = a.size();
    double d = alpha * a(0) + beta;
    inv_d(0) = 1.0 / d;
    for (Eigen::Index i = 1; i < p; ++i) {
        const double off = alpha * b(i - 1);
        l(i - 1) = off * inv_d(i - 1);
        d = alpha * a(i) + beta - l(i - 1) * off;
        inv_d(i) = 1.0 / d;
    }
}

// x := (L D L')^-1 x
void tridiag_solve(const Vector& inv_d, const Vector& l, Vector& x) {
    const Eigen::Index p = x.size();
    for (Eigen::Index i = 1; i < p; ++i) x(i) -= l(i - 1) * x(i - 1);
    x.array() *= inv_d.array();
    for (Eigen::Index i = p - 2; i >= 0; --i) x(i) -= l(i) * x(i + 1);
}

// out = T x
void tridiag_apply(const Vector& a, const Vector& b, const Vector& x, Vector& out) {
    const Eigen::Index p = x.size();
    out = a.cwiseProduct(x);
    if (p > 1) {
        out.head(p - 1) += b.cwiseProduct(x.tail(p - 1));
        out.tail(p - 1) += b.cwiseProduct(x.head(p - 1));
    }
}

// X := X L^-T for the unit lower bidiagonal L of a factorization, then X := X D^-1/2: afterwards
// X X' = X_in (L D L')^-1 X_in'.
void bidiag_right_solve_scaled(const Vector& inv_d, const Vector& l, Eigen::MatrixXd& X) {
    for (Eigen::Index j = 1; j < X.cols(); ++j) X.col(j) -= l(j - 1) * X.col(j - 1);
    X *= inv_d.cwiseSqrt().asDiagonal();
}

}  // namespace

FusedProblem::Impl::SiteTridiag::SiteTridiag(const Eigen::Ref<const Eigen::MatrixXd>& A) {
    Eigen::Tridiagonalization<Eigen::MatrixXd> tri(A);
    Q = tri.matrixQ();
    diag = tri.diagonal();
    sub = tri.subDiagonal();
    const Eigen::Index p = diag.size();
    // Gershgorin: an upper bound on the largest eigenvalue of T (and of A).
    upper = 0.0;
    for (Eigen::Index i = 0; i < p; ++i) {
        const double left = i > 0 ? std::abs(sub(i - 1)) : 0.0;
        const double right = i + 1 < p ? std::abs(sub(i)) : 0.0;
        upper = std::max(upper, diag(i) + left + right);
    }
}

const FusedProblem::Impl::SiteTridiag& FusedProblem::Impl::tridiag(int k) const {
    if (!tri_ready_[k].load(std::memory_order_acquire)) {
        std::call_once(tri_once_[k], [this, k] {
            tri_[k] = SiteTridiag(A(k));
            tri_ready_[k].store(true, std::memory_order_release);
        });
    }
    return tri_[k];
}

void FusedProblem::Impl::site_prox_tridiag(int k, const Vector& z, double tau, double bnorm, Workspace& ws,
                                     double rho_hint) const {
    // With c = Q'z and beta = T c (so ||beta|| = ||A z||), the offset is x = rho Q w(rho) with
    // w = (rho T + tau I)^-1 beta, where rho = ||x|| solves s(rho) = ||w(rho)||^2 = 1; s decreases
    // in rho, and ds/drho = -2 w' T (rho T + tau I)^-1 w.
    const SiteTridiag& t = tridiag(k);
    Vector& c = ws.c;
    c.noalias() = t.Q.transpose() * z;
    Vector& beta = ws.b;
    tridiag_apply(t.diag, t.sub, c, beta);
    Vector &inv_d = ws.inv_d, &l = ws.l, &w = ws.r, &q = ws.Ar, &Tw = ws.Bs;
    auto secular = [&](double rho, double& deriv) {
        tridiag_factor(t.diag, t.sub, rho, tau, inv_d, l);
        w = beta;
        tridiag_solve(inv_d, l, w);
        q = w;
        tridiag_solve(inv_d, l, q);
        tridiag_apply(t.diag, t.sub, w, Tw);
        const double s = w.squaredNorm();
        const double ds = -2.0 * q.dot(Tw);
        // psi = s^-1/2 - 1, increasing in rho, as in the eigenbasis version.
        const double inv = 1.0 / std::sqrt(s);
        deriv = -0.5 * inv * inv * inv * ds;
        return inv - 1.0;
    };
    // Bracket: rho >= (||A z|| - tau) / l_max for any upper bound l_max of the eigenvalues, and
    // rho <= ||z||.
    double lo = std::max(0.0, (bnorm - tau) / t.upper);
    double hi = std::max(c.norm(), lo);
    const double rho = secular_root(secular, lo, hi, rho_hint);
    tridiag_factor(t.diag, t.sub, rho, tau, inv_d, l);
    w = beta;
    tridiag_solve(inv_d, l, w);
    w *= rho;
    ws.x.noalias() = t.Q * w;
}

void FusedProblem::Impl::add_site_hessian_tridiag(int k, const Vector& v, double tau, Workspace& ws,
                                            Eigen::Map<Eigen::MatrixXd>& H) const {
    // The curvature B^-1 - (B^-1 s)(B^-1 s)' / s'B^-1 s of add_site_hessian, with s = v/||v|| and
    // B^-1 = A (I + cA)^-1, c = ||v|| / tau, written through (I + cT)^-1 in one of two forms
    // that stay accurate relative to ||B^-1||:
    //   c l_max >= 1:  B^-1 = (I - Q (I + cT)^-1 Q') / c
    //   c l_max <  1:  B^-1 = A - c (QT) (I + cT)^-1 (QT)'
    const SiteTridiag& t = tridiag(k);
    const double vn = v.norm();
    const double c = vn / tau;
    Vector &inv_d = ws.inv_d, &l = ws.l;
    tridiag_factor(t.diag, t.sub, c, 1.0, inv_d, l);
    Vector& s = ws.z;
    s = v / vn;
    Vector& st = ws.c;
    st.noalias() = t.Q.transpose() * s;
    Eigen::MatrixXd& X = ws.Y;
    Vector& Bs = ws.Bs;
    if (c * t.upper >= 1.0) {
        X = t.Q;
        bidiag_right_solve_scaled(inv_d, l, X);
        H.diagonal().array() += 1.0 / c;
        H.selfadjointView<Eigen::Lower>().rankUpdate(X, -1.0 / c);
        tridiag_solve(inv_d, l, st);
        Bs.noalias() = t.Q * st;
        Bs = (s - Bs) / c;
    } else {
        // X = Q T, column by column from T's three diagonals.
        const Eigen::Index p = p_;
        X = t.Q * t.diag.asDiagonal();
        for (Eigen::Index j = 0; j + 1 < p; ++j) {
            X.col(j) += t.sub(j) * t.Q.col(j + 1);
            X.col(j + 1) += t.sub(j) * t.Q.col(j);
        }
        bidiag_right_solve_scaled(inv_d, l, X);
        H.triangularView<Eigen::Lower>() += A(k);
        H.selfadjointView<Eigen::Lower>().rankUpdate(X, -c);
        Vector& y = ws.r;
        tridiag_apply(t.diag, t.sub, st, y);
        tridiag_solve(inv_d, l, y);
        tridiag_apply(t.diag, t.sub, y, ws.Ar);
        Bs.noalias() = A(k) * s;
        Bs.noalias() -= c * (t.Q * ws.Ar);
    }
    const double sBs = std::max(s.dot(Bs), kFusedTiny);
    H.selfadjointView<Eigen::Lower>().rankUpdate(Bs, -1.0 / sBs);
}

}  // namespace hetmtl
