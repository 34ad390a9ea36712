"""Tests of the Mojo kernels, run with `mojo run -I mojo mojo/tests/test_ops.mojo`.

Each test prints `PASS name seconds` or `FAIL name seconds message`; tools/mojo_junit.py turns the
lines into a JUnit report. The exit code is 1 when a test failed.
"""

from std.math import exp
from std.sys import exit
from std.testing import assert_equal, assert_almost_equal, assert_true
from std.time import perf_counter_ns
from odyssey_kernels.matrix import Matrix
from odyssey_kernels.ops import (
    matmul,
    softmax,
    mlp_forward,
    mlp_backward,
    transpose,
)


def m2(a: Float64, b: Float64, c: Float64, d: Float64) -> Matrix:
    var m = Matrix(2, 2)
    m[0, 0] = a
    m[0, 1] = b
    m[1, 0] = c
    m[1, 1] = d
    return m^


def test_matmul_small() raises:
    var c = matmul(m2(1, 2, 3, 4), m2(5, 6, 7, 8))
    assert_equal(c[0, 0], 19.0)
    assert_equal(c[0, 1], 22.0)
    assert_equal(c[1, 0], 43.0)
    assert_equal(c[1, 1], 50.0)


def test_matmul_identity() raises:
    var a = m2(0.5, -1.5, 2.25, 3.0)
    var c = matmul(a, m2(1, 0, 0, 1))
    for k in range(4):
        assert_equal(c.data[k], a.data[k])


def test_matmul_rejects_bad_shapes() raises:
    var raised = False
    try:
        _ = matmul(Matrix(2, 3), Matrix(2, 3))
    except:
        raised = True
    assert_true(raised, "matmul of 2x3 by 2x3 must raise")


def test_softmax_rows_sum_to_one() raises:
    var s = softmax(m2(1, 2, -3, 1000))
    assert_almost_equal(s[0, 0] + s[0, 1], 1.0, atol=1e-12)
    assert_almost_equal(s[1, 0] + s[1, 1], 1.0, atol=1e-12)
    assert_almost_equal(s[0, 1], exp(2.0) / (exp(1.0) + exp(2.0)), atol=1e-12)
    assert_almost_equal(s[1, 1], 1.0, atol=1e-12)  # stable: no overflow at 1000


def test_transpose() raises:
    var t = transpose(m2(1, 2, 3, 4))
    assert_equal(t[0, 1], 3.0)
    assert_equal(t[1, 0], 2.0)


def test_forward_gives_probabilities() raises:
    var x = m2(1, -1, 0.5, 2)
    var w = m2(0.1, -0.2, 0.3, 0.4)
    var b = Matrix(1, 2)
    var p = mlp_forward(x, w, b, w, b)
    for i in range(2):
        assert_almost_equal(p[i, 0] + p[i, 1], 1.0, atol=1e-12)


def test_backward_matches_finite_differences() raises:
    var x = m2(1, -1, 0.5, 2)
    var y = m2(1, 0, 0, 1)
    var w1 = m2(0.1, -0.2, 0.3, 0.4)
    var b1 = Matrix(1, 2)
    b1[0, 0] = 0.05
    var w2 = m2(-0.3, 0.2, 0.1, 0.5)
    var b2 = Matrix(1, 2)
    var grads = mlp_backward(x, y, w1, b1, w2, b2)
    var h = 1e-6
    for k in range(4):
        var plus = w2.copy()
        plus.data[k] += h
        var minus = w2.copy()
        minus.data[k] -= h
        var numeric = (
            loss(x, y, w1, b1, plus, b2) - loss(x, y, w1, b1, minus, b2)
        ) / (2 * h)
        assert_almost_equal(grads[2].data[k], numeric, atol=1e-6)


def loss(
    x: Matrix, y: Matrix, w1: Matrix, b1: Matrix, w2: Matrix, b2: Matrix
) raises -> Float64:
    from std.math import log

    var p = mlp_forward(x, w1, b1, w2, b2)
    var total: Float64 = 0.0
    for k in range(p.rows * p.cols):
        if y.data[k] > 0.0:
            total -= log(p.data[k])
    return total / Float64(p.rows)


def run(name: String, test: def() raises thin -> None, mut failed: Int):
    var t0 = perf_counter_ns()
    try:
        test()
        print("PASS", name, Float64(perf_counter_ns() - t0) / 1e9)
    except e:
        failed += 1
        print(
            "FAIL",
            name,
            Float64(perf_counter_ns() - t0) / 1e9,
            String(e).replace("\n", " "),
        )


def main():
    var failed = 0
    run("test_matmul_small", test_matmul_small, failed)
    run("test_matmul_identity", test_matmul_identity, failed)
    run(
        "test_matmul_rejects_bad_shapes", test_matmul_rejects_bad_shapes, failed
    )
    run("test_softmax_rows_sum_to_one", test_softmax_rows_sum_to_one, failed)
    run("test_transpose", test_transpose, failed)
    run(
        "test_forward_gives_probabilities",
        test_forward_gives_probabilities,
        failed,
    )
    run(
        "test_backward_matches_finite_differences",
        test_backward_matches_finite_differences,
        failed,
    )
    if failed > 0:
        exit(1)
