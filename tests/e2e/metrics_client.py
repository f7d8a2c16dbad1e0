#!/usr/bin/python3
"""metrics_client: the Python side of tests/e2e/metrics.sh (HTTP metrics and health endpoints).

  metrics_client.py get URL [--status N]           print the body; exit 1 unless the status is N (200)
  metrics_client.py value URL SERIES               print the value of one sample of /metrics text
                                                   (SERIES is name{labels} exactly as exposed)
  metrics_client.py hostile --proto-dir D --model M --ready-file F [--requests N]
      A good DEALER pipelines N logit requests to the worker and checks every reply against numpy,
      while other threads attack its metrics listener: garbage bytes, a 64 KiB header, a POST with
      a body, unknown paths and methods, and more slowloris connections (headers sent a byte at a
      time, never finished) than its connection limit. Then, once those have been timed out, /metrics
      must answer again and count exactly the good client's logit requests. Prints that count.
  metrics_client.py wait-value URL SERIES --min X [--timeout S]
                                                   poll (every 5 ms) until SERIES >= X; print it
  metrics_client.py settled URL [--timeout S]      GET /metrics every 0.2 s until two bodies agree
                                                   (but for process_* lines); print the last
  metrics_client.py prom-query PROM_URL QUERY      print "labels value" lines of an instant query
  metrics_client.py scrape-loop [--interval S] URL...   GET every URL each S seconds until killed
                                                   (bench/run.sh's stand-in for Prometheus)

Every wait is bounded; everything is loopback (127.0.0.1). Exits 1 naming the failed check.
"""
import argparse
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_client  # noqa: E402
from serve_client import CheckFailed, check  # noqa: E402


def http_get(url, timeout=5.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8"), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), e.headers


def sample_value(text, series):
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    raise CheckFailed(f"series {series} not in the metrics text")


def raw_exchange(addr, payload, timeout=6.0):
    """Sends payload on a fresh connection; returns what came back before close or timeout."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    got = b""
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server may answer (431) and close before it read everything
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    finally:
        s.close()
    return got


def slowloris(addr, stop, opened):
    """Opens a connection and trickles a never-ending header until stop is set or the server
    closes it. Bounded by stop (set by the caller) and the socket timeout."""
    host, port = addr.rsplit(":", 1)
    try:
        s = socket.create_connection((host, int(port)), timeout=2.0)
    except OSError:
        return
    opened.append(1)
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        while not stop.is_set():
            s.sendall(b"X")
            time.sleep(0.2)
    except OSError:
        pass  # the server closed it: what a timeout should do
    finally:
        s.close()


def silent(addr, closed):
    """Sends half a request line and waits: the server's connection timeout must close it."""
    host, port = addr.rsplit(":", 1)
    t0 = time.time()
    try:
        s = socket.create_connection((host, int(port)), timeout=12.0)
        s.sendall(b"GET /metr")
        while s.recv(4096):
            pass
        closed.append(time.time() - t0)
    except OSError:
        closed.append(time.time() - t0)  # reset by the server: closed too
    finally:
        try:
            s.close()
        except NameError:
            pass


def hostile(args):
    import zmq
    import numpy as np

    sys.path.insert(0, args.proto_dir)
    import edistill_pb2 as pb

    arch, layers, meta = serve_client.read_model(args.model)
    fields = dict(line.split("=", 1) for line in open(args.ready_file).read().split("\n") if "=" in line)
    addr = fields["metrics"]
    base = f"http://{addr}"
    st, text, _ = http_get(base + "/metrics")
    check(st == 200, f"/metrics status {st}")
    before = sample_value(text, 'edistill_worker_requests_total{kind="logit"}')

    ctx = zmq.Context()
    good = serve_client.Client(ctx, fields["endpoint"], pb, "good client")
    rng = np.random.default_rng(11)
    errors = []
    done = threading.Event()

    def good_client():
        try:
            pending = {}
            sent = 0
            while sent < args.requests or pending:
                while sent < args.requests and len(pending) < 4:
                    b = int(rng.integers(1, 17))
                    x = rng.integers(0, 256, size=(b, arch[0]), dtype=np.uint8)
                    good.logits(sent + 1, x, "u8")
                    pending[sent + 1] = serve_client.forward(layers, meta, x)
                    sent += 1
                env = good.recv(timeout_ms=10000)
                rid = env.logit_reply.request_id if env.WhichOneof("body") == "logit_reply" else -1
                check(rid in pending, f"good client: unexpected reply {env.WhichOneof('body')} id {rid}")
                serve_client.check_reply(env, pending.pop(rid), meta["fingerprint"], meta["member"],
                                         f"request {rid}")
                time.sleep(0.005)  # spread the requests over the attack
        except Exception as e:  # noqa: BLE001  (reported by the main thread)
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=good_client)
    t.start()

    stop = threading.Event()
    opened = []
    loris = [threading.Thread(target=slowloris, args=(addr, stop, opened)) for _ in range(10)]
    closed = []
    quiet = [threading.Thread(target=silent, args=(addr, closed)) for _ in range(4)]
    for th in quiet + loris:
        th.start()
    time.sleep(0.5)
    # Attacks on top of a full connection table: each must end (refused, answered or timed out).
    out = raw_exchange(addr, os.urandom(4096))
    print(f"  garbage: {len(out)} bytes back ({out[:12]!r})")
    huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n"
    out = raw_exchange(addr, huge)
    check(b" 200 " not in out[:16], f"64 KiB header was answered 200: {out[:40]!r}")
    print(f"  huge header: {out[:32]!r}")
    for th in quiet:
        th.join(timeout=15)
    check(len(closed) == 4 and max(closed) < 11,
          f"silent partial requests not closed by the server's timeout: {closed}")
    print(f"  silent partial requests closed by the server after {max(closed):.1f} s")
    stop.set()
    for th in loris:
        th.join(timeout=10)
    check(not any(th.is_alive() for th in loris), "a slowloris thread did not end")
    print(f"  slowloris: {len(opened)} trickling connections (limit 8), all ended")

    # After the attack the listener must serve again (connection timeouts free the slots).
    deadline = time.time() + 15
    while True:
        try:
            st, _, _ = http_get(base + "/healthz", timeout=2)
            if st == 200:
                break
        except OSError:
            pass
        check(time.time() < deadline, "/healthz did not answer within 15 s after the attack")
        time.sleep(0.3)
    out = raw_exchange(addr, huge)
    check(out.startswith(b"HTTP/1.1 4"), f"64 KiB header: expected a 4xx, got {out[:40]!r}")
    print(f"  huge header when idle: {out[:32]!r}")
    st, _, _ = http_get(base + "/nope")
    check(st == 404, f"/nope status {st}")
    req = urllib.request.Request(base + "/metrics", data=b"x" * 1000, method="POST")
    try:
        urllib.request.urlopen(req, timeout=5)
        raise CheckFailed("POST /metrics answered 2xx")
    except urllib.error.HTTPError as e:
        check(e.code == 405, f"POST /metrics status {e.code}")
    print("  ok: 404 for unknown paths, 405 for POST")

    done.wait(timeout=120)
    t.join(timeout=5)
    if errors:
        raise errors[0]
    check(done.is_set(), "good client did not finish within 120 s")
    st, text, hdr = http_get(base + "/metrics")
    check(st == 200, f"/metrics after the attack: {st}")
    check(hdr.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
          f"content type {hdr.get('Content-Type')}")
    after = sample_value(text, 'edistill_worker_requests_total{kind="logit"}')
    check(after - before == args.requests,
          f"logit request counter moved by {after - before}, the good client sent {args.requests}")
    samples = sample_value(text, "edistill_worker_request_duration_seconds_count")
    check(samples >= args.requests, f"latency histogram count {samples} < {args.requests}")
    print(f"  ok: {args.requests} logit replies correct during the attack; counter = {after:.0f}")
    good.sock.close()
    ctx.term()


def prom_query(args):
    url = args.prom.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": args.query})
    st, body, _ = http_get(url, timeout=10)
    check(st == 200, f"Prometheus query status {st}: {body[:200]}")
    data = json.loads(body)
    check(data.get("status") == "success", f"Prometheus query failed: {body[:200]}")
    for r in data["data"]["result"]:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(r["metric"].items()))
        print(f"{{{labels}}} {r['value'][1]}")


def wait_value(args):
    deadline = time.time() + args.timeout
    last = None
    while time.time() < deadline:
        try:
            st, body, _ = http_get(args.url, timeout=1.0)
            if st == 200:
                last = sample_value(body, args.series)
                if last >= args.min:
                    print(f"{last:.17g}")
                    return
        except (OSError, CheckFailed):
            pass  # not listening yet, or the series not registered yet
        time.sleep(0.005)
    raise CheckFailed(f"{args.series} at {args.url} did not reach {args.min} in {args.timeout}s "
                      f"(last {last})")


def settled(args):
    deadline = time.time() + args.timeout
    prev = None
    while time.time() < deadline:
        st, body, _ = http_get(args.url)
        check(st == 200, f"GET {args.url}: status {st}")
        key = [l for l in body.splitlines() if not l.startswith("process_")]
        if key == prev:
            sys.stdout.write(body)
            return
        prev = key
        time.sleep(0.2)
    raise CheckFailed(f"{args.url}: the values kept changing for {args.timeout}s")


def scrape_loop(args):
    print(f"scrape-loop: started, {len(args.urls)} targets", flush=True)  # bench waits for this
    n = 0
    while True:
        t0 = time.time()
        for u in args.urls:
            try:
                http_get(u, timeout=args.interval)
                n += 1
            except OSError:
                pass  # a target not up yet (the trainer starts after us)
        time.sleep(max(0.0, args.interval - (time.time() - t0)))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("get")
    g.add_argument("url")
    g.add_argument("--status", type=int, default=200)
    v = sub.add_parser("value")
    v.add_argument("url")
    v.add_argument("series")
    h = sub.add_parser("hostile")
    h.add_argument("--proto-dir", required=True)
    h.add_argument("--model", required=True)
    h.add_argument("--ready-file", required=True)
    h.add_argument("--requests", type=int, default=200)
    w = sub.add_parser("wait-value")
    w.add_argument("url")
    w.add_argument("series")
    w.add_argument("--min", type=float, required=True)
    w.add_argument("--timeout", type=float, default=30.0)
    se = sub.add_parser("settled")
    se.add_argument("url")
    se.add_argument("--timeout", type=float, default=20.0)
    sl = sub.add_parser("scrape-loop")
    sl.add_argument("--interval", type=float, default=1.0)
    sl.add_argument("urls", nargs="+")
    q = sub.add_parser("prom-query")
    q.add_argument("prom")
    q.add_argument("query")
    args = ap.parse_args()
    try:
        if args.cmd == "get":
            st, body, _ = http_get(args.url)
            sys.stdout.write(body)
            check(st == args.status, f"GET {args.url}: status {st}, expected {args.status}")
        elif args.cmd == "value":
            st, body, _ = http_get(args.url)
            check(st == 200, f"GET {args.url}: status {st}")
            print(f"{sample_value(body, args.series):.17g}")
        elif args.cmd == "hostile":
            hostile(args)
        elif args.cmd == "wait-value":
            wait_value(args)
        elif args.cmd == "settled":
            settled(args)
        elif args.cmd == "scrape-loop":
            scrape_loop(args)
        else:
            prom_query(args)
    except (CheckFailed, OSError) as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
