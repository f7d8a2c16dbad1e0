#!/usr/bin/python3
"""Writes deterministic ("exact-arithmetic") teacher model files x1.safetensors, x2.safetensors into
DIR, for the bit-identity checks of the target-store tests.

Usage: exact_teachers.py DIR

A teacher's float32 forward pass depends on where a sample sits in its batch (BLAS blocking), so
ordinary teachers give slightly different logits for the same sample in different batches (and
epochs): no store can reproduce that. These teachers compute exactly (inputs p/256 - 1/2, weights in
{-1,0,1}/64 and {-1,0,1}/8: every partial sum is representable), so their logits are the same in any
batch, in process or served by teacher_worker.
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_client import fnv1a64  # noqa: E402

for seed in (1, 2):
    rng = np.random.default_rng(seed)
    tensors = [("layers.0.weight", rng.integers(-1, 2, (32, 784)) / 64.0),
               ("layers.0.bias", rng.integers(-8, 9, 32) / 64.0),
               ("layers.1.weight", rng.integers(-1, 2, (10, 32)) / 8.0),
               ("layers.1.bias", rng.integers(-8, 9, 10) / 8.0)]
    tensors = [(n, t.astype("<f4")) for n, t in tensors]
    blob = b"".join(t.tobytes() for _, t in tensors)
    meta = {"format": "edistill-mlp", "format_version": "1", "arch": "784,32,10", "classes": "10",
            "input_scale": repr(1.0 / 256.0), "input_offset": "-0.5", "member": f"x{seed}",
            "provenance": "{}", "fingerprint": "fnv1a64:%016x" % fnv1a64(blob)}
    header, pos = {"__metadata__": meta}, 0
    for name, t in tensors:
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [pos, pos + t.nbytes]}
        pos += t.nbytes
    hj = json.dumps(header).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(f"{sys.argv[1]}/x{seed}.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + blob)
