#!/usr/bin/python3
"""Independent reader of edistill soft-target stores (docs/TARGET_STORE.md), with json + numpy only.

Usage: check_target_store.py STORE [INPUT.f32 [H2F.bin]]

Loads every shard index (shard-IIIII-of-NNNNN.json) of STORE, checks that the shards cover
[0, total_samples) without gaps or overlaps, loads the arrays with np.load, recomputes their FNV-1a
64 checksums, and rebuilds the (total, members, classes) float32 logits as the format documents
(top-k: the classes not kept get the stored remainder). With INPUT.f32, the raw float32 logits
(total, members, classes) the store was written from, checks the stored values bit for bit against
numpy's own conversion: float32 stores equal the input, float16 stores equal
input.astype(np.float16), top-k stores keep the k largest (ties to the lower class, descending)
and the mean of the rest (computed in float64). With H2F.bin (65536 float32, edistill's float16 ->
float32 table), checks it against numpy's astype(np.float32) of every half. Prints a summary and
exits 0 when everything matches, 1 (message on stderr) otherwise.
"""
import glob
import json
import os
import sys

import numpy as np

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1


def fnv1a64(data, h=FNV_OFFSET):
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & MASK64
    return h


def fail(msg):
    print(f"check_target_store: {msg}", file=sys.stderr)
    sys.exit(1)


def load_store(store):
    shards = []
    for path in sorted(glob.glob(os.path.join(store, "shard-*-of-*.json"))):
        if path.endswith((".progress.json", ".fill.json")):  # unfinished: label / --cache-targets
            continue
        with open(path) as f:
            idx = json.load(f)
        if idx.get("format") != "edistill-targets" or idx.get("format_version") != 1:
            fail(f"{path}: not a version-1 edistill-targets index")
        shards.append(idx)
    if not shards:
        fail(f"{store}: no shard index")
    first = shards[0]
    total, n_members, classes = first["total_samples"], len(first["members"]), first["classes"]
    top_k = first["top_k"]
    shards.sort(key=lambda s: s["start"])
    pos = 0
    out = np.zeros((total, n_members, classes), dtype=np.float32)
    raw = {"logits": [], "indices": []}
    for s in shards:
        for key in ("members", "inputs", "classes", "dtype", "top_k", "total_samples", "shards"):
            if s[key] != first[key]:
                fail(f"shard {s['shard']}: {key} differs from shard {first['shard']}")
        if s["start"] != pos:
            fail(f"shard {s['shard']}: starts at {s['start']}, expected {pos} (gap or overlap)")
        n = s["end"] - s["start"]
        arrays = {}
        for name, meta in s["arrays"].items():
            path = os.path.join(store, meta["file"])
            a = np.load(path)
            if list(a.shape) != meta["shape"] or a.dtype.str != meta["dtype"]:
                fail(f"{path}: shape {a.shape} dtype {a.dtype.str}, index says {meta}")
            if fnv1a64(a.tobytes()) != int(meta["fnv1a64"], 16):
                fail(f"{path}: checksum mismatch")
            arrays[name] = a
            raw[name].append(a)
        vals = arrays["logits"].astype(np.float32)
        if top_k == 0:
            out[pos:pos + n] = vals
        else:
            rest = vals[:, :, top_k:top_k + 1]
            full = np.repeat(rest, classes, axis=2)
            np.put_along_axis(full, arrays["indices"].astype(np.int64), vals[:, :, :top_k], axis=2)
            out[pos:pos + n] = full
        pos = s["end"]
    if pos != total:
        fail(f"the shards end at sample {pos} of {total} (a shard is missing)")
    return first, out, {k: np.concatenate(v) for k, v in raw.items() if v}


def check_input(meta, raw, inp_path):
    total, n_members, classes = meta["total_samples"], len(meta["members"]), meta["classes"]
    z = np.fromfile(inp_path, dtype="<f4").reshape(total, n_members, classes)
    dt = np.float16 if meta["dtype"] == "float16" else np.float32
    top_k = meta["top_k"]
    if top_k == 0:
        expect = z.astype(dt)
    else:
        # stable descending order: ties keep the lower class first
        order = np.argsort(-z, axis=2, kind="stable")
        kept = order[:, :, :top_k]
        vals = np.take_along_axis(z, kept, axis=2)
        rest_idx = order[:, :, top_k:]
        if classes > top_k:
            rest = np.take_along_axis(z, rest_idx, axis=2).astype(np.float64).mean(axis=2)
        else:
            rest = np.zeros(z.shape[:2])
        expect = np.concatenate([vals, rest.astype(np.float32)[:, :, None]], axis=2).astype(dt)
        if not np.array_equal(raw["indices"], kept.astype(np.uint16)):
            bad = np.argwhere(raw["indices"] != kept.astype(np.uint16))[0]
            fail(f"top-k index differs at {tuple(bad)}")
    got = raw["logits"]
    if got.tobytes() != expect.tobytes():
        width = 2 if dt == np.float16 else 4
        gb = got.view(f"<u{width}").ravel()
        eb = expect.view(f"<u{width}").ravel()
        i = int(np.argmax(gb != eb))
        fail(f"stored value {i} has bits {gb[i]:#x}, numpy's conversion gives {eb[i]:#x}")
    return int(got.size)


def main():
    if len(sys.argv) not in (2, 3, 4):
        fail("usage: check_target_store.py STORE [INPUT.f32 [H2F.bin]]")
    meta, logits, raw = load_store(sys.argv[1])
    if not np.all(np.isfinite(logits)):
        fail("a stored logit is NaN or infinite")
    checked = check_input(meta, raw, sys.argv[2]) if len(sys.argv) >= 3 else 0
    if len(sys.argv) == 4:
        table = np.fromfile(sys.argv[3], dtype="<f4")
        ref = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
        same = (table.view(np.uint32) == ref.view(np.uint32)) | (np.isnan(table) & np.isnan(ref))
        if table.shape != ref.shape or not np.all(same):
            i = int(np.argmax(~same))
            fail(f"float16 {i:#06x} -> {table[i]!r}, numpy says {ref[i]!r}")
    print(f"store ok: {meta['total_samples']} samples, {len(meta['members'])} members, "
          f"{meta['classes']} classes, {meta['dtype']}, top_k {meta['top_k']}, "
          f"{meta['shards']} shards, {checked} values checked against numpy")


if __name__ == "__main__":
    main()
