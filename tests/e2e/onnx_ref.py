#!/usr/bin/python3
"""onnx_ref: the tools that are not ours, for tests/e2e/onnx.sh (PyTorch, python3-onnx, OpenCV).

  onnx_ref.py make KIND --opset N --out X.onnx --ref X.npy [--steps S] [--seed N]
      Trains a small PyTorch model on real Fashion-MNIST (seeded, a few hundred steps), exports it
      with torch.onnx.export (dynamic batch) and writes PyTorch's logits on the first 1000 test
      images to X.npy. The model's input is x_raw * SCALE + OFFSET (printed on stdout as
      "scale offset"); KIND:
        mlp      (N,1,28,28) -> Flatten -> Linear 64 -> ReLU -> Dropout -> Linear 10 -> Softmax
        mlp_bn   (N,784) -> (x - 0.5) / 0.5 inside the model -> Linear 64 -> BatchNorm1d -> ReLU
                 -> Linear 10
        cnn      (N,1,28,28) -> Conv 8 3x3 pad 1 -> BatchNorm2d -> ReLU -> MaxPool 2 -> Conv 16 3x3
                 -> ReLU -> AvgPool 2 -> Flatten -> Linear 10 (opset 17: BatchNormalization kept
                 in the file, opset 13: fused into the Conv by the exporter)
  onnx_ref.py make-all DIR [--steps S]
      All of the below in one process (PyTorch loads once): DIR/mlp_13, mlp_bn_17, cnn_13, cnn_17
      (.onnx + .npy), DIR/matmul_11 and DIR/bad/ from make-bad.
  onnx_ref.py make-matmul --out X.onnx --ref X.npy
      A MatMul + Add MLP built with onnx.helper (no PyTorch), reference by numpy.
  onnx_ref.py make-bad DIR --good X.onnx
      Bad files: truncated.onnx, unsupported_op.onnx, bad_initializer.onnx, output_4d.onnx,
      branching.onnx, opset9.onnx.
  onnx_ref.py query --proto-dir D --ready-file F --out Y.npy
      Sends the first 1000 test images (u8) to a running worker, saves its logits.
  onnx_ref.py compare A.npy B.npy --tol T
      max |A - B| <= T and argmax equal on every row.
  onnx_ref.py check-export X.onnx --ref Y.npy --tol T
      onnx.checker.check_model, metadata, dynamic batch; OpenCV dnn (readNetFromONNX) logits on the
      1000 raw-pixel images equal to Y to T.
Exits 1 with a message naming the failed check.
"""
import gzip
import os
import struct
import sys

import numpy as np

sys.dont_write_bytecode = True  # importing serve_client must not leave __pycache__ in the source tree

FMNIST = os.environ.get("EDISTILL_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
N_TEST = 1000


def fail(msg):
    print(f"onnx_ref: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n = struct.unpack(">II", raw[:8])
    if magic == 2051:
        r, c = struct.unpack(">II", raw[8:16])
        return np.frombuffer(raw, np.uint8, offset=16).reshape(n, r * c)
    return np.frombuffer(raw, np.uint8, offset=8)


def test_images():
    return idx(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz"))[:N_TEST]


def make_torch(kind, opset, out, ref, steps, seed):
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    np.random.seed(seed)
    scale, offset = 1.0 / 255.0, 0.0
    if kind == "mlp":
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 10))
        shape = (1, 28, 28)
    elif kind == "mlp_bn":

        class Norm(nn.Module):
            def forward(self, x):
                return (x - 0.5) / 0.5

        net = nn.Sequential(Norm(), nn.Linear(784, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))
        shape = (784,)
    elif kind == "cnn":
        net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 6 * 6, 10))
        shape = (1, 28, 28)
    else:
        fail(f"unknown kind {kind}")
    xs = idx(os.path.join(FMNIST, "train-images-idx3-ubyte.gz"))[:20000]
    ys = idx(os.path.join(FMNIST, "train-labels-idx1-ubyte.gz"))[:20000]
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    torch.set_num_threads(1)
    net.train()
    for _ in range(steps):
        i = np.random.randint(0, len(xs), 64)
        x = torch.from_numpy(xs[i].astype(np.float32) * scale + offset).reshape(64, *shape)
        loss = nn.functional.cross_entropy(net(x), torch.from_numpy(ys[i].astype(np.int64)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    # The exported graph ends in a Softmax for `mlp` (dropped by the importer, logged); the reference
    # is the logits before it.
    export_net = (nn.Sequential(net, nn.Softmax(dim=1)) if kind == "mlp" else net).eval()
    dummy = torch.zeros(2, *shape)
    # The CNN at opset 17 keeps its BatchNormalization node (TrainingMode.PRESERVE on an eval model;
    # EVAL would let the exporter fuse it into the Conv): the importer's folding is checked too.
    keep_bn = kind == "cnn" and opset == 17
    torch.onnx.export(export_net, dummy, out, opset_version=opset, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, do_constant_folding=False,
                      training=torch.onnx.TrainingMode.PRESERVE if keep_bn else torch.onnx.TrainingMode.EVAL)
    if keep_bn and "BatchNormalization" not in [n.op_type for n in __import__("onnx").load(out).graph.node]:
        fail("the CNN export lost its BatchNormalization node")
    net.eval()  # torch.onnx.export restores the mode it found; never compute the reference in train mode
    with torch.no_grad():
        xt = torch.from_numpy(test_images().astype(np.float32) * scale + offset).reshape(N_TEST, *shape)
        np.save(ref, net(xt).double().numpy())
    print(f"{scale!r} {offset!r}")


def make_matmul(out, ref):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    w1 = rng.normal(0, 0.05, (784, 32)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 32).astype(np.float32)
    w2 = rng.normal(0, 0.3, (32, 10)).astype(np.float32)
    b2 = rng.normal(0, 0.1, 10).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    # w2 as float_data instead of raw_data: both encodings must load.
    inits[2] = helper.make_tensor("w2", TensorProto.FLOAT, w2.shape, w2.flatten().tolist(), raw=False)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="mm1"),
        helper.make_node("Add", ["b1", "h1"], ["h2"], name="add1"),
        helper.make_node("Relu", ["h2"], ["h3"], name="relu1"),
        helper.make_node("Identity", ["h3"], ["h4"], name="id"),
        helper.make_node("MatMul", ["h4", "w2"], ["h5"], name="mm2"),
        helper.make_node("Add", ["h5", "b2"], ["y"], name="add2"),
    ]
    g = helper.make_graph(nodes, "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 784])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)], producer_name="onnx_ref.py")
    onnx.checker.check_model(m)
    onnx.save(m, out)
    x = test_images().astype(np.float64) / 255.0
    np.save(ref, np.maximum(x @ w1 + b1, 0) @ w2 + b2)
    print(f"{1.0 / 255.0!r} 0.0")


def make_bad(d, good):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    os.makedirs(d, exist_ok=True)
    raw = open(good, "rb").read()
    open(os.path.join(d, "truncated.onnx"), "wb").write(raw[: len(raw) // 2])

    def mlp(nodes_extra=None, w_bytes=None, out_shape=("N", 10), opset=13, out_name="y"):
        w = np.full((10, 784), 0.01, np.float32)
        t = numpy_helper.from_array(w, "w")
        if w_bytes is not None:
            t.raw_data = w_bytes
        b = numpy_helper.from_array(np.zeros(10, np.float32), "b")
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], name="fc", transB=1)]
        nodes += nodes_extra or [helper.make_node("Identity", ["g"], ["y"], name="id")]
        g = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 784])],
                              [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, list(out_shape))],
                              [t, b])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])

    onnx.save(mlp([helper.make_node("Tanh", ["g"], ["y"], name="act_tanh")]), os.path.join(d, "unsupported_op.onnx"))
    onnx.save(mlp(w_bytes=b"\0" * (4 * 784 * 10 - 4)), os.path.join(d, "bad_initializer.onnx"))
    onnx.save(mlp(opset=9), os.path.join(d, "opset9.onnx"))
    onnx.save(mlp([helper.make_node("Relu", ["g"], ["r"], name="relu"),
                   helper.make_node("Add", ["g", "r"], ["y"], name="residual")]),
              os.path.join(d, "branching.onnx"))
    # (N, 1, 28, 28) in and out: a graph whose output is not 2-D.
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "img",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 28, 28])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), os.path.join(d, "output_4d.onnx"))


def query(proto_dir, ready_file, out):
    sys.path.insert(0, proto_dir)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import edistill_pb2 as pb
    import serve_client
    import zmq

    ep = [l.split("=", 1)[1].strip() for l in open(ready_file) if l.startswith("endpoint=")][0]
    ctx = zmq.Context()
    c = serve_client.Client(ctx, ep, pb, "onnx_ref")
    x = test_images()
    rows = []
    for k in range(0, N_TEST, 250):
        c.logits(k + 1, x[k : k + 250], "u8")
        env = c.recv()
        if env.WhichOneof("body") != "logit_reply":
            fail(f"worker answered {env.WhichOneof('body')}: {env}")
        t = env.logit_reply.logits
        rows.append(np.frombuffer(t.data, "<f4").reshape(list(t.shape)))
    ctx.destroy(linger=0)
    np.save(out, np.concatenate(rows).astype(np.float64))


def compare(a, b, tol):
    x, y = np.load(a), np.load(b)
    if x.shape != y.shape:
        fail(f"{a} {x.shape} vs {b} {y.shape}")
    d = np.abs(x - y).max()
    am = (x.argmax(1) != y.argmax(1)).sum()
    print(f"max |diff| {d:.3g} over {x.shape[0]} images, argmax differs on {am}")
    if not d <= tol:
        fail(f"{a} vs {b}: max |diff| {d:.3g} > {tol}")
    if am:
        fail(f"{a} vs {b}: argmax differs on {am} images")


def check_export(path, ref, tol):
    import cv2
    import onnx

    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    props = {p.key: p.value for p in m.metadata_props}
    for k in ("edistill.fingerprint", "edistill.input"):
        if k not in props:
            fail(f"{path}: metadata_props lacks {k}: {props}")
    if m.producer_name != "edistill" or not m.producer_version:
        fail(f"{path}: producer {m.producer_name!r} {m.producer_version!r}")
    if not any(o.domain in ("", "ai.onnx") and o.version >= 13 for o in m.opset_import):
        fail(f"{path}: opset below 13")
    d0 = m.graph.input[0].type.tensor_type.shape.dim[0]
    if d0.dim_param == "" or d0.HasField("dim_value"):
        fail(f"{path}: batch dimension is not dynamic: {d0}")
    net = cv2.dnn.readNetFromONNX(path)
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim[1:]]
    x = test_images().astype(np.float32).reshape(N_TEST, *dims)
    outs = []
    for k in range(0, N_TEST, 250):  # two batch sizes through the same net: the batch is dynamic
        net.setInput(x[k : k + 250])
        outs.append(net.forward().astype(np.float64))
    net.setInput(x[:7])
    small = net.forward().astype(np.float64)
    y = np.load(ref)
    got = np.concatenate(outs)
    d = max(np.abs(got - y).max(), np.abs(small - y[:7]).max())
    print(f"check_model ok, {props['edistill.fingerprint']}; OpenCV dnn vs edistill: max |diff| {d:.3g}")
    if not d <= tol:
        fail(f"OpenCV dnn logits differ from edistill's by {d:.3g} > {tol}")
    if (got.argmax(1) != y.argmax(1)).any():
        fail("OpenCV dnn argmax differs from edistill's")


def main():
    a = sys.argv[1:]
    if not a:
        fail(__doc__)
    opt = {a[i]: a[i + 1] for i in range(len(a) - 1) if a[i].startswith("--")}
    cmd = a[0]
    if cmd == "make":
        make_torch(a[1], int(opt["--opset"]), opt["--out"], opt["--ref"], int(opt.get("--steps", 300)),
                   int(opt.get("--seed", 1)))
    elif cmd == "make-all":
        d, steps = a[1], int(opt.get("--steps", 300))
        os.makedirs(d, exist_ok=True)
        for kind, opset in (("mlp", 13), ("mlp_bn", 17), ("cnn", 13), ("cnn", 17)):
            base = os.path.join(d, f"{kind}_{opset}")
            make_torch(kind, opset, base + ".onnx", base + ".npy", steps, 1)
        make_matmul(os.path.join(d, "matmul_11.onnx"), os.path.join(d, "matmul_11.npy"))
        make_bad(os.path.join(d, "bad"), os.path.join(d, "mlp_13.onnx"))
    elif cmd == "make-matmul":
        make_matmul(opt["--out"], opt["--ref"])
    elif cmd == "make-bad":
        make_bad(a[1], opt["--good"])
    elif cmd == "query":
        query(opt["--proto-dir"], opt["--ready-file"], opt["--out"])
    elif cmd == "compare":
        compare(a[1], a[2], float(opt["--tol"]))
    elif cmd == "check-export":
        check_export(a[1], opt["--ref"], float(opt["--tol"]))
    else:
        fail(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
