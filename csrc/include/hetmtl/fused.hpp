// Fused quadratic solver: the central problem of late fusion.
//
//   minimize over theta_1..theta_K, u:
//     sum_k (n_k / 2) (theta_k - that_k)' W_k (theta_k - that_k) + lambda * sum_k w_k pen(theta_k - u)
//
// with pen = ||.||_2 ("l2", fuses sites exactly) or pen = ||.||_2^2 / 2 ("l2sq", ridge shrinkage).
// Inputs are row-major: theta_hat is K x p, W is K x (p*p) (each row one symmetric p x p matrix).
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "hetmtl/types.hpp"

namespace hetmtl {

enum class Penalty : int { L2 = 0, L2Squared = 1 };

enum class SolveStatus : int {
    Converged = 0,
    MaxIterations = 1,
    NotPositiveDefinite = 2,  // some W_k has a non-positive eigenvalue
    NumericalFailure = 3,     // non-finite values appeared during the iterations
    InvalidInput = 4,         // arrays whose shapes do not describe one problem
    Stagnated = 5,            // the iterates stopped changing at the arithmetic's precision
                              // before the residual reached tol (tol below what doubles can reach)
    Interrupted = 6,          // the caller's `interrupted` callback asked the solve to stop
};

struct FusedOptions {
    Penalty penalty = Penalty::L2;
    double tol = 1e-10;   // relative KKT tolerance
    int max_iter = 20000;
    int n_threads = 1;
    // Polled by the solving threads between iterations (may be empty): returning true stops
    // every solve of the call with status Interrupted. It must be cheap and thread-safe.
    std::function<bool()> interrupted;
};

struct FusedResult {
    RowMatrix theta;                 // K x p (empty when no solution was computed)
    Vector center;                   // p
    std::vector<std::uint8_t> fused; // K, 1 where theta_k == u exactly
    int iterations = 0;
    double kkt = 0.0;                // relative KKT residual at the returned point
    SolveStatus status = SolveStatus::Converged;
};

struct FusedPathResult {
    std::vector<FusedResult> fits;   // one per lambda, in the order given
};

// The eigen-decomposed, weighted problem data shared by every solve on the same (W, n, w). Its
// factorizations are computed on first use and kept (thread-safe), so one problem serves many
// lambdas and right-hand sides.
class FusedProblem {
public:
    FusedProblem(const Eigen::Ref<const RowMatrix>& W, const Eigen::Ref<const Vector>& n,
                 const Eigen::Ref<const Vector>& weights);

    // Diagonal weights (row k holds the diagonal of W_k), as in kernel nuisance fusion where every
    // coordinate is one grid point. With allow_semidefinite, zero entries (unreleased grid points)
    // are allowed as long as every coordinate has positive weight at some site.
    static FusedProblem diagonal(const Eigen::Ref<const RowMatrix>& D, const Eigen::Ref<const Vector>& n,
                                 const Eigen::Ref<const Vector>& weights, bool allow_semidefinite);

    FusedProblem(FusedProblem&&) noexcept;
    FusedProblem& operator=(FusedProblem&&) noexcept;
    ~FusedProblem();

    int n_sites() const;
    int dim() const;
    // False when W (or D), n and weights disagree in shape: every solve then returns InvalidInput.
    bool valid_input() const;
    bool positive_definite() const;
    // First site whose W_k is not positive definite (-1: a coordinate no site informs), and its
    // smallest eigenvalue; meaningful only when positive_definite() is false.
    int bad_site() const;
    double bad_eigenvalue() const;
    // First site whose W_k is not symmetric to a relative 1e-8 (-1: none); such a W_k is used
    // through its symmetric part.
    int asymmetric_site() const;

    // Inverse-variance pooled estimate (sum A_k)^-1 sum A_k that_k, with A_k = n_k W_k. NaN when
    // theta_hat is not K x p.
    Vector pooled(const Eigen::Ref<const RowMatrix>& theta_hat) const;
    // Smallest lambda at which every site is fused (l2 penalty); NaN when theta_hat is not K x p.
    double lambda_max(const Eigen::Ref<const RowMatrix>& theta_hat) const;

    // Solve at one lambda from a cold start.
    FusedResult solve(const Eigen::Ref<const RowMatrix>& theta_hat, double lambda,
                      const FusedOptions& opt) const;

    // Solve along `lambdas` with warm starts, largest first; results in the order given.
    FusedPathResult path(const Eigen::Ref<const RowMatrix>& theta_hat, const std::vector<double>& lambdas,
                         const FusedOptions& opt) const;

    // Eigendecompose every site now: before many solves on the same problem, where the eigenbasis
    // makes each prox and curvature cheaper than the tridiagonal form a single solve uses.
    void ensure_all_eigen() const;

    // Relative KKT residual of a candidate (theta, u); NaN when the shapes do not match.
    double kkt_residual(const Eigen::Ref<const RowMatrix>& theta_hat, const RowMatrix& theta,
                        const Vector& center, double lambda, Penalty penalty) const;

    class Impl;  // the factorized data and the solver's algorithms (src/fused_problem.hpp)

private:
    explicit FusedProblem(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Lambda path with warm starts: lambdas are solved in decreasing order, results returned in the
// order given.
FusedPathResult fused_path(const FusedProblem& problem, const Eigen::Ref<const RowMatrix>& theta_hat,
                           const std::vector<double>& lambdas, const FusedOptions& opt);

// Many independent right-hand sides on the same problem (bootstrap draws, simulation replicates):
// theta_hats stacks B blocks of K rows. Parallel over blocks with OpenMP.
std::vector<FusedResult> fused_solve_batch(const FusedProblem& problem,
                                           const Eigen::Ref<const RowMatrix>& theta_hats, double lambda,
                                           const FusedOptions& opt);

}  // namespace hetmtl
