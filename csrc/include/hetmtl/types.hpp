// The array types every area of the core shares. Row data (one site, task or observation a row)
// are row-major, as NumPy hands them over without a copy.
#pragma once

#include <Eigen/Core>

namespace hetmtl {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vector = Eigen::VectorXd;

// Read-only views of arrays owned by the caller (who keeps them alive while the core reads them).
using RowMatrixView = Eigen::Map<const RowMatrix>;
using VectorView = Eigen::Map<const Vector>;

}  // namespace hetmtl
