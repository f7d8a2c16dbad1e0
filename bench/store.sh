#!/usr/bin/env bash
# bench/store.sh: the target-store rows of `make bench` (issue 15), sourced by bench/run.sh after its
# workers, members and data exist (uses $ST, $WORK, $RAW, $X1, $Y1, $MODELS, $STUDENT_ARCH,
# $REPEATS, $STEPS, start_workers/stop_workers, log). Raw results go to $RAW/store_*.jsonl;
# bench/report.py turns them into:
#   cached_epoch_vs_live    distill --steps STEPS from a float16 store of the 5 members vs the same
#                           run with the 5 members live in-process (samples/s), goal >= 3
#   label_vs_forward        `label` with 5 teacher_worker processes (1 BLAS thread each) vs `label`
#                           with the 5 members in-process (2 BLAS threads: the ensemble forward on the
#                           same 2 cores), samples/s, goal >= 0.9
#   store_bytes_per_sample  bytes on disk per sample: float32, float16, float16 top-3 (5 members)
#   multi_shard_memory      peak RSS of distill streaming its unlabeled data from 100 .npy shards
#                           (a directory) vs 1 file of the same samples, goal <= 1.05
all=$(IFS=,; echo "${MODELS[*]}")
LABEL_DATA=(--labeled-images "$X1" --labeled-end 3000 --unlabeled "$X1" --unlabeled-start 3000)

log "target store: labeling 60,000 samples with 5 in-process members (float16, float32, top-3)"
"$ST" label --teachers "$all" "${LABEL_DATA[@]}" --store "$WORK/store16" --blas-threads 2 --quiet \
    --batch-size 256 --metrics "$RAW/store_label_f16.jsonl" >/dev/null 2>>"$WORK/label.log"
for kind in f32 topk; do
  args=(--dtype float32); [[ $kind == topk ]] && args=(--top-k 3)
  "$ST" label --teachers "$all" "${LABEL_DATA[@]}" --unlabeled-end 12800 --store "$WORK/store_$kind" \
      "${args[@]}" --blas-threads 2 --quiet >/dev/null 2>>"$WORK/label.log"
done
"$PY" - "$WORK" "$RAW/store_bytes.json" <<'PY'
import glob, json, os, sys
out = {}
for kind, d in (("float16", "store16"), ("float32", "store_f32"), ("float16_top3", "store_topk")):
    idx = [json.load(open(p)) for p in glob.glob(f"{sys.argv[1]}/{d}/shard-*-of-*.json")]
    n = sum(i["end"] - i["start"] for i in idx)
    b = sum(os.path.getsize(f"{sys.argv[1]}/{d}/{a['file']}") for i in idx for a in i["arrays"].values())
    out[kind] = {"samples": n, "bytes": b, "bytes_per_sample": b / n, "members": len(idx[0]["members"]),
                 "classes": idx[0]["classes"]}
json.dump(out, open(sys.argv[2], "w"))
PY

log "cached_epoch_vs_live ($REPEATS repeats of $STEPS steps each side, 5 members)"
for ((r = 0; r < REPEATS; r++)); do
  distill "store_live" "$all" 2 --steps "$STEPS"
  "$ST" distill --targets "$WORK/store16" "${DISTILL_COMMON[@]}" --blas-threads 2 --steps "$STEPS" \
      --out "$WORK/student.safetensors" --metrics "$WORK/m.jsonl" >/dev/null 2>>"$WORK/distill.log"
  head -n1 "$WORK/m.jsonl" >>"$RAW/store_cached.jsonl"
done

log "label_vs_forward ($REPEATS repeats of 12,800 samples each side, 5 members)"
start_workers 5
for ((r = 0; r < REPEATS; r++)); do
  rm -rf "$WORK/lr" "$WORK/li"
  "$ST" label --teachers "$ENDPOINTS" "${LABEL_DATA[@]}" --unlabeled-end 12800 --store "$WORK/lr" \
      --batch-size 256 --inflight 4 --quiet --metrics "$RAW/store_label_remote.jsonl" >/dev/null 2>>"$WORK/label.log"
  "$ST" label --teachers "$all" "${LABEL_DATA[@]}" --unlabeled-end 12800 --store "$WORK/li" \
      --batch-size 256 --blas-threads 2 --quiet --metrics "$RAW/store_label_inproc.jsonl" >/dev/null 2>>"$WORK/label.log"
done
stop_workers

log "multi_shard_memory (distill streaming the 57,000 unlabeled samples as 1 file vs 100 .npy shards)"
"$TW" train --arch 784,64,10 --steps 5 --seed 9 --member small --out "$WORK/models/small1.safetensors" \
    --train-images "$X1" --train-labels "$Y1" --shuffle-buffer 1024 --quiet >/dev/null
"$PY" - "$X1" "$WORK" <<'PY'
import os, sys
import numpy as np
with open(sys.argv[1], "rb") as f:
    x = np.frombuffer(f.read()[16:], dtype=np.uint8).reshape(-1, 784)[3000:]
os.makedirs(f"{sys.argv[2]}/shards100")
np.save(f"{sys.argv[2]}/unl1.npy", x)
for i, part in enumerate(np.array_split(x, 100)):
    np.save(f"{sys.argv[2]}/shards100/part-{i:03d}.npy", part)
PY
for n in 1 100; do
  u="$WORK/unl1.npy"; [[ $n == 100 ]] && u="$WORK/shards100"
  "$ST" distill --teachers "$WORK/models/small1.safetensors" --labeled-images "$X1" --labeled-labels "$Y1" \
      --labeled-end 3000 --unlabeled "$u" --arch 784,64,10 --batch-size 128 --epochs 1 --blas-threads 2 \
      --shuffle-buffer 16384 --quiet --out "$WORK/student.safetensors" \
      --metrics "$RAW/store_shards$n.jsonl" >/dev/null 2>>"$WORK/distill.log"
done
