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
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
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

// Ctrl-C during a long solve that runs without the GIL. The calling thread polls Python's signal
// handlers at most every 20 ms (briefly taking the GIL back); once a handler raises (SIGINT:
// KeyboardInterrupt), every thread of the solve sees the stop flag, the core returns, and
// `rethrow` raises the handler's exception in the caller. Other threads only read the flag.
class SignalCheck {
public:
    SignalCheck() : owner_(std::this_thread::get_id()), last_(std::chrono::steady_clock::now()) {}

    // The callback for an options struct (a copyable std::function sharing this check).
    static std::function<bool()> callback(const std::shared_ptr<SignalCheck>& check) {
        return [check] { return check->poll(); };
    }

    bool poll() {
        if (stop_.load(std::memory_order_relaxed)) return true;
        if (std::this_thread::get_id() != owner_) return false;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_ < std::chrono::milliseconds(20)) return false;
        last_ = now;
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() != 0) {
            error_ = std::make_shared<py::error_already_set>();
            stop_.store(true, std::memory_order_relaxed);
        }
        return stop_.load(std::memory_order_relaxed);
    }

    // With the GIL held, after the solve: raise what a signal handler raised, if anything.
    void rethrow() const {
        if (error_) throw py::error_already_set(*error_);
    }

private:
    std::thread::id owner_;
    std::chrono::steady_clock::time_point last_;
    std::atomic<bool> stop_{false};
    std::shared_ptr<py::error_already_set> error_;
};

// Run `solve(options)` without the GIL, with `options.interrupted` answering Ctrl-C.
template <typename Options, typename Solve>
auto solve_interruptibly(const Options& opt, Solve&& solve) {
    auto check = std::make_shared<SignalCheck>();
    Options with_check = opt;
    with_check.interrupted = SignalCheck::callback(check);
    decltype(solve(with_check)) out;
    {
        py::gil_scoped_release release;
        out = solve(with_check);
    }
    check->rethrow();
    return out;
}
