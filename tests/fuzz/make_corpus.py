#!/usr/bin/python3
"""make_corpus.py: writes the seed corpora of the fuzz targets under tests/fuzz/corpus/<target>/.

Small valid (and a few nearly valid) inputs, built here independently of the C code: protobuf frames
encoded by hand from proto/edistill.proto's field numbers, IDX / .npy / CSV files (raw and gzip) and
tiny edistill model files written by tests/e2e/serve_client.py's make_model. Deterministic; rerun and
commit the output when the formats change. Usage: /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import gzip
import io
import os
import struct
import sys

import numpy as np

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import serve_client  # noqa: E402  (make_model)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- protobuf, by hand -------------------------------------------------------------------------
def varint(v):
    v &= (1 << 64) - 1  # negative int32 values go out as 10-byte two's complement varints
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(num, v):
    return varint(num << 3) + varint(v)


def f_bytes(num, b):
    return varint((num << 3) | 2) + varint(len(b)) + b


def tensor(dtype, shape, data):
    packed = b"".join(varint(s) for s in shape)
    return f_varint(1, dtype) + f_bytes(2, packed) + f_bytes(3, data)


def envelope(body_field, body, version=1):
    return f_varint(1, version) + f_bytes(body_field, body)


F32, U8 = 1, 2


def wire_corpus():
    t = "fuzz_wire_decode"
    write(t, "info_request", envelope(2, f_varint(1, 42)))
    write(t, "logit_request_u8", envelope(4, f_varint(1, 7) + f_bytes(2, tensor(U8, [2, 4], bytes(range(8))))))
    x = np.arange(3, dtype="<f4").tobytes()
    write(t, "logit_request_f32", envelope(4, f_varint(1, 8) + f_bytes(2, tensor(F32, [1, 3], x))))
    logits = np.linspace(-1, 1, 6, dtype="<f4").tobytes()
    reply = (f_varint(1, 9) + f_bytes(2, tensor(F32, [2, 3], logits)) + f_bytes(3, b"m1")
             + f_varint(4, 1234) + f_bytes(5, b"fnv1a64:0123456789abcdef"))
    write(t, "logit_reply", envelope(5, reply))
    info = (f_varint(1, 1) + f_varint(2, 1) + f_bytes(3, b"member-0") + f_bytes(4, b"fnv1a64:0123456789abcdef")
            + f_varint(5, 784) + f_varint(6, 10) + f_bytes(7, b"784,64,10") + f_varint(8, 1)
            + f_bytes(9, b"host:123") + f_varint(10, 256))
    write(t, "member_info", envelope(3, info))
    write(t, "error_reply", envelope(6, f_varint(1, 5) + f_varint(2, -11) + f_bytes(3, b"batch too big")))
    write(t, "wrong_version", envelope(2, f_varint(1, 1), version=2))
    write(t, "shape_mismatch", envelope(4, f_varint(1, 3) + f_bytes(2, tensor(U8, [2, 4], bytes(7)))))
    write(t, "huge_length", f_varint(1, 1) + varint((4 << 3) | 2) + varint(0xFFFFFFF0) + b"\x08\x01")


# ---- data files --------------------------------------------------------------------------------
def idx(arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.tobytes()


def npy(arr, version=(1, 0)):
    bio = io.BytesIO()
    np.lib.format.write_array(bio, arr, version=version)
    return bio.getvalue()


def gz(data):
    bio = io.BytesIO()
    with gzip.GzipFile(fileobj=bio, mode="wb", mtime=0) as f:
        f.write(data)
    return bio.getvalue()


def data_corpus():
    t = "fuzz_data_reader"
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(5, 3, 3), dtype=np.uint8)
    write(t, "images.idx", idx(img))
    write(t, "images.idx.gz", gz(idx(img)))
    write(t, "labels.idx", idx(np.array([0, 1, 2, 1, 0], dtype=np.uint8)))
    write(t, "u8.npy", npy(img.reshape(5, 9)))
    write(t, "f32.npy", npy(rng.random((4, 3), dtype=np.float32)))
    write(t, "f32_be.npy", npy(rng.random((3, 2)).astype(">f4")))
    write(t, "labels_i8.npy", npy(np.array([3, 1, 4, 1], dtype="<i8")))
    write(t, "labels_i4_v2.npy", npy(np.array([2, 7, 1], dtype="<i4"), version=(2, 0)))
    write(t, "u1_1d.npy.gz", gz(npy(np.array([1, 2, 3, 4], dtype=np.uint8))))
    write(t, "samples.csv", b"0.5,1,2\n3,4.25,-5\n1e3,0,7\n")
    write(t, "labels.csv", b"1\n0\n2\n2\n")
    write(t, "truncated.idx", idx(img)[:30])


# ---- model files -------------------------------------------------------------------------------
def cnn_model():
    """A format_version 2 layer-stack file (conv, bn, relu, maxpool, flatten, dense), by hand."""
    import json

    rng = np.random.default_rng(12)
    arch = "2x4x4:conv3k3p1,bn,relu,maxpool2,flatten,dense2"
    tensors = [("layers.0.weight", (3, 2, 3, 3)), ("layers.0.bias", (3,)), ("layers.1.weight", (3,)),
               ("layers.1.bias", (3,)), ("layers.1.running_mean", (3,)), ("layers.1.running_var", (3,)),
               ("layers.5.weight", (2, 12)), ("layers.5.bias", (2,))]
    blobs, header, off, h = [], {}, 0, 0xCBF29CE484222325
    for name, shape in tensors:
        a = rng.uniform(0.5, 1.5, shape).astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(a)]}
        off += len(a)
        blobs.append(a)
        for b in a:
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    header["__metadata__"] = {"format": "edistill-mlp", "format_version": "2", "arch": arch,
                              "classes": "2", "input_scale": "0.00392156886", "input_offset": "0",
                              "member": "cnn", "provenance": "{}", "layers": "[]",
                              "fingerprint": f"fnv1a64:{h:016x}"}
    hdr = json.dumps(header, separators=(",", ":")).encode()
    hdr += b" " * (-len(hdr) % 8)
    return struct.pack("<Q", len(hdr)) + hdr + b"".join(blobs)


def model_corpus():
    t = "fuzz_model_file"
    d = os.path.join(HERE, "corpus", t)
    os.makedirs(d, exist_ok=True)
    serve_client.make_model(os.path.join(d, "mlp_4_3_2.safetensors"), [4, 3, 2], seed=1, member="m")
    serve_client.make_model(os.path.join(d, "mlp_3_2.safetensors"), [3, 2], seed=2, member="s")
    serve_client.make_model(os.path.join(d, "mlp_2_2_2_2.safetensors"), [2, 2, 2, 2], seed=3, member="")
    write(t, "cnn_bn.safetensors", cnn_model())
    # A plain safetensors file that is not an edistill model (other dtypes, no metadata).
    hdr = b'{"a":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"b":{"dtype":"U8","shape":[1,3],"data_offsets":[16,19]}}'
    write(t, "plain.safetensors", struct.pack("<Q", len(hdr)) + hdr + bytes(19))

# ---- soft-target stores (docs/TARGET_STORE.md) --------------------------------------------------
def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & ((1 << 64) - 1)
    return h


def store_input(index, logits, indices=b""):
    """fuzz_target_store's input: u16 length + index JSON, u32 length + logits, indices."""
    return struct.pack("<H", len(index)) + index + struct.pack("<I", len(logits)) + logits + indices


def store_index(n, members, classes, dtype, top_k, arrays):
    import json
    idx = {"format": "edistill-targets", "format_version": 1, "shard": 0, "shards": 1,
           "start": 0, "end": n, "classes": classes, "dtype": dtype, "top_k": top_k,
           "total_samples": n,
           "members": [{"name": f"m{k}", "fingerprint": f"fnv1a64:{k + 1:016x}"} for k in range(members)],
           "inputs": [{"path": "x.npy", "size": 100, "head_fnv1a64": "%016x" % 1,
                       "tail_fnv1a64": "%016x" % 2, "start": 0, "end": n, "offset": 0}],
           "arrays": {}}
    for name, (arr, raw) in arrays.items():
        idx["arrays"][name] = {"file": f"shard-00000-of-00001.{name}.npy", "dtype": arr.dtype.str,
                               "shape": list(arr.shape), "header_bytes": len(raw) - arr.nbytes,
                               "fnv1a64": "%016x" % fnv1a64(arr.tobytes())}
    return json.dumps(idx).encode()


def store_corpus():
    t = "fuzz_target_store"
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((4, 2, 3)) * 3).astype("<f2")
    raw = npy(z)
    write(t, "f16.store", store_input(store_index(4, 2, 3, "float16", 0, {"logits": (z, raw)}), raw))
    v = (rng.standard_normal((3, 1, 3)) * 3).astype("<f4")
    i = np.array([[[4, 1]], [[0, 2]], [[3, 3]]], dtype="<u2")
    rv, ri = npy(v), npy(i)
    idx = store_index(3, 1, 5, "float32", 2, {"logits": (v, rv), "indices": (i, ri)})
    write(t, "topk.store", store_input(idx, rv, ri))
    write(t, "truncated.store", store_input(store_index(4, 2, 3, "float16", 0, {"logits": (z, raw)}), raw[:-3]))
    write(t, "bad_index.store", store_input(b'{"format": "edistill-targets", "format_version": 1}', raw))
    # A store being filled in any order (fuzz_target_store's fixed fill layout): rows 1 and 3 filled.
    import json
    fill = json.loads(store_index(4, 2, 3, "float32", 0, {}))
    fill["format"] = "edistill-targets-fill"
    del fill["arrays"]
    f = np.full((4, 2, 3), np.nan, dtype="<f4")
    f[1] = rng.standard_normal((2, 3))
    f[3] = rng.standard_normal((2, 3))
    f[3, 1, 2] = np.nan  # a torn row: unfilled
    write(t, "fill.store", store_input(json.dumps(fill).encode(), npy(f)))
    write(t, "fill_short.store", store_input(json.dumps(fill).encode(), npy(f)[:-5]))


def onnx_corpus():
    """Tiny ONNX models (python3-onnx's helper, not our writer) covering every accepted op and
    encoding, plus nearly valid ones (each refused for one reason)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    t = "fuzz_onnx_read"
    rng = np.random.default_rng(7)

    def f32(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 0.5, shape).astype(np.float32), name)

    def model(nodes, inits, in_shape, out_shape, opset=13):
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()

    bn = [f32("s", 3), f32("bb", 3), f32("mu", 3), numpy_helper.from_array(np.full(3, 0.7, np.float32), "var")]
    mlp = model([helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1, alpha=0.5),
                 helper.make_node("BatchNormalization", ["h", "s", "bb", "mu", "var"], ["hb"], name="bn"),
                 helper.make_node("Relu", ["hb"], ["r"], name="relu"),
                 helper.make_node("Dropout", ["r"], ["d"], name="drop"),
                 helper.make_node("MatMul", ["d", "w2"], ["m"], name="mm"),
                 helper.make_node("Add", ["m", "b2"], ["z"], name="bias"),
                 helper.make_node("Softmax", ["z"], ["y"], name="sm")],
                [f32("w1", 3, 4), f32("b1", 3), f32("w2", 3, 2), f32("b2", 2)] + bn, ["N", 4], ["N", 2])
    write(t, "mlp_gemm_bn_matmul", mlp)
    write(t, "mlp_truncated", mlp[: len(mlp) * 2 // 3])
    k = [helper.make_node("Constant", [], ["k"], name="c", value=numpy_helper.from_array(np.float32(2.0)))]
    write(t, "scaled_flatten", model(
        k + [helper.make_node("Mul", ["x", "k"], ["xs"], name="scale"),
             helper.make_node("Sub", ["xs", "k"], ["xo"], name="offset"),
             helper.make_node("Flatten", ["xo"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w"], ["y"], name="fc")],
        [f32("w", 8, 2)], ["N", 2, 2, 2], ["N", 2], opset=11))
    shape = numpy_helper.from_array(np.array([0, -1], np.int64), "shape")
    cbn = [f32("s", 2), f32("bb", 2), f32("mu", 2), numpy_helper.from_array(np.full(2, 0.5, np.float32), "var")]
    write(t, "cnn", model(
        [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["c", "s", "bb", "mu", "var"], ["cn"], name="bn", epsilon=1e-3),
         helper.make_node("Relu", ["cn"], ["r"], name="relu"),
         helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Pad", ["p", "zp"], ["pp"], name="pad"),
         helper.make_node("AveragePool", ["pp"], ["a"], name="avg", kernel_shape=[2, 2], pads=[0, 0, 1, 1],
                          count_include_pad=1),
         helper.make_node("BatchNormalization", ["a", "s", "bb", "mu", "var"], ["an"], name="bn2"),
         helper.make_node("GlobalAveragePool", ["an"], ["gp"], name="gap"),
         helper.make_node("Reshape", ["gp", "shape"], ["f"], name="reshape"),
         helper.make_node("Gemm", ["f", "w", "b"], ["y"], name="fc", transB=1)],
        [f32("cw", 2, 1, 3, 3), f32("cb", 2), f32("w", 3, 2), f32("b", 3), shape,
         numpy_helper.from_array(np.zeros(8, np.int64), "zp")] + cbn, ["N", 1, 6, 6], ["N", 3], opset=17))
    w = f32("w", 2, 4)
    w.raw_data = w.raw_data[:-4]
    write(t, "bad_initializer", model([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)], [w],
                                      ["N", 4], ["N", 2]))
    write(t, "unsupported_op", model([helper.make_node("Sigmoid", ["x"], ["y"], name="sig")], [], ["N", 4], ["N", 4]))
    write(t, "branching", model([helper.make_node("Relu", ["x"], ["r"], name="r"),
                                 helper.make_node("Add", ["x", "r"], ["y"], name="res")], [], ["N", 4], ["N", 4]))
    write(t, "opset_18", model([helper.make_node("Relu", ["x"], ["y"], name="r")], [], ["N", 4], ["N", 4], opset=18))


if __name__ == "__main__":
    wire_corpus()
    data_corpus()
    model_corpus()
    store_corpus()
    onnx_corpus()
