"""A dense, row-major matrix of Float64 and its text form (shared with the Python side)."""


struct Matrix(Copyable, Movable):
    """A `rows` x `cols` matrix stored row-major in one list."""

    var rows: Int
    var cols: Int
    var data: List[Float64]

    def __init__(out self, rows: Int, cols: Int):
        self.rows = rows
        self.cols = cols
        self.data = List[Float64](length=rows * cols, fill=0.0)

    def __getitem__(self, i: Int, j: Int) -> Float64:
        return self.data[i * self.cols + j]

    def __setitem__(mut self, i: Int, j: Int, value: Float64):
        self.data[i * self.cols + j] = value


def load_matrix(path: String) raises -> Matrix:
    """Read the text form: a first line `rows cols`, then one value per line, row-major.
    """
    var text: String
    with open(path, "r") as f:
        text = f.read()
    var lines = text.splitlines()
    if len(lines) < 1:
        raise Error("empty matrix file: " + path)
    var shape = lines[0].split(" ")
    var rows = atol(shape[0])
    var cols = atol(shape[1])
    if len(lines) < 1 + rows * cols:
        raise Error(
            "matrix file " + path + " holds fewer values than its shape"
        )
    var m = Matrix(rows, cols)
    for k in range(rows * cols):
        m.data[k] = atof(lines[1 + k])
    return m^


def save_matrix(m: Matrix, path: String) raises:
    """Write the text form read by `load_matrix` and by odyssey.mojo_bridge."""
    var out = String(m.rows) + " " + String(m.cols) + "\n"
    for k in range(m.rows * m.cols):
        out += String(m.data[k]) + "\n"
    with open(path, "w") as f:
        f.write(out)
