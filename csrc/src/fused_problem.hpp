// The private side of FusedProblem: its factorized data and the solver's algorithms. Only the
// solver's own translation units include this header; the public interface is hetmtl/fused.hpp.
#pragma once

#include <Eigen/Dense>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "hetmtl/fused.hpp"

namespace hetmtl {

// Floor for divisors and scales of the solver (shared by its translation units).
inline constexpr double kFusedTiny = 1e-300;

// Whether the caller asked the solve to stop (its callback is polled once an iteration).
inline bool stop_requested(const FusedOptions& opt) { return opt.interrupted && opt.interrupted(); }

// What one solve hands the next along a lambda path (all in the path's centered coordinates):
// the site offsets v_k = theta_k - u, the last curvature of the center problem (reused for the
// first Newton step at the next lambda) and the last two (lambda, center) pairs, from which the
// next center is extrapolated in log(lambda).
struct WarmStart {
    RowMatrix offsets;        // K x p; empty = none
    Eigen::MatrixXd hessian;  // p x p; empty = none
    Vector center, prev_center;
    double lambda = 0.0, prev_lambda = 0.0;  // 0 = none
};


class FusedProblem::Impl {
public:
    Impl(const Eigen::Ref<const RowMatrix>& W, const Eigen::Ref<const Vector>& n,
         const Eigen::Ref<const Vector>& weights);
    static Impl diagonal(const Eigen::Ref<const RowMatrix>& D, const Eigen::Ref<const Vector>& n,
                         const Eigen::Ref<const Vector>& weights, bool allow_semidefinite);

    // The operations FusedProblem forwards to (documented in hetmtl/fused.hpp).
    int n_sites() const { return K_; }
    int dim() const { return p_; }
    bool valid_input() const { return valid_input_; }
    bool positive_definite() const { return positive_definite_; }
    int bad_site() const { return bad_site_; }
    double bad_eigenvalue() const { return bad_eigenvalue_; }
    int asymmetric_site() const { return asymmetric_site_; }
    // Whether theta_hat has one row per site and one column per coordinate.
    bool matches(const Eigen::Ref<const RowMatrix>& theta_hat) const {
        return theta_hat.rows() == K_ && theta_hat.cols() == p_;
    }
    // Converged when a solve may start; else the status every fit of it reports.
    SolveStatus check(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda, const FusedOptions& opt) const;
    Vector pooled(const Eigen::Ref<const RowMatrix>& theta_hat) const;
    double lambda_max(const Eigen::Ref<const RowMatrix>& theta_hat) const;
    FusedResult solve(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda, const FusedOptions& opt) const;
    FusedPathResult path(const Eigen::Ref<const RowMatrix>& theta_hat, const std::vector<double>& lambdas,
                         const FusedOptions& opt) const;
    void ensure_all_eigen() const;
    double kkt_residual(const Eigen::Ref<const RowMatrix>& theta_hat, const RowMatrix& theta,
                        const Vector& center, double lambda, Penalty penalty) const;

private:
    Impl() = default;
    // F(u) at one center: the site offsets v_k = prox_k(that_k - u), each site's gradient
    // g_k = A_k (theta_k - that_k) (the stationarity and KKT checks read them), their sum and F.
    struct CenterEval {
        RowMatrix v, g_site;
        Vector grad;
        double f = 0.0;
        CenterEval(int K, int p) : v(K, p), g_site(K, p), grad(p) {}
        void swap(CenterEval& other) {
            v.swap(other.v);
            g_site.swap(other.g_site);
            grad.swap(other.grad);
            std::swap(f, other.f);
        }
    };
    // One solve on data centered at its pooled estimate; `scale` = residual_scale(centered).
    FusedResult solve_centered(const Eigen::Ref<const RowMatrix>& centered, double scale, double lambda,
                               const FusedOptions& opt, WarmStart* warm) const;
    FusedResult solve_l2(const Eigen::Ref<const RowMatrix>& theta_hat, double scale, double lambda,
                         const FusedOptions& opt, WarmStart* warm) const;
    // Damped Newton on the center: F(u) = sum_k min_v site loss is smooth and convex in u.
    // Returns false (leaving `u` at its best point) when the line search stalls. `why` is set to
    // Stagnated when the iterates stop moving at rounding level before the tolerance, or to
    // Interrupted when the caller asked to stop (both return true: the point is kept). `H` holds the
    // curvature for the first step when it has the right size (else it is computed) and the last
    // curvature computed on return. `e` holds F at `u` on return; on entry, `e.v` may hold offsets
    // near the solution (`have_hint`) that start each site's one-dimensional root search.
    bool newton_center(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda, double scale,
                       const FusedOptions& opt, Vector& u, int& iterations, Eigen::MatrixXd& H,
                       CenterEval& e, bool have_hint, SolveStatus& why) const;
    // Scratch vectors of one thread, so the per-site loops allocate nothing.
    struct Workspace {
        explicit Workspace(int p);
        Vector z, c, b, x, r, Ar, Bs;
        Vector inv_d, l;  // LDL' factors (D inverted) of a shifted tridiagonal (tridiagonal mode)
        Eigen::MatrixXd Y;
    };
    // A_k = Q T Q' with T symmetric tridiagonal (diagonal `diag`, off-diagonal `sub`); `upper`
    // bounds the eigenvalues from above (Gershgorin).
    struct SiteTridiag {
        SiteTridiag() = default;
        explicit SiteTridiag(const Eigen::Ref<const Eigen::MatrixXd>& A);
        Eigen::MatrixXd Q;
        Vector diag, sub;
        double upper = 0.0;
    };
    // Whether site k's proxes and curvatures go through its tridiagonal form: in tridiagonal mode,
    // unless its eigendecomposition is at hand (cheaper per use; paths and batches compute it).
    // The two forms agree to rounding, so a solve on a problem that has already run a path can
    // differ from one on a fresh problem in the last digits.
    bool use_tridiag(int k) const {
        return tridiagonal_ && !eig_ready_[k].load(std::memory_order_acquire);
    }
    // Site k's tridiagonal form, computed on first use (thread-safe).
    const SiteTridiag& tridiag(int k) const;
    // site_prox in the tridiagonal basis, for an unfused site (||A z|| = bnorm > tau > 0).
    void site_prox_tridiag(int k, const Vector& z, double tau, double bnorm, Workspace& ws, double rho_hint) const;
    // add_site_hessian in the tridiagonal basis.
    void add_site_hessian_tridiag(int k, const Vector& v, double tau, Workspace& ws,
                                  Eigen::Map<Eigen::MatrixXd>& H) const;
    // Evaluate F at u into `out`; `hint` (K x p offsets, or null) starts the sites' root searches.
    void center_objective(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda, const Vector& u,
                          CenterEval& out, const RowMatrix* hint, int n_threads) const;
    template <int P>
    void center_objective_p(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda, const Vector& u,
                            CenterEval& out, const RowMatrix* hint, int n_threads) const;
    // The same as add_site_hessian for p <= 4, writing the whole p x p matrix to `out`.
    template <int P>
    void site_hessian_p(int k, const Vector& v, double tau, double* out) const;
    // Hessian of F at the point whose offsets are v.
    void center_hessian(double lambda, const RowMatrix& v, Eigen::MatrixXd& H, int n_threads) const;
    // Add site k's curvature of F at an unfused offset v (||v|| > 0) to the lower triangle of H.
    void add_site_hessian(int k, const Vector& v, double tau, Workspace& ws, Eigen::Map<Eigen::MatrixXd>& H) const;
    // `why` as in newton_center (the objective no longer falls beyond its rounding: Stagnated).
    Vector fista_center(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda, const FusedOptions& opt,
                        RowMatrix v, int& iterations, SolveStatus& why) const;
    // The result at center u from F's evaluation there (no further pass over the sites).
    FusedResult finish_l2(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda, double scale,
                          const Vector& u, const CenterEval& e, int iterations, const FusedOptions& opt,
                          SolveStatus why) const;
    FusedResult solve_l2sq(const Eigen::Ref<const RowMatrix>& theta_hat, double scale, double lambda,
                           const FusedOptions& opt) const;
    FusedResult single_site(const Eigen::Ref<const RowMatrix>& centered, const FusedOptions& opt) const;
    // theta_hat minus its pooled estimate (returned in `shift`); private solvers work on this.
    RowMatrix centered(const Eigen::Ref<const RowMatrix>& theta_hat, Vector& shift) const;
    // KKT residual on centered data, relative to `scale` = residual_scale(theta_hat).
    double centered_kkt(const Eigen::Ref<const RowMatrix>& theta_hat, const RowMatrix& theta,
                        const Vector& center, double lambda, Penalty penalty, double scale) const;
    // u(v) = (sum A_k)^-1 sum A_k (that_k - v_k)
    Vector center_for(const Eigen::Ref<const RowMatrix>& theta_hat, const RowMatrix& v) const;
    // ws.x = argmin_x 1/2 (x - z)' A_k (x - z) + tau ||x||; returns true when that is 0 (fused).
    // `hint` (p values, or null), a nearby offset, starts the root search at its norm.
    bool site_prox(int k, const Vector& z, double tau, Workspace& ws, const double* hint = nullptr) const;
    // The same with the dimension fixed at compile time (Eigen::Dynamic for any p).
    template <int P>
    bool site_prox_p(int k, const Vector& z, double tau, Workspace& ws, const double* hint = nullptr) const;
    template <int P>
    void apply_A_p(int k, const Vector& x, Vector& out) const;
    // The constructor's pass over the sites (dense mode), with p fixed at compile time when small.
    template <int P>
    void load_dense(const Eigen::Ref<const RowMatrix>& W, const Eigen::Ref<const Vector>& n);
    // The eigendecomposition of A_k, computed on first use: fused sites never need it.
    void ensure_eigen(int k) const;
    Vector apply_A(int k, const Vector& x) const;
    void apply_A(int k, const Vector& x, Vector& out) const;
    Eigen::MatrixXd eigen_matrix(int k, const Vector& d) const;  // Q_k diag(d) Q_k'
    using MatrixView = Eigen::Map<const Eigen::MatrixXd>;
    MatrixView A(int k) const { return MatrixView(A_.col(k).data(), p_, p_); }
    MatrixView eigenvectors(int k) const { return MatrixView(Q_.col(k).data(), p_, p_); }
    VectorView eigenvalues(int k) const { return VectorView(evals_.col(k).data(), p_); }
    Vector solve_A_sum(const Vector& rhs) const;
    // Over the sites' products y_k = A_k x_k (x_k row k of X): their sum into `sum` and the
    // largest ||y_k|| into `largest`, each when not null.
    void site_products(const Eigen::Ref<const RowMatrix>& X, Vector* sum, double* largest) const;
    template <int P>
    void site_products_p(const Eigen::Ref<const RowMatrix>& X, Vector* sum, double* largest) const;
    double residual_scale(const Eigen::Ref<const RowMatrix>& centered) const;

    bool valid_input_ = true;
    int K_ = 0;
    int p_ = 0;
    bool positive_definite_ = true;
    int bad_site_ = 0;
    int asymmetric_site_ = -1;
    double bad_eigenvalue_ = 0.0;
    bool diagonal_ = false;                 // A_k diagonal: Q_k = I, evals_ = diagonal
    // Dense and p > 4: a single l2 solve uses each unfused site's tridiagonal form, a third of the
    // cost of an eigendecomposition; paths and batches, which reuse a site's factorization many
    // times, eigendecompose (each later prox and curvature is cheaper).
    bool tridiagonal_ = false;
    Vector A_sum_diag_;                     // diagonal of sum_k A_k (diagonal mode)
    // Per-site matrices and vectors are columns of one allocation each (column k: site k, the
    // matrices column-major): no allocation per site, and sites adjacent in memory.
    Eigen::MatrixXd A_;              // p*p x K: n_k W_k (dense mode)
    mutable Eigen::MatrixXd Q_;      // p*p x K: eigenvectors of A_k (dense mode, lazy)
    mutable Eigen::MatrixXd evals_;  // p x K: eigenvalues of A_k, ascending (lazy in dense mode)
    std::unique_ptr<std::once_flag[]> eig_once_; // one flag a site: thread-safe lazy decomposition
    std::unique_ptr<std::atomic<bool>[]> eig_ready_;  // fast check before call_once
    mutable std::vector<SiteTridiag> tri_;       // tridiagonal forms (tridiagonal mode, lazy)
    std::unique_ptr<std::once_flag[]> tri_once_;
    std::unique_ptr<std::atomic<bool>[]> tri_ready_;
    Vector trace_;                               // trace of A_k
    Vector w_;                              // penalty weights
    Eigen::MatrixXd A_sum_full_;            // sum_k A_k (dense mode)
    Eigen::LDLT<Eigen::MatrixXd> A_sum_;    // factorization of sum_k A_k
};

}  // namespace hetmtl
