#!/usr/bin/python3
"""`make experiments`: the method's claims measured with edistill's own programs (issue 14).

Trains the ensemble members (`teacher_worker train`), labels the training and test sets once per
teacher set into target stores (`student_trainer label`), trains every student row from a store
(`student_trainer distill --targets`; hard-label rows are `distill --alpha 0`: the same trainer,
steps and data order, the soft term weighted 0), evaluates each (`student_trainer eval --json`),
and writes results/experiments.json (every run: config, seed, accuracy, wall time) and
docs/RESULTS.md with gnuplot plots in docs/img/.

Everything is cached under the cache directory by a hash of its configuration: members, stores and
finished runs are reused, and an interrupted distill run continues from its checkpoint
(`--checkpoint ... --resume-if-present`), so an interrupted `make experiments` continues where it
stopped. EXPERIMENTS_QUICK=1 (or --quick) runs every experiment at a tiny scale (minutes) into a
separate cache, results file and report; the ctest e2e_experiments checks that path.

Experiment 9 (a CNN ensemble distilled into the MLP student) runs by default, since CNN members
exist; EXPERIMENTS_CNN=0 or --no-cnn leaves it out. Students' model files and checkpoints live in /dev/shm (EXPERIMENTS_WORK overrides).
EXPERIMENTS_THREADS (default 2) sets every program's OpenBLAS threads.

usage: experiments.py [--build DIR] [--quick] [--no-cnn] [--results FILE] [--report FILE]
                      [--img DIR] [--cache DIR] [--no-run]
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST = os.environ.get("EDISTILL_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
TRAIN_X = os.path.join(FMNIST, "train-images-idx3-ubyte.gz")
TRAIN_Y = os.path.join(FMNIST, "train-labels-idx1-ubyte.gz")
TEST_X = os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")
TEST_Y = os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz")
SEEDS = (1, 2)

# The two scales. "full" is the experiment (about 2 h 10 min of this 2-core machine: the
# student runs' recorded wall times add up to 106 min, members, stores and evaluations about 25
# min more); "quick" the same list at a tiny scale, for the test of the machinery.
SCALES = {
    # member_epochs: 10 epochs left the dropout members underfit (88.2% test, 90.1% train, ensemble
    # 88.4%) below the unregularized 2x800 student trained on hard labels (90.3%, 94.5% train).
    # priv_steps: at 2000 steps the 7x7 student streaming the unlabeled images saw each of them
    # about 4 times and was still learning (T=1, alpha=1, n=1000: 82.26% at 2000 steps, 84.26% at
    # 6000); the hard-label student on n samples does not change (79.27% / 79.31%).
    "full": dict(n_train=60000, n_members=5, member_arch="784,1200,1200,10", member_epochs=30,
                 big="784,800,800,10", compact=("784,64,10", "784,30,10"), steps=4690,
                 batch=128, fractions=(0.01, 0.03, 0.05, 0.10), priv_n=(300, 1000, 5000),
                 priv_steps=6000, views={"7x7": ("avgpool:4", "49,256,10"),
                                         "14x14": ("avgpool:2", "196,256,10")},
                 temps=(1, 2, 4, 8, 20), priv_temps=(1, 2, 5, 10),
                 priv_alphas=(0.25, 0.5, 0.75, 1.0), priv_small=((1, 0.5), (1, 1.0), (2, 1.0),
                                                                 (5, 1.0)),
                 cnn_arch="1x28x28:conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,maxpool2,"
                          "flatten,dense128,relu,dropout0.3,dense10", cnn_members=3, cnn_epochs=5),
    "quick": dict(n_train=3000, n_members=5, member_arch="784,48,10", member_epochs=1,
                  big="784,32,32,10", compact=("784,16,10", "784,8,10"), steps=60,
                  batch=64, fractions=(0.01, 0.03, 0.05, 0.10), priv_n=(300, 1000, 2000),
                  priv_steps=40, views={"7x7": ("avgpool:4", "49,32,10"),
                                        "14x14": ("avgpool:2", "196,32,10")},
                  temps=(1, 2, 4, 8, 20), priv_temps=(1, 10), priv_alphas=(0.5, 1.0),
                  priv_small=((4, 0.75),),
                  cnn_arch="1x28x28:conv4k3p1,relu,maxpool2,flatten,dense10", cnn_members=2,
                  cnn_epochs=1),
}
T_WORK = 4          # the temperature of experiments 3-7 (experiment 2 measures the others)
ALPHA = 0.9         # weight of the soft term in every distilled row (1 - alpha on the hard term)
LABEL_SMOOTHING = (0.05, 0.1, 0.2)
DROPOUT = ("--dropout-in", "0.2", "--dropout-hidden", "0.5")
WEIGHT_DECAY = "0.01"
FEW_T_FRACTION = 0.03  # the labeled fraction of experiment 3 whose soft-only row sweeps T ...
FEW_T_TEMPS = (T_WORK, 8, 20)  # ... over these (higher T: more of the members' dark knowledge)
FEW_CNN_ROW = "%g%% soft, labeled only, CNN teachers" % (100 * FEW_T_FRACTION)  # (experiment 9's)
# Consistent teaching (Beyer et al. 2022) at FEW_T_FRACTION: `distill --augment` shifts and flips
# every batch before the live teachers label it, so the student trains on many views of its few
# samples, each with its own soft targets; the hard row gets the same augmented images.
FEW_AUGMENT = "shift:2,flip"
FEW_AUG_ROWS = ("%g%% hard, augmented" % (100 * FEW_T_FRACTION),
                "%g%% soft, labeled only, augmented" % (100 * FEW_T_FRACTION))
FEW_AUG_TEMPS = (T_WORK, 1, 2)  # the augmented soft-only row over T (T_WORK: its plain name)


def few_aug_row(T):
    """The row name of the augmented soft-only student at temperature T."""
    return FEW_AUG_ROWS[1] + ("" if T == T_WORK else ", T=%g" % T)


def few_t_row(fr, T):
    """The row name of experiment 3's soft-only student at fraction fr and temperature T (the
    T_WORK row keeps its plain name)."""
    return "%g%% soft, labeled only%s" % (100 * fr, "" if T == T_WORK else ", T=%g" % T)


def chash(obj):
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


class Runner:
    """Runs edistill's programs with a cache keyed by configuration hashes."""

    def __init__(self, args, scale):
        self.a = args
        self.s = SCALES[scale]
        self.scale = scale
        self.tw = os.path.join(args.build, "teacher_worker", "teacher_worker")
        self.st = os.path.join(args.build, "student_trainer", "student_trainer")
        self.cache = args.cache
        for d in ("members", "stores", "runs", "work"):
            os.makedirs(os.path.join(self.cache, d), exist_ok=True)
        # A student's model file and checkpoint are rewritten (and fsync'd) at every epoch end, and
        # a run on a few hundred labeled samples has hundreds of epochs: keep them in memory
        # (tmpfs) when the machine has one. Interrupted runs still continue (the checkpoint stays
        # there until the machine reboots).
        shm = "/dev/shm"
        self.work = os.environ.get("EXPERIMENTS_WORK") or (
            os.path.join(shm, "edistill-experiments-%s" % chash(os.path.abspath(self.cache)))
            if os.path.isdir(shm) and os.access(shm, os.W_OK) else
            os.path.join(self.cache, "work"))
        self.t0 = time.time()
        self.commands = []   # (what, argv) of one example of each kind, for the report
        self.done = 0
        self.total = 0
        self.ran = 0         # runs actually executed (not from the cache)
        self.no_run = args.no_run  # report from the cache only: run nothing
        # --reuse-results: the runs of the results file count as cached (a fresh cache extended
        # with new rows keeps the measured ones instead of running them again)
        self.recorded = {}  # key -> the run's results (main fills it)
        self.cnn = args.cnn
        # OpenBLAS threads per program (EXPERIMENTS_THREADS, default 2 = the machine's cores); 1
        # suits a machine shared with other work (idle BLAS threads spin on a busy CPU). Not part
        # of a run's cache key: the accuracies do not depend on it beyond float rounding.
        self.threads = os.environ.get("EXPERIMENTS_THREADS", "2")
        self.env = dict(os.environ, OPENBLAS_NUM_THREADS=self.threads)

    def log(self, msg):
        el = time.time() - self.t0
        print("[%3d/%d %5.0fs] %s" % (self.done, self.total, el, msg), flush=True)

    def shown(self, arg):
        """arg as the report shows it: the programs as build/..., other paths of this checkout
        and its neighbours relative to it (no machine-specific prefix)."""
        if "," in arg:  # a list of paths (--teachers)
            return ",".join(self.shown(a) for a in arg.split(","))
        build = os.path.abspath(self.a.build)
        if arg.startswith(build + "/"):
            return os.path.join("build", os.path.relpath(arg, build))
        if arg.startswith(os.path.dirname(SRC) + "/"):
            return os.path.relpath(arg, SRC)
        return arg

    def call(self, argv, what):
        if what not in [w for w, _ in self.commands]:
            self.commands.append((what, [self.shown(a) for a in argv]))
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=self.env)
        if r.returncode != 0:
            sys.stderr.write(r.stderr[-3000:])
            raise SystemExit("experiments: %s failed (status %d): %s" %
                             (what, r.returncode, " ".join(argv)))
        return r.stdout

    # ---- members and stores ---------------------------------------------------------------
    def member(self, i, kind="mlp"):
        """Member i (1-based): an MLP (member_arch, dropout) or, kind "cnn", a CNN (cnn_arch)."""
        s = self.s
        arch, epochs, reg = s["member_arch"], s["member_epochs"], DROPOUT
        if kind == "cnn":
            arch, epochs, reg = s["cnn_arch"], s["cnn_epochs"], ()
        cfg = dict(arch=arch, epochs=epochs, n=s["n_train"], seed=i, dropout=reg,
                   batch=s["batch"])
        name = ("m%d" if kind == "mlp" else "c%d") % i
        path = os.path.join(self.cache, "members", "%s-%s.safetensors" % (name, chash(cfg)))
        if not os.path.exists(path) and self.no_run:
            return None
        if not os.path.exists(path):
            t = time.time()
            self.call([self.tw, "train", "--arch", arch, "--epochs", str(epochs), "--train-end",
                       str(s["n_train"]), "--seed", str(i), "--member", name, *reg,
                       "--batch-size", str(s["batch"]), "--blas-threads", self.threads, "--quiet",
                       "--out", path + ".tmp"], "train a member" + (" (CNN)" if reg == () else ""))
            os.replace(path + ".tmp", path)
            self.log("member %s trained in %.0fs" % (name, time.time() - t))
        return path

    def members(self, k, kind="mlp"):
        return [self.member(i, kind) for i in range(1, k + 1)]

    def store(self, k, split, kind="mlp"):
        """A float32 store of the first k members' logits. split: ("all",) = the training range
        as one input; ("split", n) = labeled [0, n) + unlabeled [n, N); ("test",) = the test set."""
        ms = self.members(k, kind)
        if None in ms:
            return None
        cfg = dict(members=[os.path.basename(m) for m in ms], split=list(split), n=self.s["n_train"])
        d = os.path.join(self.cache, "stores", "%s-k%d-%s" % (split[0], k, chash(cfg)))
        if os.path.exists(os.path.join(d, "done")):
            return d
        if self.no_run:
            return None
        N = self.s["n_train"]
        if split[0] == "all":
            data = ["--unlabeled", TRAIN_X, "--unlabeled-end", str(N)]
        elif split[0] == "test":
            data = ["--unlabeled", TEST_X]
        else:
            n = split[1]
            data = ["--labeled-images", TRAIN_X, "--labeled-end", str(n), "--unlabeled", TRAIN_X,
                    "--unlabeled-start", str(n), "--unlabeled-end", str(N)]
        t = time.time()
        resume = ["--resume"] if os.path.isdir(d) else []
        self.call([self.st, "label", "--teachers", ",".join(ms), *data, "--dtype", "float32",
                   "--blas-threads", self.threads, "--quiet", "--store", d, *resume],
                  "label a store")
        open(os.path.join(d, "done"), "w").close()
        self.log("store %s of %d member(s) labeled in %.0fs" % ("/".join(map(str, split)), k,
                                                                time.time() - t))
        return d

    # ---- one student run -------------------------------------------------------------------
    def student(self, exp, row, seed, arch, *, k=None, split=("all",), labeled=None,
                unlabeled=False, alpha=ALPHA, T=T_WORK, combine="prob", soft_loss="ce",
                extra=(), view=None, steps=None, train_acc=False, teachers="mlp", augment=None):
        """One student: distill --targets from the store of (k members, split). labeled: labeled
        samples [0, labeled) (None: all N); unlabeled: also stream [labeled, N) unlabeled
        (labeled 0: the unlabeled stream alone). augment: `--augment` text; then the members are
        in-process teachers (--teachers) labeling every augmented batch, not a store."""
        s = self.s
        k = k or s["n_members"]
        N = s["n_train"]
        nl = N if labeled is None else labeled
        steps = steps or s["steps"]
        cfg = dict(scale=self.scale, arch=arch, k=k, split=list(split), labeled=nl,
                   unlabeled=unlabeled, alpha=alpha, T=T, combine=combine, soft_loss=soft_loss,
                   extra=list(extra), view=view, steps=steps, batch=s["batch"], seed=seed,
                   members=dict(arch=s["member_arch"], epochs=s["member_epochs"]))
        if teachers != "mlp":  # (absent for the MLP ensemble: the keys of earlier runs hold)
            cfg["members"] = dict(arch=s["cnn_arch"], epochs=s["cnn_epochs"], kind=teachers)
        if augment:  # (absent without: the keys of earlier runs hold)
            cfg["augment"] = augment
        key = chash(cfg)
        res_path = os.path.join(self.cache, "runs", key + ".json")
        record = dict(experiment=exp, row=row, seed=seed, config=cfg, key=key)
        if not os.path.exists(res_path) and key in self.recorded:  # --reuse-results
            with open(res_path, "w") as f:
                json.dump(self.recorded[key], f)
        if os.path.exists(res_path):
            with open(res_path) as f:
                record.update(json.load(f))
            self.done += 1
            self.log("%s | %s | seed %d: %.2f%% (cached)" % (exp, row, seed,
                                                              100 * record["accuracy"]))
            return record
        if self.no_run:
            self.done += 1
            return None
        if augment:
            source = ["--teachers", ",".join(self.members(k, teachers)), "--augment", augment]
        else:
            source = ["--targets", self.store(k, split, teachers)]
        os.makedirs(self.work, exist_ok=True)
        w = os.path.join(self.work, key)
        argv = [self.st, "distill", *source, "--labeled-images", TRAIN_X,
                "--labeled-labels", TRAIN_Y, "--labeled-end", str(nl), "--arch", arch,
                "--steps", str(steps), "--batch-size", str(s["batch"]), "--seed", str(seed),
                "--temperature", str(T), "--alpha", str(alpha), "--combine", combine,
                "--soft-loss", soft_loss, "--blas-threads", self.threads, "--quiet", *extra,
                "--out", w + ".safetensors"]
        if nl + (N - nl if unlabeled else 0) >= 20000:  # long epochs: resumable mid-run
            argv += ["--checkpoint", w + ".ck", "--checkpoint-every", "500",
                     "--resume-if-present"]
        if unlabeled:
            argv += ["--unlabeled", TRAIN_X, "--unlabeled-start", str(nl), "--unlabeled-end",
                     str(N)]
        if view:
            argv += ["--student-view", view]
        t = time.time()
        what = "distill (hard labels: --alpha 0)" if alpha == 0 else "distill"
        what += " with live teachers and --augment" if augment else ""
        self.call(argv, what + (" with a student view" if view else ""))
        wall = time.time() - t
        record["accuracy"] = self.evaluate(w + ".safetensors", TEST_X, TEST_Y, view)
        if train_acc:
            record["train_accuracy"] = self.evaluate(w + ".safetensors", TRAIN_X, TRAIN_Y, view)
        record["wall_s"] = round(wall, 2)
        with open(res_path + ".tmp", "w") as f:
            json.dump({k2: record[k2] for k2 in ("accuracy", "wall_s", "train_accuracy")
                       if k2 in record}, f)
        os.replace(res_path + ".tmp", res_path)
        for ext in (".ck", ".safetensors"):
            if os.path.exists(w + ext):
                os.remove(w + ext)
        self.done += 1
        self.ran += 1
        self.log("%s | %s | seed %d: %.2f%% in %.1fs" % (exp, row, seed, 100 * record["accuracy"],
                                                         wall))
        return record

    def evaluate(self, model, images, labels, view):
        """Accuracy of a model file on a whole labeled file (the training accuracy of the quick
        scale is therefore over all 60,000 samples, not its 3,000)."""
        out = os.path.join(self.work, "eval.json")
        argv = [self.st, "eval", "--models", model, "--images", images, "--labels", labels,
                "--no-confusion", "--json", out]
        if view:
            argv += ["--student-view", view]
        self.call(argv, "eval" + (" through the student view" if view else ""))
        with open(out) as f:
            return list(json.load(f).values())[0]["accuracy"]


# ---- teachers: accuracies from the stored logits -------------------------------------------

def store_logits(store):
    """(n, K, C) float32 logits of a single-shard float32 store, in store order."""
    parts = sorted(p for p in os.listdir(store) if p.endswith(".logits.npy"))
    return np.concatenate([np.load(os.path.join(store, p)) for p in parts])


def idx_labels(path, n=None):
    import gzip
    with gzip.open(path, "rb") as f:
        f.read(8)
        y = np.frombuffer(f.read(), dtype=np.uint8)
    return y if n is None else y[:n]


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def teacher_confidence(z, y, T):
    """Mean probability of the true class in the members' prob-mean soft targets at T."""
    return float(softmax(z / T).mean(axis=1)[np.arange(len(y)), y].mean())


def teacher_stats(z, y):
    """Accuracies of each member, the prob-mean and the logit-mean ensembles of logits z."""
    acc = lambda p: float((p.argmax(axis=-1) == y).mean())
    return dict(members=[acc(z[:, k]) for k in range(z.shape[1])],
                prob=acc(softmax(z).mean(axis=1)), logit=acc(z.mean(axis=1)))


# ---- the experiment list ---------------------------------------------------------------------

def plan(r, on_progress=None):
    """Every student run of the issue's list, in order. Returns the list of run records."""
    s = r.s
    N, big, (c1, c2) = s["n_train"], s["big"], s["compact"]
    runs = []
    add = runs.append
    jobs = []   # (callable) so the total is known before the first run

    def job(*a, **kw):
        jobs.append((a, kw))

    for seed in SEEDS:
        # 1 + 2: Hinton's table and the T sweep (hard rows without regularization)
        for arch, name in ((big, "2x800"), (c1, c1), (c2, c2)):
            job("1 hinton", "%s hard" % name, seed, arch, alpha=0, train_acc=arch == big)
            for T in s["temps"]:
                job("2 temperature", "%s T=%g" % (name, T), seed, arch, T=T,
                    train_acc=arch == big and T == 20)
        # 3: few labels
        for fr in s["fractions"]:
            n = int(round(fr * N))
            sp = ("split", n)
            job("3 few labels", "%g%% hard" % (100 * fr), seed, big, alpha=0, split=sp, labeled=n)
            job("3 few labels", "%g%% soft, labeled only" % (100 * fr), seed, big, split=sp,
                labeled=n)
            job("3 few labels", "%g%% soft + rest unlabeled" % (100 * fr), seed, big, split=sp,
                labeled=n, unlabeled=True)
            if fr == FEW_T_FRACTION:  # T matters most with few samples: sweep it at 3%
                for T in FEW_T_TEMPS[1:]:
                    job("3 few labels", few_t_row(fr, T), seed, big, T=T, split=sp, labeled=n)
                job("3 few labels", FEW_AUG_ROWS[0], seed, big, alpha=0, split=sp, labeled=n,
                    augment=FEW_AUGMENT)
                for T in FEW_AUG_TEMPS:
                    job("3 few labels", few_aug_row(T), seed, big, T=T, split=sp, labeled=n,
                        augment=FEW_AUGMENT)
                if r.cnn:  # the same student taught by the CNN ensemble of experiment 9
                    job("3 few labels", FEW_CNN_ROW, seed, big, split=sp, labeled=n,
                        k=s["cnn_members"], teachers="cnn")
        # 4: no labels at all
        job("4 no labels", "alpha=1, unlabeled stream only", seed, big, alpha=1.0, labeled=0,
            unlabeled=True)
        # 5: ensemble size
        for k in (1, 2, 3, 5):
            job("5 ensemble size", "K=%d" % k, seed, big, k=min(k, s["n_members"]))
        # 6: rival regularizers (hard labels) vs distillation, same student and steps
        for eps in LABEL_SMOOTHING:
            job("6 regularizers", "label smoothing %g" % eps, seed, big, alpha=0,
                extra=("--label-smoothing", str(eps)))
        job("6 regularizers", "dropout 0.2/0.5", seed, big, alpha=0, extra=DROPOUT)
        job("6 regularizers", "weight decay %s" % WEIGHT_DECAY, seed, big, alpha=0,
            extra=("--weight-decay", WEIGHT_DECAY))
        job("6 regularizers", "hard labels, none", seed, big, alpha=0)
        job("6 regularizers", "distillation T=%g" % T_WORK, seed, big)
        # 7: combination and loss (L2 matches the members' mean logits: no combine mode)
        job("7 combine/loss", "prob mean, soft CE", seed, big)
        job("7 combine/loss", "logit mean, soft CE", seed, big, combine="logit")
        job("7 combine/loss", "L2 logit matching", seed, big, soft_loss="l2")
        # 8: privileged information: the full T x alpha grid for the 7x7 student on the labeled
        # samples; a small grid for the unlabeled column and for the 14x14 student
        for vi, (vname, (view, varch)) in enumerate(s["views"].items()):
            for n in s["priv_n"]:
                sp = ("split", n)
                kw = dict(split=sp, labeled=n, view=view, steps=s["priv_steps"])
                job("8 privileged", "%s n=%d hard" % (vname, n), seed, varch, alpha=0, **kw)
                for unl in (False, True):
                    for T, al in priv_grid(s, vi == 0 and not unl):
                        job("8 privileged", "%s n=%d T=%g alpha=%g%s" %
                            (vname, n, T, al, " + unlabeled" if unl else ""), seed, varch, T=T,
                            alpha=al, unlabeled=unl, **kw)
        # 9 (EXPERIMENTS_CNN=0 / --no-cnn leaves it out): a CNN ensemble distilled into the MLP student
        if r.cnn:
            job("9 CNN ensemble", "2x800 from the CNN ensemble, T=%g" % T_WORK, seed, big,
                k=s["cnn_members"], teachers="cnn")
    r.total = len(jobs)
    for a, kw in jobs:
        rec = r.student(*a, **kw)
        if rec:
            add(rec)
            if on_progress:
                on_progress(runs)
    return runs


def priv_grid(s, full):
    """The (T, alpha) pairs of a privileged-information cell."""
    if full:
        return [(T, a) for T in s["priv_temps"] for a in s["priv_alphas"]]
    return list(s["priv_small"])


# ---- the report -------------------------------------------------------------------------------

NAN = float("nan")
NO_TEACHERS = dict(members=[NAN], prob=NAN, logit=NAN)


def pct(x):
    return "-" if x != x else "%.2f" % (100 * x)


def mean(xs):
    xs = [x for x in xs if x == x]
    return float(np.mean(xs)) if xs else NAN


def best(items, f):
    """The item with the largest f (NaN: not measured, never the best); items[0] if none."""
    vals = [(f(i), n, i) for n, i in enumerate(items)]
    vals = [v for v in vals if v[0] == v[0]]
    return max(vals)[2] if vals else items[0]


def seed_cells(rs):
    """'a | b': the accuracy of each seed's run ('-' when not done)."""
    by = {r["seed"]: r["accuracy"] for r in rs}
    return " | ".join(pct(by.get(seed, NAN)) for seed in SEEDS)


def ratio(a, b):
    return "-" if a != a or b != b or b == 0 else "%.2f" % (a / b)


class Report:
    def __init__(self, data, img_dir, report_path):
        self.d = data
        self.img = img_dir
        self.path = report_path
        self.rows = {}
        for run in data["runs"]:
            self.rows.setdefault((run["experiment"], run["row"]), []).append(run)
        self.out = []

    def acc(self, exp, row):
        rs = self.rows.get((exp, row), [])
        return mean([r["accuracy"] for r in rs])

    def line(self, s=""):
        self.out.append(s)

    def table(self, exp, rows, ref=None, label="row"):
        self.line("| %s | mean | seed 1 | seed 2 |%s" % (label, " gap closed |" if ref else ""))
        self.line("|---|---|---|---|%s" % ("---|" if ref else ""))
        for row in rows:
            rs = sorted(self.rows.get((exp, row), []), key=lambda r: r["seed"])
            if not rs:
                continue
            vals = seed_cells(rs)
            gap = ""
            if ref:
                hard, ens = ref
                gap = " %s |" % ratio(self.acc(exp, row) - hard, ens - hard)
            self.line("| %s | **%s** | %s |%s" % (row, pct(self.acc(exp, row)), vals, gap))
        self.line()

    def plot(self, name, title, xlabel, series, logx=False):
        """series: [(label, [(x, y), ...])]; writes docs/img/NAME.png with gnuplot."""
        series = [(lab, [(x, y) for x, y in pts if y == y]) for lab, pts in series]
        series = [(lab, pts) for lab, pts in series if pts]
        if not shutil.which("gnuplot") or not series:
            return None
        os.makedirs(self.img, exist_ok=True)
        dat = os.path.join(self.img, name + ".dat")
        with open(dat, "w") as f:
            for label, pts in series:
                f.write("# %s\n" % label)
                for x, y in pts:
                    f.write("%g %g\n" % (x, 100 * y))
                f.write("\n\n")
        png = os.path.join(self.img, name + ".png")
        plots = ", ".join("'%s' index %d with linespoints lw 2 title '%s'" % (dat, i, lab)
                          for i, (lab, _) in enumerate(series))
        script = ("set terminal pngcairo size 800,500 noenhanced font ',10'\n"
                  "set output '%s'\nset title '%s'\nset xlabel '%s'\n"
                  "set ylabel 'test accuracy (%%)'\nset grid\nset key bottom right\n%s"
                  "plot %s\n" % (png, title, xlabel, "set logscale x\n" if logx else "", plots))
        ok = subprocess.run(["gnuplot"], input=script, text=True).returncode == 0
        os.remove(dat)
        if not ok:
            print("experiments: gnuplot failed on %s (see above)" % name, file=sys.stderr)
            return None
        return os.path.relpath(png, os.path.dirname(self.path))

    def finding(self, text, *values):
        """A one-line claim citing its rows; left out while a value it rests on is missing."""
        if all(v == v for v in values):
            self.line("**Finding.** " + text)
            self.line()

    def few_teachers(self, mlp_row):
        """Experiment 3's soft-only row from the CNN ensemble against the MLP ensemble's, with
        how sharp each set's soft targets are on the labeled samples (their training data)."""
        fm, fc = (self.d["teachers"].get("few_" + k) for k in ("mlp", "cnn"))
        if ("3 few labels", FEW_CNN_ROW) not in self.rows or not fm or not fc:
            return
        tc = self.d["teachers"].get("cnn", NO_TEACHERS)
        tk = "T=%g" % T_WORK
        L = self.line
        L("The same soft-only student taught by the CNN ensemble of section 9 (test accuracy %s, "
          "against %s for the MLP ensemble):" % (pct(tc["prob"]), pct(self.ens_p)))
        L()
        self.table("3 few labels", [mlp_row, FEW_CNN_ROW])
        L("| teachers, on the %g%% labeled samples (their own training data) | accuracy | mean "
          "p(true class), T=1 | mean p(true class), %s |" % (100 * FEW_T_FRACTION, tk))
        L("|---|---|---|---|")
        for name, f in (("MLP ensemble", fm), ("CNN ensemble", fc)):
            L("| %s | %s | %.3f | %.3f |" % (name, pct(f["train_acc"]), f["p_true"]["T=1"],
                                             f["p_true"][tk]))
        L()
        c, m = self.acc("3 few labels", FEW_CNN_ROW), self.acc("3 few labels", mlp_row)
        self.finding("the CNN ensemble, %+.2f points on the test set, gives the soft-only "
                     "student %+.2f points (`%s` vs `%s`): %s" % (
                         100 * (tc["prob"] - self.ens_p), 100 * (c - m), FEW_CNN_ROW,
                         mlp_row,
                         "with a few labeled samples the soft targets on those samples, which "
                         "the members were trained on, do not carry the ensemble's test-set "
                         "lead, so stronger teachers alone do not close the gap to hard + 4."
                         if c < m + 0.005 and tc["prob"] > self.ens_p else
                         "the soft-only student follows the teachers' test accuracy here."), c, m)

    def few_augmented(self):
        """Experiment 3 at FEW_T_FRACTION with `--augment`: every shifted/flipped copy labeled
        by the live teachers (soft) or by its own label (hard), against the plain rows."""
        if not any(("3 few labels", r) in self.rows for r in FEW_AUG_ROWS):
            return
        pf, L = 100 * FEW_T_FRACTION, self.line
        plain = ("%g%% hard" % pf, "%g%% soft, labeled only" % pf)
        L("The same %g%% rows with `--augment %s`: each batch is shifted and flipped before the "
          "live teachers label it, so the soft-only student learns the ensemble's targets on many "
          "views of its few samples (consistent teaching, Beyer et al. 2022); the hard-label row "
          "trains on the same augmented images:" % (pf, FEW_AUGMENT))
        L()
        aug_rows = [few_aug_row(T) for T in FEW_AUG_TEMPS]
        self.table("3 few labels", [plain[0], FEW_AUG_ROWS[0], plain[1]] + aug_rows)
        h, ha, so, sa = (self.acc("3 few labels", r) for r in (plain[0], FEW_AUG_ROWS[0],
                                                                plain[1], FEW_AUG_ROWS[1]))
        sb = best(aug_rows, lambda r: self.acc("3 few labels", r))
        self.finding("augmentation gives the soft-only student %+.2f points (`%s` vs `%s`) and "
                     "the hard-label student %+.2f (`%s` vs `%s`); the best augmented soft-only "
                     "row (`%s`) is %+.2f points above the better hard-label row." % (
                         100 * (sa - so), FEW_AUG_ROWS[1], plain[1], 100 * (ha - h),
                         FEW_AUG_ROWS[0], plain[0], sb,
                         100 * (self.acc("3 few labels", sb) - max(h, ha))), h, ha, so, sa)

    def verdict(self, ok):
        return "not measured yet" if ok is None else "**met**" if ok else "**not met**"

    def write(self):
        d, s = self.d, SCALES[self.d["scale"]]
        te = {k: d["teachers"].get(k, NO_TEACHERS) for k in ("k1", "k2", "k3", "k5", "train")}
        L = self.line
        L("# edistill: the method's claims, measured")
        L()
        if d["scale"] == "quick":
            L("> **QUICK scale** (EXPERIMENTS_QUICK=1): tiny members, data and steps; this report "
              "checks the machinery, its numbers mean nothing.")
            L()
        L("Generated by `make experiments` (scripts/experiments.py) from `%s`: Fashion-MNIST, %d "
          "training samples, the 10,000 test samples; every student row is trained with 2 seeds "
          "(mean, then each seed). Teachers: %d members `%s` (%d epochs, dropout 0.2 input / 0.5 "
          "hidden, seeds 1..%d). Students train %d steps of batch %d (Adam, cosine schedule) from a "
          "float32 target store (`student_trainer label` once per teacher set, `distill "
          "--targets`); hard-label rows are `distill --alpha 0` (the same trainer, data order and "
          "steps; the soft term weighted 0). Distilled rows use alpha %g and T %g unless the row "
          "says otherwise." % (os.path.relpath(d["results_file"], SRC), s["n_train"],
                               s["n_members"], s["member_arch"], s["member_epochs"],
                               s["n_members"], s["steps"], s["batch"], ALPHA, T_WORK))
        L()
        L("Machine: %s. The invocations that wrote these results (a run, or one that added rows "
          "with --reuse-results): %.0f s, %d runs executed, the rest from the cache; the "
          "student runs' own wall times add up to %.0f s (members and stores not counted)."
          % (d["machine"], d["wall_s"], d["runs_executed"],
             sum(r.get("wall_s", 0) for r in d["runs"])))
        L()
        missing = d["runs_planned"] - len(d["runs"])
        if missing:
            L("> **Partial report**: %d of the %d planned runs are not done yet; their cells show "
              "`-`. Run `make experiments` again to continue." % (missing, d["runs_planned"]))
            L()
        ens_p, ens_l = te["k5"]["prob"], te["k5"]["logit"]
        self.ens_p = ens_p
        # 1
        big = "2x800"
        temps = s["temps"]
        bestT = best(temps, lambda T: self.acc("2 temperature", "%s T=%g" % (big, T)))
        hard = self.acc("1 hinton", "%s hard" % big)
        L("## 1. Hinton's table, analogue")
        L()
        L("| model | test accuracy (%) | training accuracy (%) |")
        L("|---|---|---|")
        L("| one member (mean of %d) | %s | %s |" % (len(te["k5"]["members"]),
                                                    pct(mean(te["k5"]["members"])),
                                                    pct(mean(te["train"]["members"]))))
        L("| ensemble, mean of probabilities | %s | %s |" % (pct(ens_p), pct(te["train"]["prob"])))
        L("| ensemble, mean of logits | %s | %s |" % (pct(ens_l), pct(te["train"]["logit"])))
        for row, exp in (("%s hard" % big, "1 hinton"), ("%s T=20" % big, "2 temperature")):
            rs = self.rows.get((exp, row), [])
            tr = [r["train_accuracy"] for r in rs if "train_accuracy" in r]
            L("| %s (%s) | %s | %s |" % (row, s["big"], pct(self.acc(exp, row)),
                                        pct(mean(tr))))
        L()
        L("Students (\"gap closed\" = (distilled - hard) / (ensemble prob - hard)); the best T of "
          "the sweep in section 2 is T=%g for %s:" % (bestT, big))
        L()
        self.line("| student | mean | seed 1 | seed 2 | gap closed |")
        self.line("|---|---|---|---|---|")
        for arch in (big,) + tuple(s["compact"]):
            h = self.acc("1 hinton", "%s hard" % arch)
            bt = best(temps, lambda T: self.acc("2 temperature", "%s T=%g" % (arch, T)))
            for exp, row in (("1 hinton", "%s hard" % arch), ("2 temperature", "%s T=20" % arch),
                             ("2 temperature", "%s T=%g" % (arch, bt))):
                rs = sorted(self.rows.get((exp, row), []), key=lambda r: r["seed"])
                a = self.acc(exp, row)
                gap = "-" if row.endswith("hard") else (
                    ratio(a - h, ens_p - h) if ens_p > h else "n/a (ensemble below hard)")
                L("| %s%s | **%s** | %s | %s |" % (row, " (best T)" if exp.startswith("2") and
                                                   row.endswith("T=%g" % bt) else "", pct(a),
                                                   seed_cells(rs), gap))
        L()
        dist20 = self.acc("2 temperature", "%s T=20" % big)
        if dist20 != dist20 or hard != hard:
            pass
        elif dist20 <= hard:
            L("Distillation at T=20 does **not** beat hard labels for %s here (%s vs %s): with "
              "all %d labels and no regularization the hard student already reaches %s on its "
              "training set; see the training accuracies above." % (
                  big, pct(dist20), pct(hard), s["n_train"],
                  pct(mean([r.get("train_accuracy", NAN) for r in
                            self.rows.get(("1 hinton", "%s hard" % big), [])]))))
        else:
            L("Distillation at T=20 beats hard labels for %s by %.2f points (rows above)." %
              (big, 100 * (dist20 - hard)))
        L()
        # 2
        L("## 2. Temperature x student size")
        L()
        names = [big] + list(s["compact"])
        self.table("2 temperature", ["%s T=%g" % (n, T) for n in names for T in temps])
        img = self.plot("temperature", "accuracy vs T", "T",
                        [(n, [(T, self.acc("2 temperature", "%s T=%g" % (n, T))) for T in temps])
                         for n in names], logx=True)
        if img:
            L("![accuracy vs T](%s)" % img)
            L()
        bts = [best(temps, lambda T, n=n: self.acc("2 temperature", "%s T=%g" % (n, T)))
               for n in names]
        accs = [self.acc("2 temperature", "%s T=%g" % (n, T)) for n, T in zip(names, bts)]
        self.finding("the best T is %s (rows %s). \"Small students want a low T\" %s here: the "
                     "smallest student's best T (%g) is %s the largest's (%g)." % (
                         ", ".join("%g for %s" % (T, n) for n, T in zip(names, bts)),
                         ", ".join("`%s T=%g`" % (n, T) for n, T in zip(names, bts)),
                         "holds" if bts[-1] <= bts[0] else "does not hold", bts[-1],
                         "at most" if bts[-1] <= bts[0] else "above", bts[0]), *accs)
        # 3
        L("## 3. Few labels")
        L()
        fr = s["fractions"]
        kinds = ("hard", "soft, labeled only", "soft + rest unlabeled")
        self.table("3 few labels", ["%g%% %s" % (100 * f, k) for f in fr for k in kinds])
        series = [(k, [(100 * f, self.acc("3 few labels", "%g%% %s" % (100 * f, k))) for f in fr])
                  for k in kinds]
        series.append(("ensemble", [(100 * f, ens_p) for f in fr]))
        img = self.plot("few_labels", "accuracy vs labeled fraction", "labeled fraction (%)",
                        series)
        if img:
            L("![accuracy vs labeled fraction](%s)" % img)
            L()
        for f in fr:
            h, so, un = (self.acc("3 few labels", "%g%% %s" % (100 * f, k)) for k in kinds)
            self.finding("with %g%% of the labels, soft targets on those samples alone: %+.2f "
                         "points relative to hard labels (`%g%% soft, labeled only` vs `%g%% "
                         "hard`); with the rest streamed unlabeled: %+.2f points relative to the "
                         "ensemble (`%g%% soft + rest unlabeled`)." % (
                             100 * f, 100 * (so - h), 100 * f, 100 * f, 100 * (un - ens_p),
                             100 * f), h, so, un, ens_p)
        pf = 100 * FEW_T_FRACTION
        L("The %g%% soft-only student over T (the rows above use T=%g):" % (pf, T_WORK))
        L()
        few_rows = [few_t_row(FEW_T_FRACTION, T) for T in FEW_T_TEMPS]
        self.table("3 few labels", few_rows)
        few_best = best(few_rows, lambda r: self.acc("3 few labels", r))
        few_bt = FEW_T_TEMPS[few_rows.index(few_best)]
        self.few_teachers(few_rows[0])
        self.finding("with %g%% of the labels the soft-only student is best at T=%g (`%s`, %s; "
                     "T=%g: %s); with all the data the same student is best at T=%g (section "
                     "2)." % (pf, few_bt, few_best, pct(self.acc("3 few labels", few_best)),
                              T_WORK, pct(self.acc("3 few labels", few_rows[0])),
                              bestT), self.acc("3 few labels", few_best))
        self.few_augmented()
        # 4
        L("## 4. No labels at all")
        L()
        self.table("4 no labels", ["alpha=1, unlabeled stream only"])
        nl = self.acc("4 no labels", "alpha=1, unlabeled stream only")
        self.finding("without a single label the student is %+.2f points relative to the "
                     "ensemble (row `alpha=1, unlabeled stream only`, section 1's ensemble) and "
                     "%+.2f relative to the student trained on all labels (`2x800 hard`)." % (
                         100 * (nl - ens_p), 100 * (nl - hard)), nl, ens_p, hard)
        # 5
        L("## 5. Ensemble size")
        L()
        L("| K | ensemble (prob) | student mean | seed 1 | seed 2 |")
        L("|---|---|---|---|---|")
        ks = (1, 2, 3, 5)
        for k in ks:
            rs = sorted(self.rows.get(("5 ensemble size", "K=%d" % k), []),
                        key=lambda r: r["seed"])
            L("| %d | %s | **%s** | %s |" % (k, pct(te["k%d" % k]["prob"]),
                                            pct(self.acc("5 ensemble size", "K=%d" % k)),
                                            seed_cells(rs)))
        L()
        img = self.plot("ensemble_size", "accuracy vs ensemble size", "members K",
                        [("distilled student", [(k, self.acc("5 ensemble size", "K=%d" % k))
                                                for k in ks]),
                         ("ensemble", [(k, te["k%d" % k]["prob"]) for k in ks])])
        if img:
            L("![accuracy vs K](%s)" % img)
            L()
        a1, a5 = self.acc("5 ensemble size", "K=1"), self.acc("5 ensemble size", "K=5")
        self.finding("distilling 5 members instead of 1 changes the student by %+.2f points (rows "
                     "`K=1`, `K=5`); the ensembles differ by %+.2f." % (
                         100 * (a5 - a1), 100 * (te["k5"]["prob"] - te["k1"]["prob"])),
                     a1, a5, te["k1"]["prob"], te["k5"]["prob"])
        # 6
        L("## 6. Rival regularizers")
        L()
        regs = (["label smoothing %g" % e for e in LABEL_SMOOTHING] +
                ["dropout 0.2/0.5", "weight decay %s" % WEIGHT_DECAY])
        self.table("6 regularizers", ["hard labels, none"] + regs + ["distillation T=%g" % T_WORK])
        rb = best(regs, lambda r: self.acc("6 regularizers", r))
        ra, da = self.acc("6 regularizers", rb), self.acc("6 regularizers",
                                                          "distillation T=%g" % T_WORK)
        self.finding("the best rival regularizer is `%s` (%s); distillation (`distillation T=%g`) "
                     "is %+.2f points from it and %+.2f from no regularization." % (
                         rb, pct(ra), T_WORK, 100 * (da - ra),
                         100 * (da - self.acc("6 regularizers", "hard labels, none"))),
                     ra, da, self.acc("6 regularizers", "hard labels, none"))
        # 7
        L("## 7. Combination and loss")
        L()
        self.table("7 combine/loss", ["prob mean, soft CE", "logit mean, soft CE",
                                      "L2 logit matching"])
        L("L2 logit matching regresses the student's logits on the members' mean logits (T and the "
          "combine mode do not enter).")
        L()
        cl = ["prob mean, soft CE", "logit mean, soft CE", "L2 logit matching"]
        cb = best(cl, lambda r: self.acc("7 combine/loss", r))
        self.finding("`%s` is the best of the three (%s)." % (cb, ", ".join(
            "%s %s" % (r, pct(self.acc("7 combine/loss", r))) for r in cl)),
            *[self.acc("7 combine/loss", r) for r in cl])
        # 8
        L("## 8. Privileged information")
        L()
        L("Teachers see 28x28; the students see only the view (`--student-view`): 7x7 = "
          "avgpool:4, 14x14 = avgpool:2, %d steps. Columns: hard labels on n samples; distilled "
          "on the n labeled samples; distilled with the other %d-n samples streamed unlabeled. "
          "The distilled columns show the best (T, alpha) of a grid (chosen on the test set: there "
          "is no validation split): T in %s x alpha in %s for the 7x7 student on the labeled "
          "samples (table below), (T, alpha) in %s otherwise; every run is in "
          "results/experiments.json." % (s["priv_steps"], s["n_train"], list(s["priv_temps"]),
                                         list(s["priv_alphas"]), list(s["priv_small"])))
        L()
        L("| view | n | hard | distilled (best T, alpha) | + unlabeled (best T, alpha) |")
        L("|---|---|---|---|---|")
        priv = {}
        for vi, vname in enumerate(s["views"]):
            for n in s["priv_n"]:
                h = self.acc("8 privileged", "%s n=%d hard" % (vname, n))
                cells = []
                for suffix in ("", " + unlabeled"):
                    grid = [(self.acc("8 privileged", "%s n=%d T=%g alpha=%g%s" %
                                      (vname, n, T, a, suffix)), T, a)
                            for T, a in priv_grid(s, vi == 0 and not suffix)]
                    cells.append(best(grid, lambda g: g[0]))
                priv[(vname, n)] = (h, cells)
                L("| %s | %d | %s | **%s** (T=%g, alpha=%g) | **%s** (T=%g, alpha=%g) |" % (
                    vname, n, pct(h), pct(cells[0][0]), cells[0][1], cells[0][2],
                    pct(cells[1][0]), cells[1][1], cells[1][2]))
        L()
        for vname in s["views"]:
            gains = [(n, priv[(vname, n)][1][0][0] - priv[(vname, n)][0]) for n in s["priv_n"]]
            self.finding("the %s student distilled from 28x28 teachers, relative to hard labels on "
                         "the same samples: %s (rows `%s n=N hard` and the best `%s n=N T=.. "
                         "alpha=..`)." % (vname, ", ".join("%+.2f points at n = %d" % (100 * g, n)
                                                           for n, g in gains), vname, vname),
                         *[g for _, g in gains])
        pn = 1000 if 1000 in s["priv_n"] else s["priv_n"][1]
        L("The T x alpha grid of the 7x7 student distilled on its n = %d labeled samples "
          "(hard labels: %s):" % (pn, pct(self.acc("8 privileged", "7x7 n=%d hard" % pn))))
        L()
        L("| T \\ alpha | %s |" % " | ".join("%g" % a for a in s["priv_alphas"]))
        L("|---|%s" % ("---|" * len(s["priv_alphas"])))
        for T in s["priv_temps"]:
            L("| %g | %s |" % (T, " | ".join(pct(self.acc("8 privileged", "7x7 n=%d T=%g alpha=%g"
                                                          % (pn, T, a))) for a in s["priv_alphas"])))
        L()
        cnn_row = "2x800 from the CNN ensemble, T=%g" % T_WORK
        L("## 9. A CNN ensemble distilled into the MLP student")
        L()
        if ("9 CNN ensemble", cnn_row) not in self.rows:
            L("Not run (left out with `EXPERIMENTS_CNN=0`; %d CNN members `%s`, %d epochs)." % (
                s["cnn_members"], s["cnn_arch"], s["cnn_epochs"]))
            L()
        else:
            tc = d["teachers"].get("cnn", NO_TEACHERS)
            L("CNN members `%s` (%d, %d epochs; dropout only as the arch's layer): each %s, "
              "ensemble %s (mean of "
              "probabilities). The MLP ensemble of section 1: %s." % (
                  s["cnn_arch"], s["cnn_members"], s["cnn_epochs"],
                  ", ".join(pct(a) for a in tc["members"]), pct(tc["prob"]), pct(ens_p)))
            L()
            self.table("9 CNN ensemble", [cnn_row])
            c9 = self.acc("9 CNN ensemble", cnn_row)
            m9 = self.acc("2 temperature", "2x800 T=%g" % T_WORK)
            self.finding("the 2x800 student distilled from the CNN ensemble: %+.2f points "
                         "relative to the same student distilled from the MLP ensemble (`2x800 "
                         "T=%g`, section 2) and %+.2f relative to hard labels (`2x800 hard`)." % (
                             100 * (c9 - m9), T_WORK, 100 * (c9 - hard)), c9, m9, hard)
        # numbers to reach
        L("## Numbers to reach")
        L()
        n3 = "3%"
        h3_rows = ["3% hard", FEW_AUG_ROWS[0]]  # the better hard-label row is the baseline
        h3_best = best(h3_rows, lambda r: self.acc("3 few labels", r))
        h3 = self.acc("3 few labels", h3_best)
        s3_rows = ([few_t_row(FEW_T_FRACTION, T) for T in FEW_T_TEMPS] +
                   [few_aug_row(T) for T in FEW_AUG_TEMPS])
        s3_best = best(s3_rows, lambda r: self.acc("3 few labels", r))
        s3 = self.acc("3 few labels", s3_best)
        s3w = self.acc("3 few labels", "3% soft, labeled only")
        u3 = self.acc("3 few labels", "3% soft + rest unlabeled")
        nl = self.acc("4 no labels", "alpha=1, unlabeled stream only")
        ph, pc = priv[("7x7", pn)]
        def ge(a, b):
            return None if a != a or b != b else bool(a >= b)
        goals = [
            ("%s of the labels: soft targets on those samples alone >= hard + 4 points" % n3,
             "%s (`%s`, the best of the T sweeps with and without augmentation; T=%g: %s) vs %s "
             "(`%s`, "
             "the better of the plain and the augmented hard-label rows; section 3)" % (
                 pct(s3), s3_best, T_WORK, pct(s3w), pct(h3), h3_best), ge(s3, h3 + 0.04)),
            ("%s of the labels + the rest streamed unlabeled: within 1 point of the ensemble" % n3,
             "%s vs %s (sections 3, 1)" % (pct(u3), pct(ens_p)), ge(u3, ens_p - 0.01)),
            ("no labels (alpha = 1, unlabeled stream only): within 1 point of the ensemble",
             "%s vs %s (sections 4, 1)" % (pct(nl), pct(ens_p)), ge(nl, ens_p - 0.01)),
            ("privileged information: distilled 7x7 >= hard 7x7 + 3 points at n = %d" % pn,
             "%s with the other samples streamed unlabeled (T=%g, alpha=%g), %s on the %d labeled "
             "samples alone (T=%g, alpha=%g), vs %s hard (section 8)" % (
                 pct(pc[1][0]), pc[1][1], pc[1][2], pct(pc[0][0]), pn, pc[0][1], pc[0][2], pct(ph)),
             ge(max((v for v in (pc[0][0], pc[1][0]) if v == v), default=NAN), ph + 0.03)),
        ]
        L("| goal | measured | |")
        L("|---|---|---|")
        for g, m, ok in goals:
            L("| %s | %s | %s |" % (g, m, self.verdict(ok)))
        L()
        if ens_p == ens_p and hard == hard and ens_p < hard:
            L("The MLP ensemble (%s test, %s training accuracy) is below the 2x800 student "
              "trained on hard labels (%s test, %s training; section 1): on the full training "
              "set its soft targets carry less than the labels, which is why distillation does "
              "not beat hard labels in sections 1 and 2." % (
                  pct(ens_p), pct(te["train"]["prob"]), pct(hard),
                  pct(mean([r.get("train_accuracy", NAN) for r in
                            self.rows.get(("1 hinton", "%s hard" % big), [])]))))
            L()
        self.d["goals"] = [dict(goal=g, measured=m, met=ok) for g, m, ok in goals]
        L("## Commands")
        L()
        L("One example of each kind of command the run issued (every run's full configuration is "
          "in results/experiments.json):")
        L()
        L("```")
        for what, argv in d["commands"]:
            L("# %s" % what)
            L(" ".join(argv))
        L("```")
        with open(self.path, "w") as f:
            f.write("\n".join(self.out) + "\n")


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d cores, %s %s, load average %.1f at the start" % (
        cpu, os.cpu_count() or 0, platform.system(), platform.release(), os.getloadavg()[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--quick", action="store_true",
                    default=os.environ.get("EXPERIMENTS_QUICK", "") not in ("", "0"))
    ap.add_argument("--results")
    ap.add_argument("--report")
    ap.add_argument("--img")
    ap.add_argument("--cache")
    ap.add_argument("--no-cnn", dest="cnn", action="store_false",
                    default=os.environ.get("EXPERIMENTS_CNN", "1") != "0",
                    help="leave out experiment 9 (a CNN ensemble distilled into the MLP student)")
    ap.add_argument("--no-run", action="store_true",
                    help="write the results and the report from the cache only (a partial run)")
    ap.add_argument("--reuse-results", action="store_true",
                    help="take the runs and the teacher accuracies recorded in the results file "
                         "as cached: a new cache adds rows without running the old ones again")
    args = ap.parse_args()
    scale = "quick" if args.quick else "full"
    q = "-quick" if args.quick else ""
    args.results = args.results or os.path.join(SRC, "results", "experiments%s.json" % q)
    args.report = args.report or os.path.join(SRC, "docs", "RESULTS%s.md" % q.upper().replace("-", "_"))
    args.img = args.img or os.path.join(os.path.dirname(args.report), "img")
    args.cache = args.cache or os.path.join(SRC, "results", "cache-%s" % scale)
    for p in (TRAIN_X, TRAIN_Y, TEST_X, TEST_Y):
        if not os.path.exists(p):
            raise SystemExit("experiments: %s is missing (Fashion-MNIST, EDISTILL_FMNIST_DIR)" % p)
    r = Runner(args, scale)
    mach = machine()
    print("experiments: %s scale, cache %s" % (scale, args.cache), flush=True)
    # --no-run rewrites the report of the last real invocation: keep its machine, wall time and
    # example commands (this one issues none); --reuse-results keeps its runs and teacher accuracies
    prev = {}
    if (args.no_run or args.reuse_results) and os.path.exists(args.results):
        with open(args.results) as f:
            prev = json.load(f)
    if args.reuse_results:
        r.recorded = {rec["key"]: {k: rec[k] for k in ("accuracy", "wall_s", "train_accuracy")
                                   if k in rec} for rec in prev.get("runs", [])}
    teachers = {}

    def teacher(key, store, stats):
        """teachers[key] = stats(the logits of the store that store() gives, when it gives one),
        or the results file's with --reuse-results (no member trained, no store labeled)."""
        if args.reuse_results and key in prev.get("teachers", {}):
            teachers[key] = prev["teachers"][key]
            return
        st = store()
        if st:
            teachers[key] = stats(store_logits(st))

    y_test = idx_labels(TEST_Y)
    y_train = idx_labels(TRAIN_Y, r.s["n_train"])
    for k in (1, 2, 3, 5):
        k = min(k, r.s["n_members"])
        teacher("k%d" % k, lambda k=k: r.store(k, ("test",)), lambda z: teacher_stats(z, y_test))
    teacher("train", lambda: r.store(r.s["n_members"], ("all",)),
            lambda z: teacher_stats(z, y_train))
    if r.cnn:
        teacher("cnn", lambda: r.store(r.s["cnn_members"], ("test",), "cnn"),
                lambda z: teacher_stats(z, y_test))
    # how sharp each teacher set's soft targets are on the labeled samples of experiment 3's T
    # sweep (the members were trained on them): the soft-only students learn from these alone
    n_few = int(round(FEW_T_FRACTION * r.s["n_train"]))

    def few_stats(z):
        z, y = z[:n_few], y_train[:n_few]
        return dict(train_acc=teacher_stats(z, y)["prob"],
                    p_true={"T=1": teacher_confidence(z, y, 1),
                            "T=%g" % T_WORK: teacher_confidence(z, y, T_WORK)})
    for kind, k in (("mlp", r.s["n_members"]), ("cnn", r.s["cnn_members"])):
        if kind == "mlp" or r.cnn:
            teacher("few_" + kind, lambda k=k, kind=kind: r.store(k, ("split", n_few), kind),
                    few_stats)
    last = [time.time()]

    def write(runs, planned):
        cmds = {w: [r.shown(x) for x in a] for w, a in prev.get("commands", [])}
        cmds.update(dict(r.commands))
        wall, ran, where = round(time.time() - r.t0, 1), r.ran, mach
        if args.no_run:  # this invocation ran nothing
            wall, ran, where = (prev.get(k, v) for k, v in (("wall_s", wall), ("runs_executed", ran),
                                                            ("machine", mach)))
        elif args.reuse_results and prev:  # the recorded runs, then this invocation's
            wall = round(prev.get("wall_s", 0) + (wall if ran else 0), 1)  # nothing run: as it was
            ran += prev.get("runs_executed", 0)
            where = prev.get("machine", mach)
            if "--reuse-results" not in where:
                where = "%s; the rows added by --reuse-results: %s" % (where, mach)
        data = dict(scale=scale, machine=where, wall_s=wall, runs_executed=ran,
                    runs_planned=planned,
                    teachers=teachers, runs=runs,
                    results_file=args.results, commands=[[w, a] for w, a in cmds.items()],
                    settings={k: (list(v) if isinstance(v, tuple) else v)
                              for k, v in r.s.items() if k != "views"},
                    views=r.s["views"], seeds=list(SEEDS), t_work=T_WORK, alpha=ALPHA)
        os.makedirs(os.path.dirname(args.report), exist_ok=True)
        Report(data, args.img, args.report).write()
        os.makedirs(os.path.dirname(args.results), exist_ok=True)
        with open(args.results + ".tmp", "w") as f:
            json.dump(data, f, indent=1)
        os.replace(args.results + ".tmp", args.results)

    def progress(runs):  # a partial report every 10 minutes of a long run
        if time.time() - last[0] > 600:
            write(runs, r.total)
            last[0] = time.time()

    runs = plan(r, progress)
    write(runs, r.total)
    if not r.no_run and len(runs) == r.total and r.work.startswith("/dev/shm/"):
        shutil.rmtree(r.work, ignore_errors=True)  # everything done: nothing left to resume
    print("experiments: %d runs (%d executed) in %.0fs -> %s, %s" % (
        len(runs), r.ran, time.time() - r.t0, args.results, args.report), flush=True)


if __name__ == "__main__":
    main()
