#!/usr/bin/python3
"""Independent reader of edistill model files (safetensors), using only json/struct/numpy.

Usage: check_safetensors.py MODEL.safetensors

Parses the container without any edistill code, checks every tensor's byte range and the
layers.{l}.weight / layers.{l}.bias shapes against the "arch" metadata, recomputes the FNV-1a 64
fingerprint over the tensor bytes in order (layers.0.weight, layers.0.bias, layers.1.weight, ...)
and compares it with the "fingerprint" metadata. Prints the architecture and exits 0 when everything
matches, 1 (with a message on stderr) otherwise.
"""
import json
import struct
import sys

import numpy as np

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1
DTYPES = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "U8": "u1"}


def fnv1a64(data, h=FNV_OFFSET):
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & MASK64
    return h


def fail(msg):
    print(f"check_safetensors: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 2:
        fail("usage: check_safetensors.py MODEL.safetensors")
    path = sys.argv[1]
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        fail(f"{path}: {len(raw)} bytes, too short")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        fail(f"{path}: header says {n} bytes, file has {len(raw)}")
    if n % 8 != 0:
        fail(f"{path}: header length {n} is not a multiple of 8")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    meta = header.pop("__metadata__", {})
    if not all(isinstance(v, str) for v in meta.values()):
        fail(f"{path}: metadata values must be strings")
    if meta.get("format") != "edistill-mlp":
        fail(f"{path}: format is {meta.get('format')!r}, expected 'edistill-mlp'")

    tensors = {}
    for name, e in header.items():
        dtype = DTYPES.get(e["dtype"])
        if dtype is None:
            fail(f"{path}: tensor {name}: unknown dtype {e['dtype']}")
        begin, end = e["data_offsets"]
        if not (0 <= begin <= end <= len(data)):
            fail(f"{path}: tensor {name}: data_offsets {begin},{end} outside {len(data)} bytes")
        arr = np.frombuffer(data[begin:end], dtype=dtype)
        if arr.size != int(np.prod(e["shape"], dtype=np.int64)):
            fail(f"{path}: tensor {name}: {arr.size} elements for shape {e['shape']}")
        tensors[name] = arr.reshape(e["shape"])

    widths = [int(w) for w in meta["arch"].split(",")]
    if int(meta["classes"]) != widths[-1]:
        fail(f"{path}: classes {meta['classes']} != last width {widths[-1]}")
    h = FNV_OFFSET
    for l in range(len(widths) - 1):
        for kind, shape in (("weight", (widths[l + 1], widths[l])), ("bias", (widths[l + 1],))):
            name = f"layers.{l}.{kind}"
            t = tensors.pop(name, None)
            if t is None:
                fail(f"{path}: missing tensor {name}")
            if t.dtype != np.dtype("<f4") or t.shape != shape:
                fail(f"{path}: tensor {name} is {t.dtype}{t.shape}, arch needs float32{shape}")
            if not np.all(np.isfinite(t)):
                fail(f"{path}: tensor {name} has non-finite values")
            h = fnv1a64(t.tobytes(), h)
    if tensors:
        fail(f"{path}: unexpected tensors {sorted(tensors)}")
    want = meta.get("fingerprint", "")
    got = f"fnv1a64:{h:016x}"
    if want != got:
        fail(f"{path}: fingerprint mismatch: metadata says {want}, tensors hash to {got}")
    print(f"arch {meta['arch']} classes {meta['classes']} member {meta.get('member', '')!r} "
          f"input_scale {float(meta['input_scale']):.9g} fingerprint {got} ok")


if __name__ == "__main__":
    main()
