"""The odyssey-kernels command: run one kernel on matrix files, or time a kernel.

    odyssey-kernels matmul A B OUT
    odyssey-kernels softmax X OUT
    odyssey-kernels forward X W1 B1 W2 B2 OUT
    odyssey-kernels backward X ONEHOT W1 B1 W2 B2 PREFIX   (writes PREFIX.dw1 .db1 .dw2 .db2)
    odyssey-kernels bench KERNEL SIZE ROUNDS                (prints seconds per round, one per line)
"""

from std.sys import argv, exit
from std.time import perf_counter_ns
from odyssey_kernels.matrix import Matrix, load_matrix, save_matrix
from odyssey_kernels.ops import matmul, softmax, mlp_forward, mlp_backward


def filled(rows: Int, cols: Int, seed: Int) -> Matrix:
    """Deterministic values in [-1, 1) from a linear congruential generator."""
    var m = Matrix(rows, cols)
    var state = UInt64(seed * 2654435761 + 1)
    for k in range(rows * cols):
        state = state * 6364136223846793005 + 1442695040888963407
        m.data[k] = Float64(Int(state >> 11)) / 4503599627370496.0 - 1.0
    return m^


def bench(kernel: String, size: Int, rounds: Int) raises:
    var a = filled(size, size, 1)
    var b = filled(size, size, 2)
    var bias = filled(1, size, 3)
    var onehot = Matrix(size, size)
    for i in range(size):
        onehot[i, i % size] = 1.0
    var sink: Float64 = 0.0
    for _ in range(rounds):
        var t0 = perf_counter_ns()
        if kernel == "matmul":
            sink += matmul(a, b).data[0]
        elif kernel == "softmax":
            sink += softmax(a).data[0]
        elif kernel == "forward":
            sink += mlp_forward(a, b, bias, b, bias).data[0]
        elif kernel == "backward":
            sink += mlp_backward(a, onehot, b, bias, b, bias)[0].data[0]
        else:
            raise Error("unknown kernel: " + kernel)
        var t1 = perf_counter_ns()
        print(Float64(t1 - t0) / 1e9)
    if sink == 12345.678:  # keeps the results alive
        print("")


def usage() raises:
    raise Error(
        "usage: odyssey-kernels matmul|softmax|forward|backward|bench ARGS (see"
        " cli.mojo)"
    )


def main() raises:
    var args = argv()
    if len(args) < 2:
        usage()
    var op = String(args[1])
    if op == "matmul" and len(args) == 5:
        save_matrix(
            matmul(load_matrix(String(args[2])), load_matrix(String(args[3]))),
            String(args[4]),
        )
    elif op == "softmax" and len(args) == 4:
        save_matrix(softmax(load_matrix(String(args[2]))), String(args[3]))
    elif op == "forward" and len(args) == 8:
        var p = mlp_forward(
            load_matrix(String(args[2])),
            load_matrix(String(args[3])),
            load_matrix(String(args[4])),
            load_matrix(String(args[5])),
            load_matrix(String(args[6])),
        )
        save_matrix(p, String(args[7]))
    elif op == "backward" and len(args) == 9:
        var grads = mlp_backward(
            load_matrix(String(args[2])),
            load_matrix(String(args[3])),
            load_matrix(String(args[4])),
            load_matrix(String(args[5])),
            load_matrix(String(args[6])),
            load_matrix(String(args[7])),
        )
        var prefix = String(args[8])
        save_matrix(grads[0], prefix + ".dw1")
        save_matrix(grads[1], prefix + ".db1")
        save_matrix(grads[2], prefix + ".dw2")
        save_matrix(grads[3], prefix + ".db2")
    elif op == "bench" and len(args) == 5:
        bench(String(args[2]), atol(String(args[3])), atol(String(args[4])))
    else:
        usage()
