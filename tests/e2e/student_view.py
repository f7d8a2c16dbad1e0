"""Writes the avgpool:K view of every image of an IDX file as a .npy file (float32, raw 0..255
scale), as `distill --student-view avgpool:K` computes it: the mean of each K x K block. With K a
power of two the mean of K*K integers is exact in float32, so the file and the built-in view hold
the same bits. Also writes a file with one sample too few (for the count-mismatch error).

usage: student_view.py IMAGES.gz K OUT.npy [SHORT.npy]
"""
import gzip
import struct
import sys

import numpy as np


def main():
    src, k, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with gzip.open(src, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 2051, "not an IDX image file"
        x = np.frombuffer(f.read(n * rows * cols), dtype=np.uint8).reshape(n, rows, cols)
    x = x.astype(np.int64)
    m = x.shape[0]
    pooled = x.reshape(m, rows // k, k, cols // k, k).sum(axis=(2, 4)).astype(np.float32)
    pooled = (pooled / np.float32(k * k)).astype(np.float32).reshape(m, -1)
    np.save(out, pooled)
    if len(sys.argv) > 4:
        np.save(sys.argv[4], pooled[:-1])


if __name__ == "__main__":
    main()
