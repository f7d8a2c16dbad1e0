#!/usr/bin/python3
"""bench/profile_report.py: folds `perf report -n --sort dso,sym` output of the two profiled
distill runs (bench/profile.sh; the workers run has two reports, workers and trainer, whose sample
counts add up) into categories and prints one table: the share of the samples of
each category, in-process and with workers. Writes the shares to --out (JSON)."""
import argparse
import json
import re

# (category, test on (comm, dso, symbol)); the first match wins.
CATEGORIES = [
    ("start-up (model load, fingerprint, init)",
     lambda d, s: re.match(r"ed_(fnv1a64|mlp_init|net_init|rng_normal|model_load|safetensors)", s)
     or re.match(r"__(cos|sin|ieee754_log)", s)),
    ("sgemm kernel", lambda d, s: re.match(r"sgemm_kernel", s)),
    ("sgemm packing (copy)", lambda d, s: re.match(r"sgemm_(on|ot|in|it)copy", s)),
    ("sgemm_beta (C zero/scale)", lambda d, s: s.startswith("sgemm_beta")),
    ("OpenBLAS threads (hand-off, spin, yield)",
     lambda d, s: "openblas" in d and re.search(r"blas_thread|exec_blas|inner_|yield|server", s)
     or s in ("sched_yield", "__sched_yield")),
    ("other OpenBLAS", lambda d, s: "openblas" in d),
    ("Adam (ed_optim_step)", lambda d, s: s.startswith("ed_optim") or "adam" in s),
    ("softmax / loss / targets", lambda d, s: re.match(r"ed_(loss|softmax|log_softmax|combine|"
                                                          r"count_correct|argmax)", s)),
    ("layers: bias, ReLU, masks, dropout (outside the BLAS)",
     lambda d, s: re.match(r"ed_(dense|relu|bias|dropout|net|layer|stack|mlp_forward|"
                           r"mlp_backward)|s_(bias_act|relu|dropout)", s)),
    ("input scaling", lambda d, s: re.match(r"ed_batch_to_float|ed_scale", s)),
    ("copies (memcpy/memmove/memset)", lambda d, s: re.search(r"mem(cpy|move|set)", s)),
    ("protobuf-c", lambda d, s: "protobuf" in d or s.startswith("protobuf_c")),
    ("ZeroMQ, libuv, epoll", lambda d, s: "libzmq" in d or "libuv" in d or "epoll" in s),
    ("data reading (zlib, shuffle)", lambda d, s: "libz" in d or re.match(r"ed_(stream|loader|"
                                                                              r"data)", s)),
    ("kernel", lambda d, s: "kernel" in d),
]
LINE = re.compile(r"^\s*[0-9.]+%\s+(\d+)\s+(\S+)\s+\[[.kgu]\]\s+(.*?)\s*$")


def shares(paths):
    """Category -> % of the samples of the perf reports in paths (sample counts added)."""
    out = {name: 0 for name, _ in CATEGORIES}
    out["other"] = 0
    for path in paths:
        for line in open(path, errors="replace"):
            m = LINE.match(line)
            if not m:
                continue
            n, dso, sym = int(m.group(1)), m.group(2), m.group(3)
            for name, test in CATEGORIES:
                if test(dso, sym):
                    out[name] += n
                    break
            else:
                out["other"] += n
    total = sum(out.values()) or 1
    return {k: round(100.0 * v / total, 2) for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--inproc", nargs="+", required=True)
    ap.add_argument("--workers", nargs="+", required=True)
    ap.add_argument("--metrics", nargs=2, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    res = {"inproc": shares(a.inproc), "workers": shares(a.workers), "samples_per_s": {}}
    for name, path in zip(("inproc", "workers"), a.metrics):
        with open(path) as f:
            res["samples_per_s"][name] = json.loads(f.readline()).get("samples_per_s")
    print("| share of the profiled samples | in-process K=5 | 5 workers + trainer |")
    print("|---|---|---|")
    for k in list(res["inproc"]):
        print("| %s | %.1f%% | %.1f%% |" % (k, res["inproc"][k], res["workers"][k]))
    print("| samples/s of the profiled run (perf on) | %s | %s |" % (
        res["samples_per_s"]["inproc"], res["samples_per_s"]["workers"]))
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
