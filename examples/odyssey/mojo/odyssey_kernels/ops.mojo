"""Kernels: matmul, row-wise softmax, and a 2-layer MLP (ReLU hidden layer, softmax output)."""

from std.math import exp, max as fmax
from std.sys import simd_width_of
from odyssey_kernels.matrix import Matrix

comptime W = simd_width_of[DType.float64]()


def matmul(a: Matrix, b: Matrix) raises -> Matrix:
    """`a @ b`: i-k-j loop order, the inner loop over a row of `b` in SIMD vectors.
    """
    if a.cols != b.rows:
        raise Error("matmul: shapes do not match")
    var c = Matrix(a.rows, b.cols)
    var n = b.cols
    var ap = a.data.unsafe_ptr()
    var bp = b.data.unsafe_ptr()
    var cp = c.data.unsafe_ptr()
    for i in range(a.rows):
        var crow = i * n
        for k in range(a.cols):
            var aik = ap.unsafe_load[width=1](i * a.cols + k)
            var brow = k * n
            var j = 0
            while j + W <= n:
                var acc = cp.unsafe_load[width=W](crow + j)
                var bv = bp.unsafe_load[width=W](brow + j)
                cp.unsafe_store(
                    crow + j, acc + SIMD[DType.float64, W](aik) * bv
                )
                j += W
            while j < n:
                var tail = cp.unsafe_load[width=1](crow + j)
                cp.unsafe_store(
                    crow + j, tail + aik * bp.unsafe_load[width=1](brow + j)
                )
                j += 1
    return c^


def softmax(x: Matrix) -> Matrix:
    """Row-wise softmax, shifted by each row's maximum for stability."""
    var y = Matrix(x.rows, x.cols)
    for i in range(x.rows):
        var row = i * x.cols
        var top = x.data[row]
        for j in range(1, x.cols):
            top = fmax(top, x.data[row + j])
        var total: Float64 = 0.0
        for j in range(x.cols):
            var e = exp(x.data[row + j] - top)
            y.data[row + j] = e
            total += e
        for j in range(x.cols):
            y.data[row + j] /= total
    return y^


def add_bias_relu(mut h: Matrix, b: Matrix):
    """`h = max(h + b, 0)` with `b` a 1 x cols row broadcast over rows."""
    for i in range(h.rows):
        for j in range(h.cols):
            var v = h.data[i * h.cols + j] + b.data[j]
            h.data[i * h.cols + j] = v if v > 0.0 else 0.0


def add_bias(mut h: Matrix, b: Matrix):
    """`h = h + b` with `b` a 1 x cols row broadcast over rows."""
    for i in range(h.rows):
        for j in range(h.cols):
            h.data[i * h.cols + j] += b.data[j]


def transpose(a: Matrix) -> Matrix:
    """`a.T` as a new matrix."""
    var t = Matrix(a.cols, a.rows)
    for i in range(a.rows):
        for j in range(a.cols):
            t.data[j * a.rows + i] = a.data[i * a.cols + j]
    return t^


def mlp_forward(
    x: Matrix, w1: Matrix, b1: Matrix, w2: Matrix, b2: Matrix
) raises -> Matrix:
    """Class probabilities of the MLP: softmax(relu(x @ w1 + b1) @ w2 + b2)."""
    var h = matmul(x, w1)
    add_bias_relu(h, b1)
    var logits = matmul(h, w2)
    add_bias(logits, b2)
    return softmax(logits)


def mlp_backward(
    x: Matrix, onehot: Matrix, w1: Matrix, b1: Matrix, w2: Matrix, b2: Matrix
) raises -> List[Matrix]:
    """Gradients of the mean cross-entropy: [dw1, db1, dw2, db2]."""
    var h = matmul(x, w1)
    add_bias_relu(h, b1)
    var logits = matmul(h, w2)
    add_bias(logits, b2)
    var p = softmax(logits)
    var n = Float64(x.rows)
    var dlogits = Matrix(p.rows, p.cols)
    for k in range(p.rows * p.cols):
        dlogits.data[k] = (p.data[k] - onehot.data[k]) / n
    var dw2 = matmul(transpose(h), dlogits)
    var db2 = Matrix(1, p.cols)
    for i in range(p.rows):
        for j in range(p.cols):
            db2.data[j] += dlogits.data[i * p.cols + j]
    var dh = matmul(dlogits, transpose(w2))
    for k in range(dh.rows * dh.cols):
        if h.data[k] <= 0.0:
            dh.data[k] = 0.0
    var dw1 = matmul(transpose(x), dh)
    var db1 = Matrix(1, dh.cols)
    for i in range(dh.rows):
        for j in range(dh.cols):
            db1.data[j] += dh.data[i * dh.cols + j]
    var grads = List[Matrix]()
    grads.append(dw1^)
    grads.append(db1^)
    grads.append(dw2^)
    grads.append(db2^)
    return grads^
