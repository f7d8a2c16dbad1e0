#!/usr/bin/python3
"""Collects bench/run.sh's raw measurements into bench/results.json and prints the table.

Every key of results.json is an object with the measured values, `ratio` and `goal` (plus `met`
where a goal applies). Medians are over the repeats of one run; ratios are of medians.
"""
import argparse
import json
import os
import statistics
import sys


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def one(path):
    rows = lines(path)
    return rows[0] if rows else None


def med(values):
    return statistics.median(values) if values else None


def rnd(x, n=4):
    return None if x is None else round(x, n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--torch-note", default="")
    ap.add_argument("--threads", default="")
    ap.add_argument("--seconds", type=float, default=0)
    a = ap.parse_args()
    R = lambda name: os.path.join(a.raw, name)
    res = {}
    rows = []  # (key, measured, ratio, goal, met)

    f = one(R("forward.json"))
    if f:
        res["forward_vs_sgemm"] = {
            "arch": f["arch"], "batch": f["batch"], "blas": f["blas"], "repeats": f["repeats"],
            "forward_gflops": f["forward_gflops"], "sgemm_gflops": f["sgemm_gflops"],
            "ratio": f["ratio"], "goal": 0.85, "met": f["ratio"] >= 0.85}
        rows.append(("forward_vs_sgemm", f"{f['forward_gflops']:.1f} vs {f['sgemm_gflops']:.1f} GFLOP/s",
                     f["ratio"], ">= 0.85", f["ratio"] >= 0.85))

    c = one(R("conv.json"))
    if c:
        res["conv_forward_vs_sgemm"] = {
            "arch": c["arch"], "batch": c["batch"], "chunk": c["chunk"], "blas": c["blas"],
            "repeats": c["repeats"], "conv_gflops": c["conv_gflops"], "sgemm_gflops": c["sgemm_gflops"],
            "ratio": c["ratio"], "ratio_is": "conv forward / its sgemm calls", "goal": 0.75,
            "met": c["ratio"] >= 0.75}
        rows.append(("conv_forward_vs_sgemm", f"{c['conv_gflops']:.1f} vs {c['sgemm_gflops']:.1f} GFLOP/s",
                     c["ratio"], ">= 0.75", c["ratio"] >= 0.75))

    s = one(R("step.json"))
    if s:
        res["student_step_vs_sgemm"] = {
            "arch": s["arch"], "batch": s["batch"], "optimizer": "adam", "blas": s["blas"],
            "repeats": s["repeats"], "step_ms": s["step_ms"], "sgemm_ms": s["sgemm_ms"],
            "step_gflops": s["step_gflops"], "sgemm_gflops": s["sgemm_gflops"],
            "ratio": s["ratio"], "goal": 0.70, "met": s["ratio"] >= 0.70}
        rows.append(("student_step_vs_sgemm", f"{s['step_gflops']:.1f} vs {s['sgemm_gflops']:.1f} GFLOP/s",
                     s["ratio"], ">= 0.70", s["ratio"] >= 0.70))

    q = one(R("request.json"))
    if q:
        b = q["batches"]
        r128 = b.get("128", {}).get("ratio_p50")
        res["request_overhead"] = {
            "arch": q["arch"], "transport": "tcp loopback", "iters": q["iters"], "batches": b,
            "ratio": r128, "ratio_at": "batch 128, p50 remote / p50 in-process", "goal": 1.10,
            "met": r128 is not None and r128 <= 1.10}
        for n in sorted(b, key=int):
            e = b[n]
            rows.append((f"request_overhead b={n}",
                         f"p50 {e['remote_ms']['p50']:.2f} vs {e['inprocess_ms']['p50']:.2f} ms, "
                         f"p99 {e['remote_ms']['p99']:.2f} vs {e['inprocess_ms']['p99']:.2f}",
                         e["ratio_p50"], "<= 1.10" if n == "128" else "", (e["ratio_p50"] <= 1.10) if n == "128" else None))

    d = {}
    for K in (1, 3, 5):
        ri = [r["samples_per_s"] for r in lines(R(f"inproc_k{K}.jsonl"))]
        rr = [r["samples_per_s"] for r in lines(R(f"remote_k{K}.jsonl"))]
        if not ri or not rr:
            continue
        mi, mr = med(ri), med(rr)
        d[str(K)] = {"inprocess_samples_per_s": rnd(mi, 1), "remote_samples_per_s": rnd(mr, 1),
                     "inprocess_runs": ri, "remote_runs": rr, "ratio": rnd(mr / mi)}
        rows.append((f"distill_remote_vs_inprocess K={K}", f"{mr:.0f} vs {mi:.0f} samples/s",
                     mr / mi, ">= 0.90", mr / mi >= 0.90))
    if d:
        worst = min(v["ratio"] for v in d.values())
        res["distill_remote_vs_inprocess"] = {
            "members": d, "threads": a.threads, "ratio": worst, "ratio_is": "the smallest over K",
            "goal": 0.90, "met": worst >= 0.90}

    # distill_vs_limit: the K = 5 distillation rates against the BLAS limit of their step, each at
    # its own thread layout: 2 OpenBLAS threads in one process, or 2 x 1 thread (workers and their
    # trainer; in-process members on the teacher thread: the runs' metrics say teacher_thread).
    # The limits are measured once per repeat, after that repeat's runs: each run is divided by its
    # repeat's limit and the row gives the median of those ratios (and the medians of both sides).
    l2, la, lb = lines(R("limit_2t.jsonl")), lines(R("limit_1t_a.jsonl")), lines(R("limit_1t_b.jsonl"))
    if l2 and la and lb:
        per_repeat = {"2 threads": [x["limit_samples_per_s"] for x in l2],
                      "2 x 1 thread": [x["limit_samples_per_s"] + y["limit_samples_per_s"]
                                       for x, y in zip(la, lb)]}
        gflops = {"2 threads": [x["sgemm_gflops"] for x in l2],
                  "2 x 1 thread": [x["sgemm_gflops"] + y["sgemm_gflops"] for x, y in zip(la, lb)]}
        dl = {"gemm_mflop_per_sample": l2[0]["gemm_mflop_per_sample"], "blas": l2[0]["blas"], "goal": 0.90,
              "limits": {k: {"limit_samples_per_s": rnd(med(v), 1), "runs": v,
                             "sgemm_gflops": rnd(med(gflops[k]), 2)} for k, v in per_repeat.items()}}
        # The goal is on in-process members at the defaults (2 threads: --inprocess-overlap auto runs
        # them on the teacher thread) and on workers at their throughput setting (--inflight 8
        # --batches-per-request 2, bench/run.sh GROUPED). The in-process run without the teacher
        # thread (--inprocess-overlap off) and the workers at the defaults are reported beside
        # them, without a goal.
        rates = {}
        for key, label, fname, goal in (("inprocess_teacher_thread", "in-process, teacher thread",
                                         "inproc_k5_on.jsonl", True),
                                        ("inprocess_no_teacher_thread", "in-process, no teacher thread",
                                         "inproc_k5_off.jsonl", False),
                                        ("workers_grouped",
                                         "workers, --inflight 8 --batches-per-request 2",
                                         "limit_remote_k5_grouped.jsonl", True),
                                        ("workers", "workers, defaults", "limit_remote_k5.jsonl", False)):
            runs = lines(R(fname))
            if not runs:
                continue
            runs_rates = [r["samples_per_s"] for r in runs]
            rate = med(runs_rates)
            remote = key.startswith("workers")
            layout = ("2 x 1 thread" if remote or all(r.get("teacher_thread") for r in runs)
                      else "2 threads")
            lims = per_repeat[layout]
            ratios = [x / y for x, y in zip(runs_rates, lims)]
            ratio = med(ratios)
            rates[key] = (rate, runs_rates)
            dl[key] = {"samples_per_s": rnd(rate, 1), "runs": runs_rates,
                       "limit_samples_per_s": rnd(med(lims), 1), "threads": layout,
                       "teacher_thread": not remote and layout == "2 x 1 thread",
                       "steps": runs[0].get("step"), "run_ratios": [rnd(x) for x in ratios],
                       "ratio": rnd(ratio), "goal": 0.90 if goal else None}
            rows.append((f"distill_vs_limit K=5 {label}",
                         f"{rate:.0f} vs {med(lims):.0f} samples/s ({dl['gemm_mflop_per_sample']:.1f} MFLOP/sample, {layout})",
                         ratio, ">= 0.90" if goal else "", ratio >= 0.90 if goal else None))
        goals = [v["ratio"] for v in dl.values() if isinstance(v, dict) and v.get("goal")]
        if goals:
            dl["ratio"] = min(goals)
            dl["ratio_is"] = ("the smaller of the in-process (teacher thread) and grouped workers rows; each the median "
                              "over repeats of a run's samples/s / that repeat's limit at the run's thread layout")
            dl["met"] = dl["ratio"] >= 0.90
            res["distill_vs_limit"] = dl
        if "inprocess_teacher_thread" in rates and "inprocess_no_teacher_thread" in rates:
            on, off = rates["inprocess_teacher_thread"], rates["inprocess_no_teacher_thread"]
            res["inprocess_teacher_thread_vs_off"] = {
                "on_samples_per_s": rnd(on[0], 1), "off_samples_per_s": rnd(off[0], 1),
                "on_runs": on[1], "off_runs": off[1], "members": 5,
                "setup": "--inprocess-overlap on (2 threads x 1 OpenBLAS thread) vs off (--blas-threads 2), "
                         "runs alternating",
                "ratio": rnd(on[0] / off[0]), "ratio_is": "on / off",
                "goal": None, "note": "the default (auto) should be the faster"}
            rows.append(("inprocess_teacher_thread_vs_off K=5",
                         f"{on[0]:.0f} vs {off[0]:.0f} samples/s (on vs off)", on[0] / off[0], "", None))

    off = [r["samples_per_s"] for r in lines(R("metrics_off.jsonl"))]
    on = [r["samples_per_s"] for r in lines(R("metrics_on.jsonl"))]
    if off and on:
        ratio = med(on) / med(off)
        res["metrics_overhead"] = {
            "on_samples_per_s": rnd(med(on), 1), "off_samples_per_s": rnd(med(off), 1),
            "on_runs": on, "off_runs": off, "members": 3,
            "setup": "--metrics-listen on 3 workers and the trainer, all scraped every second",
            "ratio": rnd(ratio), "ratio_is": "on / off", "goal": 0.98, "met": ratio >= 0.98}
        rows.append(("metrics_overhead K=3", f"{med(on):.0f} vs {med(off):.0f} samples/s (on vs off)",
                     ratio, ">= 0.98", ratio >= 0.98))

    m1, m10 = one(R("memory_x1.jsonl")), one(R("memory_x10.jsonl"))
    if m1 and m10:
        ratio = m10["max_rss_mib"] / m1["max_rss_mib"]
        res["memory_vs_data_size"] = {
            "samples_1x": m1["samples"], "samples_10x": m10["samples"],
            "max_rss_mib_1x": m1["max_rss_mib"], "max_rss_mib_10x": m10["max_rss_mib"],
            "ratio": rnd(ratio), "goal": 1.05, "met": ratio <= 1.05}
        rows.append(("memory_vs_data_size", f"{m10['max_rss_mib']:.1f} vs {m1['max_rss_mib']:.1f} MiB "
                     f"({m10['samples']} vs {m1['samples']} samples)", ratio, "<= 1.05", ratio <= 1.05))

    o = one(R("onnx_pair.json"))
    if o:
        res["onnx_serve_vs_native"] = {
            "batch": o["batch"], "iters": o["iters"], "native_logits_per_s": o["native_logits_per_s"],
            "onnx_logits_per_s": o["onnx_logits_per_s"], "max_abs_diff": o["max_abs_diff"],
            "ratio": o["ratio"], "ratio_is": "onnx / native logits/s", "goal": 0.95, "met": o["ratio"] >= 0.95}
        rows.append(("onnx_serve_vs_native", f"{o['onnx_logits_per_s']:.0f} vs {o['native_logits_per_s']:.0f} "
                     f"logits/s (batch {o['batch']})", o["ratio"], ">= 0.95", o["ratio"] >= 0.95))

    u8 = lines(R("remote_k1.jsonl"))
    f32 = one(R("wire_f32.jsonl"))
    if u8 and f32:
        def per(r):
            n = r["samples"] * r["members"]
            return r["bytes_sent"] / n, r["bytes_received"] / n
        us, ur = per(u8[0])
        fs, fr = per(f32)
        res["wire_bytes_per_sample"] = {
            "u8": {"sent": rnd(us, 1), "received": rnd(ur, 1)},
            "f32": {"sent": rnd(fs, 1), "received": rnd(fr, 1)},
            "ratio": rnd((us + ur) / (fs + fr)), "ratio_is": "u8 total / f32 total", "goal": None}
        rows.append(("wire_bytes_per_sample", f"u8 {us:.0f}+{ur:.0f} B, f32 {fs:.0f}+{fr:.0f} B "
                     "(sent+received per sample per member)", (us + ur) / (fs + fr), "", None))

    live = [r["samples_per_s"] for r in lines(R("store_live.jsonl"))]
    cached = [r["samples_per_s"] for r in lines(R("store_cached.jsonl"))]
    if live and cached:
        ratio = med(cached) / med(live)
        res["cached_epoch_vs_live"] = {
            "cached_samples_per_s": rnd(med(cached), 1), "live_samples_per_s": rnd(med(live), 1),
            "cached_runs": cached, "live_runs": live, "members": 5, "store": "float16",
            "ratio": rnd(ratio), "goal": 3.0, "met": ratio >= 3.0}
        rows.append(("cached_epoch_vs_live", f"{med(cached):.0f} vs {med(live):.0f} samples/s (5 members)",
                     ratio, ">= 3.0", ratio >= 3.0))
    lr = [r["samples_per_s"] for r in lines(R("store_label_remote.jsonl"))]
    li = [r["samples_per_s"] for r in lines(R("store_label_inproc.jsonl"))]
    if lr and li:
        ratio = med(lr) / med(li)
        res["label_vs_forward"] = {
            "remote_samples_per_s": rnd(med(lr), 1), "inprocess_samples_per_s": rnd(med(li), 1),
            "remote_runs": lr, "inprocess_runs": li, "members": 5,
            "ratio": rnd(ratio), "goal": 0.9, "met": ratio >= 0.9}
        rows.append(("label_vs_forward", f"{med(lr):.0f} vs {med(li):.0f} samples/s (5 workers vs in-process)",
                     ratio, ">= 0.9", ratio >= 0.9))
    sb = one(R("store_bytes.json"))
    if sb:
        res["store_bytes_per_sample"] = dict(sb, ratio=None, goal=None)
        rows.append(("store_bytes_per_sample", ", ".join(f"{k} {v['bytes_per_sample']:.1f} B" for k, v in sb.items())
                     + f" ({sb['float16']['members']} members x {sb['float16']['classes']} classes)", None, "", None))
    s1, s100 = one(R("store_shards1.jsonl")), one(R("store_shards100.jsonl"))
    if s1 and s100:
        ratio = s100["max_rss_mib"] / s1["max_rss_mib"]
        res["multi_shard_memory"] = {
            "max_rss_mib_1": s1["max_rss_mib"], "max_rss_mib_100": s100["max_rss_mib"],
            "samples": s1["samples"], "ratio": rnd(ratio), "goal": 1.05, "met": ratio <= 1.05}
        rows.append(("multi_shard_memory", f"{s100['max_rss_mib']:.1f} vs {s1['max_rss_mib']:.1f} MiB "
                     "(100 input shards vs 1 file)", ratio, "<= 1.05", ratio <= 1.05))

    t = lines(R("torch.jsonl"))
    ed_d = [r["samples_per_s"] for r in lines(R("ed_distill_epoch.jsonl"))]
    ed_m = [r["samples_per_s"] for r in lines(R("ed_member_epoch.jsonl"))]
    if t and ed_d and ed_m:
        td, tm = med([r["distill_samples_per_s"] for r in t]), med([r["member_samples_per_s"] for r in t])
        rd, rm = med(ed_d) / td, med(ed_m) / tm
        res["pytorch_distill_epoch"] = {
            "edistill_samples_per_s": rnd(med(ed_d), 1), "pytorch_samples_per_s": rnd(td, 1),
            "edistill_runs": ed_d, "pytorch_runs": [r["distill_samples_per_s"] for r in t],
            "pytorch": t[0]["torch_version"], "members": t[0]["members"],
            "ratio": rnd(rd), "ratio_is": "edistill / pytorch", "goal": 1.3, "met": rd >= 1.3}
        res["pytorch_member_epoch"] = {
            "edistill_samples_per_s": rnd(med(ed_m), 1), "pytorch_samples_per_s": rnd(tm, 1),
            "edistill_runs": ed_m, "pytorch_runs": [r["member_samples_per_s"] for r in t],
            "ratio": rnd(rm), "ratio_is": "edistill / pytorch", "goal": 1.5, "met": rm >= 1.5}
        rows.append(("pytorch_distill_epoch", f"{med(ed_d):.0f} vs {td:.0f} samples/s", rd, ">= 1.3", rd >= 1.3))
        rows.append(("pytorch_member_epoch", f"{med(ed_m):.0f} vs {tm:.0f} samples/s", rm, ">= 1.5", rm >= 1.5))
    elif a.torch_note:
        res["pytorch_distill_epoch"] = {"skipped": a.torch_note, "ratio": None, "goal": 1.3}
        res["pytorch_member_epoch"] = {"skipped": a.torch_note, "ratio": None, "goal": 1.5}
        rows.append(("pytorch_*", a.torch_note, None, "", None))

    tc = lines(R("torch_cnn.jsonl"))
    ed_c = [r["samples_per_s"] for r in lines(R("ed_cnn_epoch.jsonl"))]
    if tc and ed_c:
        tcm = med([r["cnn_samples_per_s"] for r in tc])
        rc = med(ed_c) / tcm
        res["pytorch_cnn_member_epoch"] = {
            "arch": tc[0]["arch"], "edistill_samples_per_s": rnd(med(ed_c), 1),
            "pytorch_samples_per_s": rnd(tcm, 1), "edistill_runs": ed_c,
            "pytorch_runs": [r["cnn_samples_per_s"] for r in tc], "pytorch": tc[0]["torch_version"],
            "ratio": rnd(rc), "ratio_is": "edistill / pytorch", "goal": 1.2, "met": rc >= 1.2}
        rows.append(("pytorch_cnn_member_epoch", f"{med(ed_c):.0f} vs {tcm:.0f} samples/s", rc, ">= 1.2",
                     rc >= 1.2))
    elif a.torch_note:
        res["pytorch_cnn_member_epoch"] = {"skipped": a.torch_note, "ratio": None, "goal": 1.2}

    rj = one(R("rejoin.json"))
    if rj:
        res["rejoin_seconds"] = {
            "restarts": rj["restarts"], "median_s": rj["median_s"], "p95_s": rj["p95_s"],
            "max_s": rj["max_s"], "samples_s": rj["samples_s"],
            "measured_is": "restarted worker's ready file -> trainer's 'is back' (p95, nearest rank)",
            "ratio": None, "goal": "p95 <= 1.0 s", "met": rj["p95_s"] <= 1.0}
        rows.append(("rejoin_seconds", f"median {rj['median_s']:.3f} s, p95 {rj['p95_s']:.3f} s, "
                     f"max {rj['max_s']:.3f} s ({rj['restarts']} restarts)", None, "p95 <= 1 s",
                     rj["p95_s"] <= 1.0))

    res["_run"] = {"seconds": a.seconds, "threads": a.threads, "load_average": os.getloadavg()}
    with open(a.out, "w") as fo:
        json.dump(res, fo, indent=1)
        fo.write("\n")

    w = max(len(r[0]) for r in rows) if rows else 10
    print(f"{'comparison':<{w}}  {'measured':<58} {'ratio':>7}  {'goal':<8} met")
    for key, meas, ratio, goal, met in rows:
        rs = f"{ratio:.3f}" if ratio is not None else "-"
        ms = "" if met is None else ("yes" if met else "NO")
        print(f"{key:<{w}}  {meas:<58} {rs:>7}  {goal:<8} {ms}")
    print(f"(wrote {a.out}; {a.seconds:.0f} s; load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
