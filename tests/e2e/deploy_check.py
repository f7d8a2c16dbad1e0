#!/usr/bin/python3
"""Offline checks of the launch files in deploy/ (used by tests/e2e/deploy_*.sh).

  deploy_check.py compose CONFIG.yml K OUTDIR   docker-compose `config` output: structure of the
                                                services; writes OUTDIR/<service>.argv
  deploy_check.py k8s DIR OUTDIR [VAR=VALUE...] manifests: schema (python3-kubernetes models) and
                                                cross-references; writes OUTDIR/<container>.argv
                                                with $(VAR) expanded from the container env,
                                                overridden by VAR=VALUE
  deploy_check.py k8s-label DIR LABEL_DIR OUTDIR [VAR=VALUE...]  the Indexed labeling Job of
                                                LABEL_DIR against DIR's objects; writes
                                                OUTDIR/label-<index>.argv, one per shard
  deploy_check.py dockerfile FILE OUTDIR        stages, packages and user of deploy/Dockerfile;
                                                writes OUTDIR/<stage>.packages and run-<n>.sh
  deploy_check.py rewrite FILE FROM=TO...       rewrites every argument of an .argv file in one pass

An .argv file is the command's arguments, each terminated by a NUL byte (bash: mapfile -d '').
Each check prints 'ok: ...'; the first failure prints 'FAIL: ...' and exits 1.
"""
import os
import re
import shlex
import sys

import yaml


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def ok(msg):
    print(f"ok: {msg}")


def check(cond, msg):
    if not cond:
        fail(msg)


def write_argv(path, argv):
    check(argv and all(isinstance(a, str) for a in argv), f"{path}: command is not a list of strings: {argv!r}")
    with open(path, "wb") as f:
        for a in argv:
            f.write(a.encode() + b"\0")


def read_argv(path):
    with open(path, "rb") as f:
        data = f.read()
    return [a.decode() for a in data.split(b"\0")[:-1]]


def opt(argv, name):
    """Value of option `name` in argv (last one wins), or None."""
    val = None
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            val = argv[i + 1]
        elif a.startswith(name + "="):
            val = a[len(name) + 1:]
    return val


def shell_opt(script, name):
    """Value of option `name` in a `sh -c` script (tokenized with shlex, quotes removed)."""
    toks = shlex.split(script.replace("\\\n", " "), comments=False)
    return opt(toks, name)


# ---------------------------------------------------------------------------------------------
def s_compose_metrics(svc, name):
    """EDISTILL_METRICS_LISTEN=0.0.0.0:P and the port P published on the host's loopback."""
    listen = str((svc.get("environment") or {}).get("EDISTILL_METRICS_LISTEN", ""))
    m = re.fullmatch(r"0\.0\.0\.0:(\d+)", listen)
    check(m, f"{name}: EDISTILL_METRICS_LISTEN {listen!r} must be 0.0.0.0:PORT")
    ports = [str(p) for p in svc.get("ports") or []]
    want = f"127.0.0.1::{m.group(1)}/tcp"
    check(want in ports or want[:-4] in ports, f"{name}: ports {ports} must publish {want} (loopback only)")
    return int(m.group(1))


def cmd_compose(cfg_path, k, outdir):
    with open(cfg_path) as f:
        cfg = yaml.safe_load(f)
    services = cfg.get("services") or {}
    teachers = [f"teacher-{i}" for i in range(k)]
    want = {"train", "distill", *teachers}
    check(set(services) == want, f"services are {sorted(services)}, expected {sorted(want)}")
    ok(f"services: train, {', '.join(teachers)}, distill")

    def unescape(argv):  # `config` keeps $$ (a literal $ in the container's command)
        return [a.replace("$$", "$") for a in argv]

    for name, svc in services.items():
        check(isinstance(svc.get("command"), list), f"{name}: command must be a list (exec form)")
        vols = [v.split(":")[1] for v in svc.get("volumes", [])]
        check("/data" in vols and "/models" in vols, f"{name}: /data and /models must be mounted, got {vols}")
        write_argv(os.path.join(outdir, f"{name}.argv"), unescape(svc["command"]))

    train = services["train"]
    check(train.get("restart") in ("no", None), "train must not restart (one-shot)")
    script = unescape(train["command"])[2]
    check(train["command"][:2] == ["sh", "-c"], "train runs a sh -c script")
    check(f"-lt {k} " in script, f"train script does not loop over {k} members")
    check("teacher_worker train" in script and "-s $m" in script, "train script must skip existing members")
    ok("train: one-shot, trains members that are missing")

    endpoints = []
    for t in teachers:
        svc = services[t]
        argv = unescape(svc["command"])
        check(argv[:2] == ["teacher_worker", "serve"], f"{t}: command is not teacher_worker serve: {argv}")
        check(opt(argv, "--model") == f"/models/member-{t.split('-')[1]}.safetensors",
              f"{t}: serves {opt(argv, '--model')}, expected its own member file")
        bind = opt(argv, "--bind") or ""
        m = re.fullmatch(r"tcp://0\.0\.0\.0:(\d+)", bind)
        check(m, f"{t}: --bind {bind!r} must listen on all interfaces with a fixed port")
        endpoints.append(f"tcp://{t}:{m.group(1)}")
        hc = svc.get("healthcheck") or {}
        ready = opt(argv, "--ready-file")
        check(hc.get("test") == ["CMD", "test", "-s", ready],
              f"{t}: healthcheck {hc.get('test')} must be test -s on its --ready-file {ready}")
        write_argv(os.path.join(outdir, f"{t}.health.argv"), hc["test"][1:])
        s_compose_metrics(svc, t)
        dep = (svc.get("depends_on") or {}).get("train") or {}
        check(dep.get("condition") == "service_completed_successfully",
              f"{t}: must wait for train to complete, got {dep}")
    ok(f"teachers: each serves its member on {endpoints[0].rsplit(':', 1)[1]}, healthcheck = test -s ready file, "
       f"after train; metrics port published on 127.0.0.1")

    distill = services["distill"]
    argv = unescape(distill["command"])
    check(argv[:2] == ["student_trainer", "distill"], f"distill: command is {argv[:2]}")
    check(opt(argv, "--teachers") == ",".join(endpoints),
          f"distill: --teachers {opt(argv, '--teachers')} != {','.join(endpoints)}")
    deps = distill.get("depends_on") or {}
    for t in teachers:
        check((deps.get(t) or {}).get("condition") == "service_healthy", f"distill: must wait for {t} healthy")
    check(set(deps) == set(teachers), f"distill depends on {sorted(deps)}")
    s_compose_metrics(distill, "distill")
    check(opt(argv, "--out", ).startswith("/models/"), "distill: student must be written to the models volume")
    ok("distill: --teachers lists every teacher service, waits for all to be healthy")


# ---------------------------------------------------------------------------------------------
def s_model_class(type_name):
    import kubernetes.client as kc
    return getattr(kc, type_name, None)


def s_validate(obj, type_name, path, errors):
    """Checks obj against the python3-kubernetes model `type_name`: known fields, types, required."""
    m = re.fullmatch(r"list\[(.+)\]", type_name)
    if m:
        if not isinstance(obj, list):
            errors.append(f"{path}: expected a list")
            return
        for i, item in enumerate(obj):
            s_validate(item, m.group(1), f"{path}[{i}]", errors)
        return
    m = re.fullmatch(r"dict\((\w+), (.+)\)", type_name)
    if m:
        if not isinstance(obj, dict):
            errors.append(f"{path}: expected a mapping")
            return
        for key, val in obj.items():
            s_validate(val, m.group(2), f"{path}.{key}", errors)
        return
    scalars = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object,
               "datetime": str, "date": str}
    if type_name in scalars:
        if type_name == "str" and isinstance(obj, (int, float)) and not isinstance(obj, bool):
            errors.append(f"{path}: {obj!r} must be a string (quote it)")
        elif type_name == "int" and (not isinstance(obj, int) or isinstance(obj, bool)):
            errors.append(f"{path}: {obj!r} must be an integer")
        elif not isinstance(obj, scalars[type_name]):
            errors.append(f"{path}: {obj!r} must be {type_name}")
        return
    cls = s_model_class(type_name)
    if cls is None:
        errors.append(f"{path}: unknown model type {type_name}")
        return
    if type_name == "IntOrString" or type_name == "Quantity":
        return
    if not isinstance(obj, dict):
        errors.append(f"{path}: expected a mapping for {type_name}")
        return
    json_to_attr = {v: k for k, v in cls.attribute_map.items()}
    for key, val in obj.items():
        attr = json_to_attr.get(key)
        if attr is None:
            errors.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        s_validate(val, cls.openapi_types[attr], f"{path}.{key}", errors)
    # Required fields: the model's constructor refuses None for them (client-side validation).
    try:
        from kubernetes.client import Configuration
        conf = Configuration()
        conf.client_side_validation = True
        kwargs = {attr: (obj.get(js) if obj.get(js) is not None else None)
                  for attr, js in cls.attribute_map.items()}
        # Nested values are checked above; pass placeholders so only presence is tested here.
        kwargs = {a: (v if v is None else "x") for a, v in kwargs.items()}
        cls(local_vars_configuration=conf, **kwargs)
    except ValueError as e:
        errors.append(f"{path}: {e}")
    except TypeError:
        pass


KIND_TYPES = {("v1", "Namespace"): "V1Namespace", ("v1", "Service"): "V1Service",
              ("v1", "Secret"): "V1Secret", ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
              ("apps/v1", "StatefulSet"): "V1StatefulSet", ("batch/v1", "Job"): "V1Job"}


def s_expand(value, env):
    """Kubernetes' $(VAR) expansion in command/args ($$(VAR) escapes)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


def s_http_checks(pod_meta, c, listen, what):
    """The container's probes and the pod's prometheus.io annotations point at its --metrics-listen
    port: readiness GET /readyz, liveness GET /healthz, scrape /metrics. Returns the port."""
    m = re.fullmatch(r"0\.0\.0\.0:(\d+)", listen or "")
    check(m, f"{what}: --metrics-listen {listen} must listen on all interfaces (0.0.0.0:PORT)")
    port = int(m.group(1))
    cports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(cports.get("metrics") == port, f"{what}: containerPort 'metrics' {cports.get('metrics')} != --metrics-listen {port}")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        hg = c.get(probe, {}).get("httpGet")
        check(hg, f"{what}: {probe} must be an httpGet on the metrics listener")
        p = hg.get("port")
        check(hg.get("path") == path and (p == "metrics" or p == port),
              f"{what}: {probe} GET {hg.get('path')} on port {p}, expected {path} on metrics ({port})")
    ann = pod_meta.get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true", f"{what}: pod annotation prometheus.io/scrape must be \"true\"")
    check(ann.get("prometheus.io/port") == str(port), f"{what}: prometheus.io/port {ann.get('prometheus.io/port')} != {port}")
    check(ann.get("prometheus.io/path", "/metrics") == "/metrics", f"{what}: prometheus.io/path must be /metrics")
    return port


def cmd_k8s(mdir, outdir, overrides):
    with open(os.path.join(mdir, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    files = sorted(f for f in os.listdir(mdir) if f.endswith(".yaml") and f != "kustomization.yaml")
    check(sorted(kust["resources"]) == files, f"kustomization resources {kust['resources']} != files {files}")
    ns = kust["namespace"]
    docs = []
    for fn in files:
        with open(os.path.join(mdir, fn)) as f:
            docs += [(fn, d) for d in yaml.safe_load_all(f) if d is not None]
    ok(f"{len(docs)} objects in {len(files)} files, all listed in kustomization.yaml")

    try:
        import kubernetes  # noqa: F401
        errors = []
        for fn, d in docs:
            t = KIND_TYPES.get((d.get("apiVersion"), d.get("kind")))
            check(t, f"{fn}: unexpected apiVersion/kind {d.get('apiVersion')}/{d.get('kind')}")
            s_validate(d, t, f"{fn}:{d['kind']}/{d['metadata']['name']}", errors)
        check(not errors, "schema:\n  " + "\n  ".join(errors))
        ok(f"schema: every field known and typed per python3-kubernetes {kubernetes.__version__} models")
    except ImportError:
        print("note: python3-kubernetes missing: field-level schema check not run")

    by_kind = {}
    for fn, d in docs:
        md = d["metadata"]
        check(md.get("namespace", ns) == ns or d["kind"] == "Namespace", f"{fn}: namespace {md.get('namespace')} != {ns}")
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ("Namespace", "Service", "StatefulSet", "Job", "PersistentVolumeClaim", "Secret"):
        check(len(by_kind.get(kind, [])) == 1, f"expected one {kind}, got {len(by_kind.get(kind, []))}")
    svc, sts, job = by_kind["Service"][0], by_kind["StatefulSet"][0], by_kind["Job"][0]
    pvc, secret = by_kind["PersistentVolumeClaim"][0], by_kind["Secret"][0]
    check(by_kind["Namespace"][0]["metadata"]["name"] == ns, "Namespace object name != kustomization namespace")

    check(svc["spec"].get("clusterIP") == "None", "teacher Service must be headless (clusterIP: None)")
    check(not svc["spec"].get("publishNotReadyAddresses", False), "Service must publish ready teachers only")
    check(sts["spec"]["serviceName"] == svc["metadata"]["name"], "StatefulSet serviceName != headless Service name")
    tlabels = sts["spec"]["template"]["metadata"]["labels"]
    sel = sts["spec"]["selector"]["matchLabels"]
    check(sel.items() <= tlabels.items(), f"StatefulSet selector {sel} does not match its pod labels {tlabels}")
    check(svc["spec"]["selector"].items() <= tlabels.items(), "Service selector does not match teacher pods")
    jlabels = job["spec"]["template"]["metadata"]["labels"]
    check(not svc["spec"]["selector"].items() <= jlabels.items(), "Service selector also selects the trainer pod")
    ok(f"headless Service {svc['metadata']['name']} = StatefulSet serviceName; selectors match teacher pods only")

    def env_of(c):
        env = {}
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = str(e["value"])
        env.update(overrides)
        return env

    def pod_checks(pod, what):
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod.get("initContainers", []) + pod["containers"]:
            r = c.get("resources", {})
            check(r.get("requests") and r.get("limits"), f"{what}/{c['name']}: resources requests and limits required")
            for vm in c.get("volumeMounts", []):
                check(vm["name"] in vols, f"{what}/{c['name']}: mounts unknown volume {vm['name']}")
        for v in vols.values():
            if "persistentVolumeClaim" in v:
                check(v["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"], f"{what}: unknown PVC")
            if "secret" in v:
                check(v["secret"]["secretName"] == secret["metadata"]["name"], f"{what}: unknown Secret")
        sc = pod.get("securityContext", {})
        check(sc.get("runAsNonRoot") and sc.get("runAsUser", 0) != 0, f"{what}: must run as non-root")

    tpod = sts["spec"]["template"]["spec"]
    jpod = job["spec"]["template"]["spec"]
    pod_checks(tpod, "StatefulSet")
    pod_checks(jpod, "Job")
    check(jpod.get("restartPolicy") in ("Never", "OnFailure"), "Job restartPolicy must be Never or OnFailure")
    ok("pods: resources on every container, volumes/PVC/Secret references resolve, non-root")

    # Teacher container: sh -c wrapper picking the member from the pod ordinal.
    (tc,) = tpod["containers"]
    check(tc["command"][:2] == ["sh", "-c"], "teacher container runs a sh -c wrapper")
    script = tc["command"][2]
    check("${POD_NAME##*-}" in script, "teacher must pick its member from the pod ordinal (POD_NAME)")
    pod_name_env = [e for e in tc.get("env", []) if e["name"] == "POD_NAME"]
    check(pod_name_env and pod_name_env[0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name",
          "POD_NAME must come from metadata.name")
    bind = shell_opt(script, "--bind")
    ready = shell_opt(script, "--ready-file")
    m = re.fullmatch(r"tcp://0\.0\.0\.0:(\d+)", bind or "")
    check(m, f"teacher --bind {bind} must listen on all interfaces")
    port = int(m.group(1))
    cports = {p["name"]: p["containerPort"] for p in tc["ports"]}
    sport = svc["spec"]["ports"][0]
    check(cports.get(sport["targetPort"]) == port == sport["port"],
          f"ports disagree: --bind {port}, containerPort {cports}, Service {sport}")
    check(ready, "teacher keeps its --ready-file (compose and Slurm wait for it)")
    mport = s_http_checks(sts["spec"]["template"]["metadata"], tc, shell_opt(script, "--metrics-listen"), "teacher")
    check(mport != port, "teacher: metrics port = ZeroMQ port")
    ok(f"teacher: member from pod ordinal, port {port} = containerPort = Service port; probes GET /readyz "
       f"and /healthz on metrics port {mport} = --metrics-listen = prometheus.io/port")
    write_argv(os.path.join(outdir, "teacher.argv"), tc["command"])
    with open(os.path.join(outdir, "teacher.probe"), "w") as f:
        f.write(f"{mport} {tc['readinessProbe']['httpGet']['path']} {tc['livenessProbe']['httpGet']['path']}\n")
    (ic,) = tpod.get("initContainers", [])
    write_argv(os.path.join(outdir, "train-member.argv"), ic["command"])
    with open(os.path.join(outdir, "train-member.env"), "w") as f:
        for k2, v in env_of(ic).items():
            f.write(f"{k2}={v}\n")

    (jc,) = jpod["containers"]
    argv = [s_expand(a, env_of(jc)) for a in jc["command"] + jc.get("args", [])]
    check(argv[:2] == ["student_trainer", "distill"], f"Job runs {argv[:2]}")
    want = f"tcp://{svc['metadata']['name']}.{ns}.svc.cluster.local:{sport['port']}"
    check(opt(argv, "--teachers") == want, f"Job --teachers {opt(argv, '--teachers')} != {want}")
    check(all("$(" not in a for a in argv), f"unexpanded $(VAR) in Job command: {argv}")
    jport = s_http_checks(job["spec"]["template"]["metadata"], jc, opt(argv, "--metrics-listen"), "Job")
    ok(f"Job: --teachers {want} (the headless Service's DNS name and port); probes and "
       f"prometheus.io/port on metrics port {jport}")
    write_argv(os.path.join(outdir, "distill.argv"), argv)


def cmd_k8s_label(mdir, ldir, outdir, overrides):
    """deploy/k8s/label: the Indexed labeling Job against the objects of deploy/k8s (mdir)."""
    with open(os.path.join(ldir, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    files = sorted(f for f in os.listdir(ldir) if f.endswith(".yaml") and f != "kustomization.yaml")
    check(sorted(kust["resources"]) == files, f"label kustomization resources {kust['resources']} != {files}")
    with open(os.path.join(mdir, "kustomization.yaml")) as f:
        check(yaml.safe_load(f)["namespace"] == kust["namespace"], "label Job in another namespace")
    main = {}
    for fn in os.listdir(mdir):
        if fn.endswith(".yaml") and fn != "kustomization.yaml":
            with open(os.path.join(mdir, fn)) as f:
                for d in yaml.safe_load_all(f):
                    if d:
                        main[d["kind"]] = d
    with open(os.path.join(ldir, "label-job.yaml")) as f:
        (job,) = [d for d in yaml.safe_load_all(f) if d]
    try:
        import kubernetes  # noqa: F401
        errors = []
        s_validate(job, "V1Job", "label-job.yaml:Job", errors)
        check(not errors, "schema:\n  " + "\n  ".join(errors))
        ok("label Job: every field known and typed per the python3-kubernetes models")
    except ImportError:
        print("note: python3-kubernetes missing: field-level schema check not run")
    spec = job["spec"]
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c.get("env", [])}
    check(spec.get("completionMode") == "Indexed", "label Job must be completionMode: Indexed")
    shards = env["SHARDS"]["value"]
    check(str(spec["completions"]) == shards == str(spec["parallelism"]),
          f"completions {spec['completions']}, parallelism {spec['parallelism']} and SHARDS {shards} must agree")
    check(env["SHARD"]["valueFrom"]["fieldRef"]["fieldPath"] ==
          "metadata.annotations['batch.kubernetes.io/job-completion-index']",
          "SHARD must come from the job-completion-index annotation")
    vols = {v["name"]: v for v in pod["volumes"]}
    check(vols["store"]["persistentVolumeClaim"]["claimName"] == main["PersistentVolumeClaim"]["metadata"]["name"],
          "label Job uses another PVC than deploy/k8s")
    check(vols["keys"]["secret"]["secretName"] == main["Secret"]["metadata"]["name"],
          "label Job uses another Secret than deploy/k8s")
    check(pod.get("securityContext", {}).get("runAsNonRoot"), "label Job must run as non-root")
    check(c.get("resources", {}).get("requests") and c["resources"].get("limits"), "label Job: resources")
    svc = main["Service"]
    want = f"tcp://{svc['metadata']['name']}.{kust['namespace']}.svc.cluster.local:{svc['spec']['ports'][0]['port']}"
    for i in range(int(shards)):
        values = {k: str(e["value"]) for k, e in env.items() if "value" in e}
        values.update(overrides)
        values["SHARD"] = str(i)
        argv = [s_expand(a, values) for a in c["command"] + c.get("args", [])]
        check(argv[:2] == ["student_trainer", "label"], f"label Job runs {argv[:2]}")
        check(opt(argv, "--shard") == f"{i}/{values['SHARDS']}", f"pod {i}: --shard {opt(argv, '--shard')}")
        check("--resume" in argv, "label pods must --resume (a retried pod continues its shard)")
        check(opt(argv, "--teachers") == want, f"label --teachers {opt(argv, '--teachers')} != {want}")
        check(all("$(" not in a for a in argv), f"unexpanded $(VAR): {argv}")
        write_argv(os.path.join(outdir, f"label-{i}.argv"), argv)
    lport = s_http_checks(spec["template"]["metadata"], c, opt(argv, "--metrics-listen"), "label Job")
    ok(f"label Job: Indexed, {shards} shards = completions = parallelism, --shard I/{shards} --resume, "
       f"teachers {want}, PVC and Secret of deploy/k8s; probes and prometheus.io/port on metrics "
       f"port {lport}")


# ---------------------------------------------------------------------------------------------
def cmd_dockerfile(path, outdir):
    with open(path) as f:
        text = f.read()
    text = re.sub(r"\\\n", " ", text)
    args, stages, cur, runs = {}, {}, None, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        check(instr in {"FROM", "RUN", "COPY", "ARG", "ENV", "WORKDIR", "USER", "EXPOSE", "CMD", "LABEL",
                        "ENTRYPOINT", "VOLUME", "HEALTHCHECK", "SHELL"}, f"unknown instruction {instr}")
        if instr == "ARG" and cur is None:
            k2, _, v = rest.partition("=")
            args[k2] = v
        elif instr == "FROM":
            m = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", rest, re.I)
            check(m, f"FROM without a stage name: {rest}")
            image = re.sub(r"\$\{(\w+)\}", lambda mm: args.get(mm.group(1), ""), m.group(1))
            cur = {"image": image, "packages": [], "user": None, "copies": [], "cmd": None}
            stages[m.group(2)] = cur
        elif cur is None:
            fail(f"{instr} before the first FROM")
        elif instr == "RUN":
            runs.append(rest)
            m = re.search(r"apt-get install ((?:\s*-\S+)*)((?:\s+[a-z0-9][a-z0-9+.-]*)+)", " " + rest)
            if m:
                check("--no-install-recommends" in m.group(1), "apt-get install without --no-install-recommends")
                cur["packages"] += m.group(2).split()
        elif instr == "USER":
            cur["user"] = rest
        elif instr == "COPY":
            cur["copies"].append(rest)
        elif instr == "CMD":
            cur["cmd"] = rest
    names = list(stages)
    check(len(names) >= 2, f"expected a multi-stage build, got stages {names}")
    for n, s in stages.items():
        check(s["image"] == "debian:12", f"stage {n} is based on {s['image']}, not debian:12")
    build, final = stages[names[0]], stages[names[-1]]
    check(final["user"] and final["user"] not in ("root", "0"), f"runtime stage runs as {final['user']}")
    copies = " ".join(final["copies"])
    for prog in ("teacher_worker", "student_trainer"):
        check(re.search(rf"--from={names[0]}\s.*/{prog}(\s|$)", copies), f"runtime stage does not copy {prog}")
    check(not any(p.endswith("-dev") or p in ("gcc", "cmake") for p in final["packages"]),
          f"runtime stage installs build tools: {final['packages']}")
    ok(f"stages {names} on debian:12; runtime as USER {final['user']} with the two programs, no -dev packages")
    for n, s in stages.items():
        with open(os.path.join(outdir, f"{n}.packages"), "w") as f:
            f.write("\n".join(s["packages"]) + "\n")
    for i, r in enumerate(runs):
        with open(os.path.join(outdir, f"run-{i}.sh"), "w") as f:
            f.write("#!/bin/sh\n" + r + "\n")
    with open(os.path.join(outdir, "stages"), "w") as f:
        f.write("\n".join(names) + "\n")


def cmd_rewrite(path, pairs):
    mapping = dict(p.split("=", 1) for p in pairs)
    rx = re.compile("|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)))
    argv = [rx.sub(lambda m: mapping[m.group(0)], a) for a in read_argv(path)]
    write_argv(path, argv)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "compose":
        cmd_compose(rest[0], int(rest[1]), rest[2])
    elif cmd == "k8s":
        cmd_k8s(rest[0], rest[1], dict(a.split("=", 1) for a in rest[2:]))
    elif cmd == "k8s-label":
        cmd_k8s_label(rest[0], rest[1], rest[2], dict(a.split("=", 1) for a in rest[3:]))
    elif cmd == "dockerfile":
        cmd_dockerfile(rest[0], rest[1])
    elif cmd == "rewrite":
        cmd_rewrite(rest[0], rest[1:])
    else:
        fail(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
