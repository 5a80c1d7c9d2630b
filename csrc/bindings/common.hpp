// Shared by the binding files: pybind11 with its Eigen, NumPy and STL conversions, and the
// argument types arrays arrive as (validated and C-contiguous on the Python side).
#pragma once

#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <Eigen/Dense>

namespace py = pybind11;

using RowRef = Eigen::Ref<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
using VecRef = Eigen::Ref<const Eigen::VectorXd>;
