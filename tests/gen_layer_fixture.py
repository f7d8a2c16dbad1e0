#!/usr/bin/python3
"""Writes tests/data/layer_fixture.txt: reference forward passes of layer stacks, by PyTorch.

Independent reference for common/nn/ed_layer_ops.c and common/nn/ed_net.c (read by
tests/unit/test_layer.c). Each case is an edistill architecture string; this script parses it with
its own small parser into a torch.nn.Sequential (Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d,
Flatten, Linear, ReLU, Dropout, BatchNorm1d/2d), fills the parameters and BN running statistics with
random values, and runs one forward pass in float64 on float32-rounded inputs. Regenerate with
(needs Debian's python3-torch; the python3 first on PATH may lack it):

    /usr/bin/python3 tests/gen_layer_fixture.py

and commit the fixture.

Format (text, '#' lines are comments), per case:
    case <name> <eval|train> <batch> <arch>
    x <n> then n values            input (batch, C, H, W)
    params <n> then n values       edistill parameter block: per layer weight, bias (BN: gamma, beta)
    state <n> then n values        BN running mean, running var per BN layer (before the pass)
    y <n> then n values            output (batch, classes)
    state_after <n> then n values  running statistics after the pass (train: updated by torch)
"""
import os
import re

import numpy as np
import torch

CASES = [
    ("dense", "eval", 3, "12:dense7"),
    ("relu", "eval", 3, "10:relu"),
    ("conv_s1_p0", "eval", 2, "3x7x7:conv4k3,flatten"),
    ("conv_s2_p1", "eval", 2, "2x8x8:conv3k3s2p1,flatten"),
    ("conv_s2_p0", "eval", 2, "4x9x9:conv3k3s2,flatten"),
    ("conv_k1", "eval", 2, "5x4x4:conv6k1,flatten"),
    ("conv_k5_p2", "eval", 2, "1x9x9:conv2k5p2,flatten"),
    ("conv_rect", "eval", 2, "2x5x7:conv3k3p1,flatten"),
    ("maxpool2", "eval", 2, "3x6x6:maxpool2,flatten"),
    ("maxpool3s2", "eval", 2, "2x7x7:maxpool3s2,flatten"),
    ("avgpool2", "eval", 2, "3x6x6:avgpool2,flatten"),
    ("avgpool3s2", "eval", 2, "2x7x7:avgpool3s2,flatten"),
    ("gap", "eval", 3, "4x5x5:gap"),
    ("flatten", "eval", 2, "3x2x4:flatten"),
    ("dropout_eval", "eval", 2, "5:dropout0.5"),
    ("bn2d_eval", "eval", 3, "3x4x4:bn,flatten"),
    ("bn2d_train", "train", 3, "3x4x4:bn,flatten"),
    ("bn1d_eval", "eval", 4, "6:bn"),
    ("bn1d_train", "train", 4, "6:bn"),
    ("cnn_eval", "eval", 3,
     "1x12x12:conv4k3p1,bn,relu,maxpool2,conv6k3p1,bn,relu,avgpool2,flatten,dense8,relu,"
     "dropout0.3,dense5"),
    ("cnn_train", "train", 3,
     "1x12x12:conv4k3p1,bn,relu,maxpool2,conv6k3s2p1,bn,relu,flatten,dense8,relu,dense5"),
    ("cnn_gap", "eval", 2, "2x8x8:conv3k3s2p1,relu,gap,dense4"),
]


def build(arch):
    """Our own reading of the syntax (not the C parser): returns (input shape, nn.Sequential)."""
    head, body = arch.split(":")
    shape = [int(v) for v in head.split("x")]
    if len(shape) == 1:
        shape = [shape[0], 1, 1]
    c, h, w = shape
    flat = h == 1 and w == 1
    layers = []
    for tok in body.split(","):
        m = re.fullmatch(r"conv(\d+)k(\d+)(?:s(\d+))?(?:p(\d+))?", tok)
        if m:
            oc, k = int(m[1]), int(m[2])
            s, p = int(m[3] or 1), int(m[4] or 0)
            layers.append(torch.nn.Conv2d(c, oc, k, stride=s, padding=p))
            c, h, w = oc, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            continue
        m = re.fullmatch(r"(max|avg)pool(\d+)(?:s(\d+))?", tok)
        if m:
            k = int(m[2])
            s = int(m[3] or k)
            cls = torch.nn.MaxPool2d if m[1] == "max" else torch.nn.AvgPool2d
            layers.append(cls(k, stride=s))
            h, w = (h - k) // s + 1, (w - k) // s + 1
            continue
        m = re.fullmatch(r"dense(\d+)", tok)
        if m:
            layers.append(torch.nn.Linear(c, int(m[1])))
            c = int(m[1])
            continue
        m = re.fullmatch(r"dropout([0-9.]+)", tok)
        if m:
            layers.append(torch.nn.Dropout(float(m[1])))
            continue
        if tok == "gap":
            layers.append(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(1)))
            h = w = 1
            flat = True
        elif tok == "flatten":
            layers.append(torch.nn.Flatten(1))
            c, h, w = c * h * w, 1, 1
            flat = True
        elif tok == "relu":
            layers.append(torch.nn.ReLU())
        elif tok == "bn":
            layers.append(torch.nn.BatchNorm1d(c) if flat else torch.nn.BatchNorm2d(c))
        else:
            raise ValueError(tok)
    return shape, torch.nn.Sequential(*layers)


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def fill(model, rng):
    """Random float32-representable parameters and running statistics; returns (params, state)."""
    params, state = [], []
    for mod in model.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            fan = mod.weight[0].numel()
            mod.weight.data = torch.tensor(f32(rng.normal(0, 1.0 / np.sqrt(fan), mod.weight.shape)))
            mod.bias.data = torch.tensor(f32(rng.normal(0, 0.3, mod.bias.shape)))
            params += [mod.weight.data, mod.bias.data]
        elif isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = mod.num_features
            mod.weight.data = torch.tensor(f32(rng.uniform(0.5, 1.5, n)))
            mod.bias.data = torch.tensor(f32(rng.normal(0, 0.3, n)))
            mod.running_mean = torch.tensor(f32(rng.normal(0, 0.5, n)))
            mod.running_var = torch.tensor(f32(rng.uniform(0.5, 2.0, n)))
            params += [mod.weight.data, mod.bias.data]
            state += [mod.running_mean, mod.running_var]
    cat = lambda ts: np.concatenate([t.numpy().ravel() for t in ts]) if ts else np.zeros(0)
    return cat(params), cat(state)


def running(model):
    ts = []
    for mod in model.modules():
        if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            ts += [mod.running_mean, mod.running_var]
    return np.concatenate([t.numpy().ravel() for t in ts]) if ts else np.zeros(0)


def emit(lines, tag, a):
    a = np.asarray(a, dtype=np.float64).ravel()
    lines.append(f"{tag} {a.size}")
    for i in range(0, a.size, 8):
        lines.append(" ".join(f"{v:.17g}" for v in a[i:i + 8]))


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(20261203)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "layer_fixture.txt")
    lines = ["# generated by tests/gen_layer_fixture.py; do not edit"]
    for name, mode, batch, arch in CASES:
        shape, model = build(arch)
        model = model.double()
        params, state = fill(model, rng)
        dims = [shape[0]] if shape[1:] == [1, 1] else shape  # flat inputs are (batch, C)
        x = f32(rng.normal(0, 1, [batch] + dims))
        model.train(mode == "train")
        with torch.no_grad():
            y = model(torch.tensor(x)).numpy()
        lines.append(f"case {name} {mode} {batch} {arch}")
        emit(lines, "x", x)
        emit(lines, "params", params)
        emit(lines, "state", state)
        emit(lines, "y", y)
        emit(lines, "state_after", running(model))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
