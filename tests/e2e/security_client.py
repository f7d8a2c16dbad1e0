#!/usr/bin/python3
"""security_client: the Python side of tests/e2e/security.sh (pyzmq, which speaks CURVE, and the
edistill_pb2 module that security.sh generates with protoc into --proto-dir).

  security_client.py --proto-dir DIR --endpoint EP --server-pub FILE --good-key FILE
                     --bad-key FILE [--dim 784] [--seconds 2]

Against a worker running with CURVE:
  - positive control: a DEALER with the authorized key pair (--good-key) gets a LogitReply, so the
    client itself works and the negative checks below mean something;
  - an unknown key pair (--bad-key, not in the worker's allow-list) and a plaintext DEALER each send
    an InfoRequest and a LogitRequest and must get NOTHING within --seconds;
  - meanwhile the authorized DEALER keeps a request in flight at all times and every one of them
    must be answered with logits (the worker keeps serving while it refuses the others).
Key files are read with zmq.auth.load_certificate: edistill writes ZeroMQ's certificate format.
Exits 1 with a message naming the failed check.
"""
import argparse
import sys
import time

import numpy as np
import zmq
import zmq.auth

PROTOCOL_VERSION = 1


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def dealer(ctx, endpoint, server_pub=None, key_file=None):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    if key_file:
        pub, sec = zmq.auth.load_certificate(key_file)
        check(sec is not None, f"{key_file} has no secret key")
        s.curve_publickey, s.curve_secretkey = pub, sec
        s.curve_serverkey, _ = zmq.auth.load_certificate(server_pub)
    s.connect(endpoint)
    return s


def logit_request(pb, rid, dim):
    env = pb.Envelope(protocol_version=PROTOCOL_VERSION)
    env.logit_request.request_id = rid
    t = env.logit_request.input
    t.dtype = pb.DTYPE_U8
    t.data = (np.arange(2 * dim) % 251).astype(np.uint8).tobytes()
    t.shape.extend([2, dim])
    return env.SerializeToString()


def info_request(pb, rid):
    env = pb.Envelope(protocol_version=PROTOCOL_VERSION)
    env.info_request.request_id = rid
    return env.SerializeToString()


def parse(pb, frame):
    env = pb.Envelope()
    env.ParseFromString(frame)
    return env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--server-pub", required=True)
    ap.add_argument("--good-key", required=True)
    ap.add_argument("--bad-key", required=True)
    ap.add_argument("--dim", type=int, default=784)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    sys.path.insert(0, args.proto_dir)
    import edistill_pb2 as pb

    ctx = zmq.Context()
    try:
        good = dealer(ctx, args.endpoint, args.server_pub, args.good_key)
        good.send(logit_request(pb, 1, args.dim))
        check(good.poll(10000), "authorized client: no reply within 10 s (positive control)")
        env = parse(pb, good.recv())
        check(env.WhichOneof("body") == "logit_reply", f"authorized client got {env.WhichOneof('body')}")
        classes = env.logit_reply.logits.shape[1]
        print(f"ok: authorized client: LogitReply with logits [2, {classes}]")

        intruders = {"unknown key": dealer(ctx, args.endpoint, args.server_pub, args.bad_key),
                     "plaintext": dealer(ctx, args.endpoint)}
        for name, s in intruders.items():
            s.send(info_request(pb, 7), zmq.NOBLOCK)
            s.send(logit_request(pb, 8, args.dim), zmq.NOBLOCK)
        # zmq queues the sends until a connection completes its handshake, which never happens.
        poller = zmq.Poller()
        for s in intruders.values():
            poller.register(s, zmq.POLLIN)
        poller.register(good, zmq.POLLIN)
        rid, answered = 100, 0
        good.send(logit_request(pb, rid, args.dim))
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            ready = dict(poller.poll(50))
            for name, s in intruders.items():
                if s in ready:
                    raise CheckFailed(f"{name} client got a reply: {parse(pb, s.recv())}")
            if good in ready:
                env = parse(pb, good.recv())
                check(env.WhichOneof("body") == "logit_reply" and env.logit_reply.request_id == rid,
                      f"authorized client: unexpected reply {env}")
                answered += 1
                rid += 1
                good.send(logit_request(pb, rid, args.dim))
        check(good.poll(10000), "authorized client: last request unanswered")
        good.recv()
        answered += 1
        check(answered >= 2, f"authorized client: only {answered} replies in {args.seconds} s")
        print(f"ok: unknown-key and plaintext clients got nothing in {args.seconds} s while the "
              f"authorized client got {answered} replies")
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
