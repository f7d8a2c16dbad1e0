#!/usr/bin/python3
"""cnn_client: the Python side of tests/e2e/cnn.sh: asks a running `teacher_worker serve` of a CNN
for its member info and the logits of the first N images of an IDX file, over a real ZeroMQ
DEALER socket, and checks them against the independent numpy forward pass of
tests/check_safetensors.py.

  cnn_client.py --proto-dir DIR --model PATH --ready-file F --images IDX --count N --out LOGITS

Checks: MemberInfo.input_shape is the arch's (C, H, W) and input_dim its product; a request with one
value per sample too few gets an ESHAPE ErrorReply naming the shape; the served logits (written to
--out as float32) match numpy to 1e-4. Exits 1 with a message naming the failed check.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import check_safetensors as cs  # noqa: E402
from serve_client import ESHAPE, CheckFailed, Client, check  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    for a in ("--proto-dir", "--model", "--ready-file", "--images", "--out"):
        ap.add_argument(a, required=True)
    ap.add_argument("--count", type=int, default=64)
    args = ap.parse_args()
    import zmq

    sys.path.insert(0, args.proto_dir)
    import edistill_pb2 as pb

    meta, arch, tensors = cs.read_model(args.model)
    (c, h, w), layers = arch
    fields = dict(line.split("=", 1) for line in open(args.ready_file).read().split("\n") if "=" in line)
    ctx = zmq.Context()
    cl = Client(ctx, fields["endpoint"], pb, "cnn client")
    try:
        cl.info(1)
        mi = cl.recv().member_info
        check(list(mi.input_shape) == [c, h, w], f"info input_shape {list(mi.input_shape)} != {[c, h, w]}")
        check(mi.input_dim == c * h * w, f"info input_dim {mi.input_dim}")
        check(mi.arch == meta["arch"], f"info arch {mi.arch} != {meta['arch']}")
        print(f"  ok: member info input_shape {list(mi.input_shape)} arch {mi.arch}")

        x = cs.read_idx_images(args.images, args.count)
        cl.logits(2, x[:, :-1], "u8")
        env = cl.recv()
        check(env.WhichOneof("body") == "error", f"short sample answered with {env.WhichOneof('body')}")
        check(env.error.code == ESHAPE and f"{c}x{h}x{w}" in env.error.message,
              f"short sample: error {env.error.code} '{env.error.message}'")
        print(f"  ok: {c * h * w - 1} values per sample refused: {env.error.message}")

        cl.logits(3, x, "u8")
        env = cl.recv()
        check(env.WhichOneof("body") == "logit_reply", f"logits: got {env.WhichOneof('body')}")
        t = env.logit_reply.logits
        z = np.frombuffer(t.data, dtype="<f4").reshape(list(t.shape))
        z.tofile(args.out)
        ref = cs.forward(meta, arch, tensors, x)
        worst = np.max(np.abs(z - ref) / (1e-4 + 1e-4 * np.abs(ref)))
        check(worst <= 1.0, f"served logits differ from numpy: worst scaled error {worst:.3g}")
        print(f"  ok: {len(x)} served CNN logits match numpy (max |diff| {np.abs(z - ref).max():.3g})")
    except CheckFailed as e:
        print(f"cnn_client: FAILED: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
