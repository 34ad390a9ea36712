"""Odyssey's numeric kernels in Mojo: a dense row-major matrix, matmul, softmax, a 2-layer MLP."""
