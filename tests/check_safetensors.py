#!/usr/bin/python3
"""Independent reader of edistill model files (safetensors), using only json/struct/numpy.

Usage: check_safetensors.py MODEL.safetensors [--images IDX.gz --count N [--logits FILE]]

Parses the container without any edistill code and reads the "arch" metadata with its own parser
(the MLP form "784,1200,10" or a layer stack "1x28x28:conv32k3p1,bn,relu,maxpool2,flatten,dense10",
see common/nn/ed_layer.h). Checks every tensor's byte range and each layer's tensors (PyTorch names
and shapes: layers.{l}.weight (out, in[, k, k]), .bias, and BN's .running_mean / .running_var;
legacy MLP layers are numbered by weight layer) and recomputes the FNV-1a 64 fingerprint over all
tensor bytes in file order. Prints the architecture and exits 0 when everything matches, 1 (with a
message on stderr) otherwise.

With --images, also runs the model in numpy (inference: BN with running statistics, dropout off)
on the first N images of an IDX file, scaled as the file records, and prints the accuracy-free
summary; with --logits, compares against N x classes float32 little-endian logits from elsewhere
(a worker over ZeroMQ, the C forward pass) to 1e-4 and fails on a larger difference.

As a module: read_model(path) -> (meta, arch, tensors) and forward(meta, arch, tensors, x_raw).
"""
import gzip
import json
import re
import struct
import sys

import numpy as np

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1
DTYPES = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "U8": "u1"}
BN_EPS = 1e-5


class Bad(Exception):
    pass


def fnv1a64(data, h=FNV_OFFSET):
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & MASK64
    return h


def parse_arch(text):
    """-> (input shape (c, h, w), [layer dicts with kind, params, name index, in/out shapes])."""
    if ":" not in text:
        widths = [int(w) for w in text.split(",")]
        layers, shape = [], (widths[0], 1, 1)
        for l in range(len(widths) - 1):
            layers.append({"kind": "dense", "units": widths[l + 1], "name": l, "in": shape})
            shape = (widths[l + 1], 1, 1)
            layers[-1]["out"] = shape
            if l + 2 < len(widths):
                layers.append({"kind": "relu", "name": None, "in": shape, "out": shape})
        return (widths[0], 1, 1), layers
    head, body = text.split(":")
    dims = [int(d) for d in head.strip().split("x")]
    shape = tuple(dims) if len(dims) == 3 else (dims[0], 1, 1)
    inp, layers = shape, []
    for i, tok in enumerate(t.strip() for t in body.split(",")):
        c, h, w = shape
        d = {"name": i, "in": shape}
        m = re.fullmatch(r"conv(\d+)((?:[ksp]\d+)+)", tok)
        if m:
            opts = dict((o[0], int(o[1:])) for o in re.findall(r"[ksp]\d+", m[2]))
            k, s, p = opts["k"], opts.get("s", 1), opts.get("p", 0)
            d.update(kind="conv", units=int(m[1]), k=k, s=s, p=p)
            shape = (int(m[1]), (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
        elif re.fullmatch(r"(max|avg)pool\d+(s\d+)?", tok):
            m = re.fullmatch(r"(max|avg)pool(\d+)(?:s(\d+))?", tok)
            k = int(m[2])
            s = int(m[3] or k)
            d.update(kind=m[1] + "pool", k=k, s=s)
            shape = (c, (h - k) // s + 1, (w - k) // s + 1)
        elif tok.startswith("dense"):
            if (h, w) != (1, 1):
                raise Bad(f"dense on unflattened input {shape}")
            d.update(kind="dense", units=int(tok[5:]))
            shape = (int(tok[5:]), 1, 1)
        elif tok.startswith("dropout"):
            d.update(kind="dropout")
        elif tok in ("relu", "bn", "gap", "flatten"):
            d.update(kind=tok)
            if tok == "gap":
                shape = (c, 1, 1)
            elif tok == "flatten":
                shape = (c * h * w, 1, 1)
        else:
            raise Bad(f"unknown layer token {tok!r}")
        d["out"] = shape
        layers.append(d)
    return inp, layers


def expected_tensors(layers):
    """[(name, shape)] in file order."""
    out = []
    for L in layers:
        c = L["in"][0]
        if L["kind"] == "dense":
            out += [(f"layers.{L['name']}.weight", (L["units"], c)), (f"layers.{L['name']}.bias", (L["units"],))]
        elif L["kind"] == "conv":
            k = L["k"]
            out += [(f"layers.{L['name']}.weight", (L["units"], c, k, k)),
                    (f"layers.{L['name']}.bias", (L["units"],))]
        elif L["kind"] == "bn":
            out += [(f"layers.{L['name']}.{n}", (c,)) for n in ("weight", "bias", "running_mean", "running_var")]
    return out


def read_model(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise Bad(f"{path}: {len(raw)} bytes, too short")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise Bad(f"{path}: header says {n} bytes, file has {len(raw)}")
    if n % 8 != 0:
        raise Bad(f"{path}: header length {n} is not a multiple of 8")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    meta = header.pop("__metadata__", {})
    if not all(isinstance(v, str) for v in meta.values()):
        raise Bad(f"{path}: metadata values must be strings")
    if meta.get("format") != "edistill-mlp":
        raise Bad(f"{path}: format is {meta.get('format')!r}, expected 'edistill-mlp'")
    version = int(meta.get("format_version", "0"))
    if version not in (1, 2):
        raise Bad(f"{path}: format_version {version} unknown")
    tensors = {}
    for name, e in header.items():
        dtype = DTYPES.get(e["dtype"])
        if dtype is None:
            raise Bad(f"{path}: tensor {name}: unknown dtype {e['dtype']}")
        begin, end = e["data_offsets"]
        if not (0 <= begin <= end <= len(data)):
            raise Bad(f"{path}: tensor {name}: data_offsets {begin},{end} outside {len(data)} bytes")
        arr = np.frombuffer(data[begin:end], dtype=dtype)
        if arr.size != int(np.prod(e["shape"], dtype=np.int64)):
            raise Bad(f"{path}: tensor {name}: {arr.size} elements for shape {e['shape']}")
        tensors[name] = arr.reshape(e["shape"])
    inp, layers = parse_arch(meta["arch"])
    if version == 1 and ":" in meta["arch"]:
        raise Bad(f"{path}: format_version 1 with a layer-stack arch")
    if int(meta["classes"]) != layers[-1]["out"][0]:
        raise Bad(f"{path}: classes {meta['classes']} != output {layers[-1]['out']}")
    h = FNV_OFFSET
    left = dict(tensors)
    for name, shape in expected_tensors(layers):
        t = left.pop(name, None)
        if t is None:
            raise Bad(f"{path}: missing tensor {name}")
        if t.dtype != np.dtype("<f4") or t.shape != shape:
            raise Bad(f"{path}: tensor {name} is {t.dtype}{t.shape}, arch needs float32{shape}")
        if not np.all(np.isfinite(t)):
            raise Bad(f"{path}: tensor {name} has non-finite values")
        h = fnv1a64(t.tobytes(), h)
    if left:
        raise Bad(f"{path}: unexpected tensors {sorted(left)}")
    got = f"fnv1a64:{h:016x}"
    if meta.get("fingerprint", "") != got:
        raise Bad(f"{path}: fingerprint mismatch: metadata says {meta.get('fingerprint')}, tensors hash to {got}")
    return meta, (inp, layers), tensors


def _windows(x, k, s):
    """(N, C, H, W) -> (N, C, OH, OW, k, k) strided view of the k x k windows."""
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    st = x.strides
    return np.lib.stride_tricks.as_strided(x, (n, c, oh, ow, k, k), (st[0], st[1], st[2] * s, st[3] * s, st[2], st[3]))


def forward(meta, arch, tensors, x_raw):
    """Inference logits (float64) of raw samples x_raw (N, C*H*W) scaled as the file records."""
    inp, layers = arch
    x = x_raw.astype(np.float64) * float(meta["input_scale"]) + float(meta["input_offset"])
    x = x.reshape((-1,) + tuple(inp))
    for L in layers:
        t = lambda n: tensors[f"layers.{L['name']}.{n}"].astype(np.float64)
        kind = L["kind"]
        if kind == "dense":
            x = (x.reshape(len(x), -1) @ t("weight").T + t("bias")).reshape(len(x), -1, 1, 1)
        elif kind == "conv":
            p = L["p"]
            xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
            win = _windows(xp, L["k"], L["s"])  # (N, C, OH, OW, k, k)
            x = np.einsum("ncyxij,ocij->noyx", win, t("weight")) + t("bias")[None, :, None, None]
        elif kind == "maxpool":
            x = _windows(np.ascontiguousarray(x), L["k"], L["s"]).max(axis=(4, 5))
        elif kind == "avgpool":
            x = _windows(np.ascontiguousarray(x), L["k"], L["s"]).mean(axis=(4, 5))
        elif kind == "gap":
            x = x.mean(axis=(2, 3), keepdims=True)
        elif kind == "flatten":
            x = x.reshape(len(x), -1, 1, 1)
        elif kind == "relu":
            x = np.maximum(x, 0.0)
        elif kind == "bn":
            sc = t("weight") / np.sqrt(t("running_var") + BN_EPS)
            x = (x - t("running_mean")[None, :, None, None]) * sc[None, :, None, None] + t("bias")[None, :, None, None]
        # dropout: identity at inference
    return x.reshape(len(x), -1)


def read_idx_images(path, count):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        magic, n = struct.unpack(">II", f.read(8))
        dims = struct.unpack(">" + "I" * ((magic & 0xFF) - 1), f.read(4 * ((magic & 0xFF) - 1)))
        per = int(np.prod(dims))
        count = min(count, n)
        return np.frombuffer(f.read(per * count), dtype=np.uint8).reshape(count, per)


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        print("usage: check_safetensors.py MODEL [--images IDX --count N [--logits FILE]]", file=sys.stderr)
        sys.exit(1)
    path, opts = args[0], dict(zip(args[1::2], args[2::2]))
    try:
        meta, arch, tensors = read_model(path)
        n_params = sum(t.size for t in tensors.values())
        print(f"arch {meta['arch']} classes {meta['classes']} member {meta.get('member', '')!r} "
              f"input_scale {float(meta['input_scale']):.9g} tensors {len(tensors)} floats {n_params} "
              f"fingerprint {meta['fingerprint']} ok")
        if "--images" in opts:
            x = read_idx_images(opts["--images"], int(opts.get("--count", "64")))
            z = forward(meta, arch, tensors, x)
            print(f"numpy forward of {len(x)} images: logits {z.shape}, mean |z| {np.abs(z).mean():.4g}")
            if "--logits" in opts:
                got = np.fromfile(opts["--logits"], dtype="<f4").astype(np.float64)
                if got.size != z.size:
                    raise Bad(f"{opts['--logits']}: {got.size} logits, expected {z.size}")
                got = got.reshape(z.shape)
                err = np.abs(got - z) / (1e-4 + 1e-4 * np.abs(z))
                i = np.unravel_index(np.argmax(err), err.shape)
                if err[i] > 1.0:
                    raise Bad(f"logits differ from numpy at {i}: got {got[i]:.7g}, numpy {z[i]:.7g}")
                print(f"logits match numpy to 1e-4 (worst |diff| {np.abs(got - z).max():.3g})")
    except Bad as e:
        print(f"check_safetensors: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
