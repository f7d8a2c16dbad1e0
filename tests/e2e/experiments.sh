#!/usr/bin/env bash
# `make experiments` machinery (issue 14) at its QUICK scale (EXPERIMENTS_QUICK=1, every experiment
# at a tiny scale, about 2 minutes): scripts/experiments.py trains members, labels stores, runs every
# student row with edistill's programs, and writes the results JSON and the report. A run killed
# part-way continues where it stopped (fewer runs executed the second time), and --no-run writes a
# partial report from the cache meanwhile. Checked: every
# run of the issue's list is there with 2 seeds, config, accuracy and wall time; the report has
# every section, its tables, the numbers-to-reach verdicts and the plots (PNG); a second invocation
# takes every run from the cache (nothing re-executed) and writes the same results, and so does one
# with an empty cache and --reuse-results (runs and teachers from the results file). Accuracies are
# not checked (tiny scale). Skipped in sanitizer builds (minutes of sanitized training prove
# nothing the other tests do not).
source "$(dirname "$0")/lib.sh"
[[ -f "$TRAIN_X" ]] || fail "Fashion-MNIST not installed at $FMNIST"
san=$(sed -n 's/^EDISTILL_SANITIZE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
if [[ -n "$san" && "${san^^}" != OFF ]]; then echo "skip: sanitizer build ($san)"; exit 77; fi
command -v gnuplot >/dev/null || fail "gnuplot (gnuplot-nox) is not installed: scripts/deps.sh"
X=(/usr/bin/python3 "$SRC/scripts/experiments.py" --build "$BUILD" --cache "$WORK/cache"
   --results "$WORK/results/experiments.json" --report "$WORK/docs/RESULTS.md")
t0=$(date +%s)
# Interrupted: SIGKILL the driver and its children after its 30th progress line, then run again:
# the second run continues (fewer runs executed than there are).
EXPERIMENTS_QUICK=1 setsid "${X[@]}" > "$WORK/run0.log" 2>&1 &
pid=$!
E2E_PIDS+=("$pid")
for _ in $(seq 1 1200); do
  (( $(grep -c '^\[' "$WORK/run0.log") >= 30 )) && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -KILL -- "-$pid" 2>/dev/null || fail "the driver ended before it was interrupted"
wait "$pid" 2>/dev/null || true
# --no-run: the partial report from the cache alone (no program started)
EXPERIMENTS_QUICK=1 "${X[@]}" --no-run > "$WORK/partial.log" 2>&1 || { cat "$WORK/partial.log" >&2; fail "--no-run"; }
grep -q "runs (0 executed)" "$WORK/partial.log" || fail "--no-run executed runs: $(tail -n1 "$WORK/partial.log")"
grep -q "^> \*\*Partial report\*\*: [0-9]* of the [0-9]* planned runs are not done yet" "$WORK/docs/RESULTS.md" ||
  fail "the partial report does not say it is partial"
EXPERIMENTS_QUICK=1 "${X[@]}" > "$WORK/run1.log" 2>&1 || { tail -n 30 "$WORK/run1.log" >&2; fail "the quick run"; }
t1=$(date +%s)
total=$(sed -n 's/^experiments: \([0-9]*\) runs (\([0-9]*\) executed).*/\1/p' "$WORK/run1.log")
executed=$(sed -n 's/^experiments: \([0-9]*\) runs (\([0-9]*\) executed).*/\2/p' "$WORK/run1.log")
[[ -n "$total" && $executed -lt $((total - 20)) ]] || fail "the run after the interruption executed $executed of $total runs"
echo "  interrupted after 30 progress lines; the next run executed $executed of $total runs"
grep -q '^\[ *[0-9]*/[0-9]* *[0-9]*s\] 1 hinton | 2x800 hard | seed 1: ' "$WORK/run1.log" || fail "no progress lines"
"$PY" - "$WORK/results/experiments.json" "$WORK/docs/RESULTS.md" <<'PYEOF' || fail "results or report shape"
import json, os, sys
d = json.load(open(sys.argv[1]))
report = open(sys.argv[2]).read()
runs = d["runs"]
assert d["scale"] == "quick"
exps = {r["experiment"] for r in runs}
want = {"1 hinton", "2 temperature", "3 few labels", "4 no labels", "5 ensemble size",
        "6 regularizers", "7 combine/loss", "8 privileged", "9 CNN ensemble"}
assert exps == want, exps ^ want
for r in runs:
    assert r["seed"] in (1, 2) and 0.0 <= r["accuracy"] <= 1.0 and r["wall_s"] >= 0, r
    assert r["config"]["seed"] == r["seed"] and r["config"]["arch"], r
rows = {}
for r in runs:
    rows.setdefault((r["experiment"], r["row"]), set()).add(r["seed"])
assert all(s == {1, 2} for s in rows.values()), [k for k, s in rows.items() if s != {1, 2}]
assert any(r["config"]["view"] == "avgpool:4" for r in runs) and any(r["config"]["view"] == "avgpool:2" for r in runs)
assert len([k for k in rows if k[0] == "2 temperature"]) == 15
# 4 fractions x 3; at 3%: 2 more T, CNN teachers, hard and soft (3 T) with --augment (live teachers)
assert len([k for k in rows if k[0] == "3 few labels"]) == 19
aug = [r for r in runs if r["config"].get("augment")]
assert {r["row"] for r in aug} == {"3% hard, augmented", "3% soft, labeled only, augmented", "3% soft, labeled only, augmented, T=1", "3% soft, labeled only, augmented, T=2"}, aug
assert "3% soft, labeled only, augmented" in report and "consistent teaching" in report
assert "cnn" in d["teachers"] and "few_mlp" in d["teachers"] and "few_cnn" in d["teachers"]
assert "3% soft, labeled only, CNN teachers" in report and "mean p(true class)" in report
for k in ("k1", "k2", "k3", "k5", "train"):
    t = d["teachers"][k]
    assert 0 < t["prob"] <= 1 and 0 < t["logit"] <= 1, t
assert len(d["goals"]) == 4 and all(isinstance(g["met"], bool) for g in d["goals"])
for sec in ["## 1. Hinton", "## 2. Temperature", "## 3. Few labels", "## 4. No labels",
            "## 5. Ensemble size", "## 6. Rival regularizers", "## 7. Combination", "## 8. Privileged",
            "## 9. A CNN ensemble",
            "## Numbers to reach", "## Commands", "Machine: ", "gap closed"]:
    assert sec in report, sec
assert report.count("**met**") + report.count("**not met**") == 4
assert "Partial report" not in report and d["runs_planned"] == len(runs)
assert "student_trainer distill --targets" in report and "--student-view avgpool:4" in report
assert "--augment shift:2,flip" in report
for png in ("temperature", "few_labels", "ensemble_size"):
    p = os.path.join(os.path.dirname(sys.argv[2]), "img", png + ".png")
    assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n", p
    assert "(img/%s.png)" % png in report
print("  %d runs, %d rows, %d teacher sets, goals: %s" % (len(runs), len(rows), len(d["teachers"]),
      ", ".join("met" if g["met"] else "not met" for g in d["goals"])))
PYEOF
cp "$WORK/results/experiments.json" "$WORK/first.json"
EXPERIMENTS_QUICK=1 "${X[@]}" > "$WORK/run2.log" 2>&1 || { tail -n 30 "$WORK/run2.log" >&2; fail "the cached run"; }
grep -q "runs (0 executed)" "$WORK/run2.log" || fail "the second run executed runs again: $(tail -n1 "$WORK/run2.log")"
"$PY" - "$WORK/first.json" "$WORK/results/experiments.json" <<'PYEOF' || fail "the cached results differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
strip = lambda d: [(r["key"], r["accuracy"], r["wall_s"]) for r in d["runs"]]
assert strip(a) == strip(b)
PYEOF
# --reuse-results: a new cache takes every run and the teacher accuracies from the results file
# (nothing trained, labeled or run) and writes the same rows
X2=(/usr/bin/python3 "$SRC/scripts/experiments.py" --build "$BUILD" --cache "$WORK/cache2"
    --results "$WORK/results/experiments.json" --report "$WORK/docs/RESULTS.md" --reuse-results)
EXPERIMENTS_QUICK=1 "${X2[@]}" > "$WORK/run3.log" 2>&1 ||
  { tail -n 30 "$WORK/run3.log" >&2; fail "--reuse-results"; }
grep -q "runs (0 executed)" "$WORK/run3.log" || fail "--reuse-results executed runs: $(tail -n1 "$WORK/run3.log")"
[[ -z "$(find "$WORK/cache2/members" "$WORK/cache2/stores" -mindepth 1)" ]] || fail "--reuse-results trained members or labeled stores"
"$PY" - "$WORK/first.json" "$WORK/results/experiments.json" <<'PYEOF' || fail "the reused results differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
strip = lambda d: [(r["key"], r["accuracy"], r["wall_s"]) for r in d["runs"]]
assert strip(a) == strip(b) and a["teachers"] == b["teachers"] and a["goals"] == b["goals"]
PYEOF
pass "quick experiments: $(tail -n1 "$WORK/run1.log" | sed 's/ ->.*//') ($((t1 - t0))s with the interruption); cached rerun: nothing executed, same results"
