// Shared by the binding files: pybind11 with its Eigen, NumPy and STL conversions, the argument
// types arrays arrive as (validated and C-contiguous on the Python side), and the conversions of
// the core's result vectors to NumPy arrays.
#pragma once

#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cstdint>
#include <vector>

namespace py = pybind11;

using RowRef = Eigen::Ref<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
using VecRef = Eigen::Ref<const Eigen::VectorXd>;

// A new NumPy array holding a copy of `v`, in the given shape (default: one dimension).
template <typename T>
py::array_t<T> to_array(const std::vector<T>& v, std::vector<py::ssize_t> shape = {}) {
    if (shape.empty()) shape.push_back(static_cast<py::ssize_t>(v.size()));
    py::array_t<T> out(shape);
    std::copy(v.begin(), v.end(), out.mutable_data());
    return out;
}

// The core's 0/1 flags as a NumPy bool array.
inline py::array_t<bool> to_bool_array(const std::vector<std::uint8_t>& v) {
    py::array_t<bool> out(static_cast<py::ssize_t>(v.size()));
    std::transform(v.begin(), v.end(), out.mutable_data(), [](std::uint8_t x) { return x != 0; });
    return out;
}
