#!/usr/bin/python3
"""PyTorch reference for `make bench`: the same workload as edistill, on CPU, tuned.

Run by bench/run.sh with /usr/bin/python3 (Debian's python3-torch), 2 threads and
OMP_WAIT_POLICY=PASSIVE, OPENBLAS_CORETYPE as edistill picks it (torch's BLAS is the same OpenBLAS).

  distillation epoch: 60,000 Fashion-MNIST images (the first 3,000 labeled, the rest unlabeled),
    batch 128; the 5 members (edistill model files, read with json + numpy) run on the fly under
    no_grad; q = mean_k softmax(z_k / T); student 784,800,800,10 trained on
    alpha * T^2 * CE(q, softmax(s / T)) + (1 - alpha) * CE(y, softmax(s)) (hard term over the
    labeled rows), Adam lr 1e-3, T = 4, alpha = 0.9.
  member epoch: one 784,1200,1200,10 member trained on the 60,000 labels, dropout 0.1 (input) /
    0.3 (hidden), Adam lr 1e-3, batch 128.
  CNN member epoch (--cnn-arch ARCH --cnn-samples N): the reference CNN member, built from the same
    edistill architecture string by tests/gen_layer_fixture.py's parser into torch.nn.Sequential,
    trained on N labeled images, Adam lr 1e-3, batch 128 (the pytorch_cnn_member_epoch row).

Prints one JSON line with samples/s of each.
"""
import argparse
import json
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F


def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(dims[0], -1) if ndim > 1 else data


def read_model(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = raw[8 + n :]
    arch = [int(w) for w in meta["arch"].split(",")]
    layers = []
    for l in range(len(arch) - 1):
        ts = []
        for kind in ("weight", "bias"):
            e = header[f"layers.{l}.{kind}"]
            a, b = e["data_offsets"]
            ts.append(torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(e["shape"]).copy()))
        layers.append(ts)
    return arch, layers, float(meta.get("input_scale", 1.0 / 255.0)), float(meta.get("input_offset", 0.0))


class MLP(torch.nn.Module):
    def __init__(self, arch, p_in=0.0, p_hidden=0.0):
        super().__init__()
        self.linears = torch.nn.ModuleList(
            torch.nn.Linear(arch[i], arch[i + 1]) for i in range(len(arch) - 1))
        self.p_in, self.p_hidden = p_in, p_hidden

    def forward(self, x):
        if self.p_in > 0:
            x = F.dropout(x, self.p_in, self.training)
        for i, lin in enumerate(self.linears):
            x = lin(x)
            if i + 1 < len(self.linears):
                x = F.relu(x)
                if self.p_hidden > 0:
                    x = F.dropout(x, self.p_hidden, self.training)
        return x


def teacher_from_file(path):
    arch, layers, scale, offset = read_model(path)
    m = MLP(arch)
    with torch.no_grad():
        for lin, (w, b) in zip(m.linears, layers):
            lin.weight.copy_(w)
            lin.bias.copy_(b)
    m.eval()
    return m, scale, offset


def distill_epoch(teachers, x_all, y_all, n_labeled, batch, T, alpha, seed):
    torch.manual_seed(seed)
    student = MLP([784, 800, 800, 10])
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    n = x_all.shape[0]
    y = np.where(np.arange(n) < n_labeled, y_all.astype(np.int64), -1)
    order = np.random.default_rng(seed).permutation(n)
    t0 = time.perf_counter()
    for s in range(0, n, batch):
        idx = order[s : s + batch]
        xb = torch.from_numpy(x_all[idx]).float()
        yb = torch.from_numpy(y[idx])
        with torch.no_grad():
            q = None
            for m, scale, offset in teachers:
                p = F.softmax(m(xb * scale + offset) / T, dim=1)
                q = p if q is None else q + p
            q /= len(teachers)
        z = student(xb * (1.0 / 255.0))
        soft = -(q * F.log_softmax(z / T, dim=1)).sum(dim=1).mean() * (T * T)
        lab = yb >= 0
        loss = alpha * soft
        if bool(lab.any()):
            loss = loss + (1 - alpha) * F.cross_entropy(z[lab], yb[lab])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return n / (time.perf_counter() - t0)


def member_epoch(x_all, y_all, batch, seed):
    torch.manual_seed(seed)
    model = MLP([784, 1200, 1200, 10], 0.1, 0.3)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = x_all.shape[0]
    order = np.random.default_rng(seed).permutation(n)
    yt = y_all.astype(np.int64)
    t0 = time.perf_counter()
    for s in range(0, n, batch):
        idx = order[s : s + batch]
        xb = torch.from_numpy(x_all[idx]).float() * (1.0 / 255.0)
        yb = torch.from_numpy(yt[idx])
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return n / (time.perf_counter() - t0)


def cnn_member_epoch(arch, x_all, y_all, batch, seed):
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from gen_layer_fixture import build

    torch.manual_seed(seed)
    shape, m = build(arch)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    n = x_all.shape[0]
    order = np.random.default_rng(seed).permutation(n)
    t0 = time.perf_counter()
    for s in range(0, n, batch):
        idx = order[s : s + batch]
        xb = torch.from_numpy(x_all[idx]).float().mul_(1.0 / 255.0).reshape([len(idx)] + shape)
        loss = F.cross_entropy(m(xb), torch.from_numpy(y_all[idx].astype(np.int64)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="", help="comma-separated member model files")
    ap.add_argument("--images", required=True, help="raw IDX images")
    ap.add_argument("--labels", required=True, help="raw IDX labels")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--labeled", type=int, default=3000)
    ap.add_argument("--samples", type=int, default=0, help="use the first N images (0: all)")
    ap.add_argument("--cnn-arch", default="", help="edistill arch of the CNN member (CNN row only)")
    ap.add_argument("--cnn-samples", type=int, default=12800, help="images of the CNN member epoch")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = read_idx(args.images)
    y = read_idx(args.labels)
    if args.cnn_arch:  # the CNN row alone
        c = cnn_member_epoch(args.cnn_arch, x[: args.cnn_samples], y[: args.cnn_samples], 128, 1)
        print(json.dumps({"torch_version": torch.__version__, "threads": torch.get_num_threads(),
                          "arch": args.cnn_arch, "cnn_samples_per_s": round(c, 1)}), flush=True)
        return
    if args.samples > 0:
        x, y = x[: args.samples], y[: args.samples]
    teachers = [teacher_from_file(p) for p in args.models.split(",")]
    d = distill_epoch(teachers, x, y, args.labeled, 128, 4.0, 0.9, 1)
    m = member_epoch(x, y, 128, 1)
    print(json.dumps({"torch_version": torch.__version__, "threads": torch.get_num_threads(),
                      "members": len(teachers), "distill_samples_per_s": round(d, 1),
                      "member_samples_per_s": round(m, 1)}), flush=True)


if __name__ == "__main__":
    main()
