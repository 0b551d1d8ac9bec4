#!/usr/bin/env python3
"""elasticd end to end: the real binary with a private config, socket and
state dir, driven over its socket (raw frames, elasticctl when built).
Prints TAP."""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from elasticd_test import (ELASTICCTL, ELASTICD, TAP, Daemon, check, cleanup, config_text, connect,
                           frame, make_tmp, read_reply, req, request, request_as)

NOBODY = 65534


def ok(r):
    check(r.get("ok") is True, "expected ok, got %r" % (r,))
    check(isinstance(r.get("id"), str) and r["id"].startswith("r-"), "reply without a request id: %r" % (r,))
    return r["result"]


def err(r, code):
    check(r.get("ok") is False, "expected %s, got %r" % (code, r))
    check(r["error"]["code"] == code, "expected %s, got %r" % (code, r))
    return r["error"]["message"]


def hook(d, type_, nodes, **kw):
    """A hook call: elastic-<type> when elasticctl is built, else a raw frame."""
    return d.ask(type_, nodes=nodes, client="elastic-" + type_.replace("_", "-"), **kw)


# ---- one daemon for the request tests -------------------------------------

def test_ping_status(d):
    r = ok(d.ask("ping"))
    check("version" in r, r)
    s = ok(d.ask("status"))
    for k in ("version", "uptime_seconds", "config", "nodes_known", "operations_pending",
              "requests_accepted", "journal"):
        check(k in s, "status lacks %s: %r" % (k, s))
    check(s["config"] == d.config, s)


def test_hook_round_trip(d):
    r = ok(hook(d, "resume", "cl[1-2]", job_id="42"))
    check(r["accepted"] == 2 and r["nodes"] == "cl[1-2]", r)
    check(len(r["operations"]) == 2, r)
    nodes = d.nodes()
    for n in ("cl1", "cl2"):
        check(nodes[n]["operation"] == "resume" and nodes[n]["operation_state"] in ("pending", "running"), nodes[n])
        check(nodes[n]["group"] == "g", nodes[n])
        check(nodes[n]["operation_id"] in r["operations"], nodes[n])
        for k in ("slurm_state", "instance_id", "instance_status", "address", "operation_age_seconds"):
            check(k in nodes[n], "node lacks %s" % k)
    check(nodes["cl3"]["operation"] is None, nodes["cl3"])
    s = ok(d.ask("status"))
    check(s["operations_pending"] == 2 and s["requests_accepted"] >= 1, s)


def test_request_id_in_log(d):
    r = hook(d, "resume", "cl9")
    ok(r)
    time.sleep(0.1)
    check(("request=%s " % r["id"]) in d.log(), "request id %s not in the log" % r["id"])


def test_idempotent_and_supersede(d):
    before = d.journal_bytes()
    r = ok(hook(d, "resume", "cl1"))
    check(r["operations_created"] == 0 and r.get("already_pending") == "cl1", r)
    # The log line says how many and which: "resume of 1 node: cl1 ... 1 node already pending: cl1"
    line = [l for l in d.log().splitlines() if "already pending" in l]
    check(any("resume of 1 node: cl1 from uid" in l and "1 node already pending: cl1" in l for l in line),
          "\n".join(line[-5:]))
    r = ok(hook(d, "suspend", "cl2"))
    check(r["operations_created"] == 1 and r.get("superseded") == 1, r)
    n = d.nodes()["cl2"]
    check(n["operation"] == "suspend" and n["operation_state"] in ("pending", "running"), n)
    check(d.journal_bytes() > before, "nothing journalled")


def test_unknown_node(d):
    before = d.journal_bytes()
    msg = err(hook(d, "resume", "cl[3-4],zz[7-8]"), "unknown_node")
    check("zz[7-8]" in msg, msg)
    check("cl3" not in msg, msg)
    check(d.journal_bytes() == before, "an unknown_node request was journalled")
    check(d.nodes()["cl3"]["operation"] is None, "cl3 got an operation")
    # Many unknown nodes: what is wrong first, the count, a list cut between
    # nodes with "and N more" (never mid-name) within the reply's message.
    many = ",".join("zz%d" % i for i in range(1, 2000, 2))
    msg = err(hook(d, "resume", many), "unknown_node")
    check(msg.startswith("1000 nodes in no node group of "), msg)
    check(len(msg.encode()) <= 511, len(msg))
    check(msg.rstrip().endswith(" more"), msg)
    listed = msg.split(": ", 1)[1].rsplit(" and ", 1)
    check(len(listed) == 2 and listed[1].split()[0].isdigit(), msg)
    check(listed[0].startswith("zz[1,3,5") and listed[0].endswith("]"), msg)


def test_bad_hostlist_and_too_many(d):
    err(hook(d, "resume", "cl[3-"), "bad_hostlist")
    msg = err(hook(d, "resume", "cl[1-3000],cl[5000-6000]"), "too_many_nodes")
    check("max_hostlist_nodes" in msg, msg)


def test_bad_request(d):
    err(request(d.socket, {"version": 1, "type": "resume"}), "bad_request")
    err(request(d.socket, {"version": 9, "type": "ping"}), "unsupported_version")


def test_bad_frame_keeps_connection(d):
    with connect(d.socket) as s:
        s.sendall(frame(b"{not json"))
        r = read_reply(s)
        err(r, "bad_frame")
        s.sendall(frame(req("ping")))
        ok(read_reply(s))


def test_pipelined_requests(d):
    with connect(d.socket) as s:
        s.sendall(frame(req("ping")) + frame(req("status")) + frame(req("ping")))
        ids = [ok_id(read_reply(s)) for _ in range(3)]
        check(len(set(ids)) == 3, ids)


def ok_id(r):
    ok(r)
    return r["id"]


def test_oversize_frame(d):
    with connect(d.socket) as s:
        s.sendall(struct.pack(">I", 10 * 1024 * 1024) + b"{" * 100)
        err(read_reply(s), "bad_frame")
        check(s.recv(1) == b"", "connection not closed after an oversize frame")
    ok(d.ask("ping"))


def test_garbage(d):
    """Random frames and random requests: every one gets a reply or a close,
    and the daemon keeps serving."""
    import random
    rnd = random.Random(1234)
    values = [None, True, 0, -1, 2**40, 1.5, "", "x" * 300, "cl[1-", "cl[1-2]", "zz9", "\u0001", [], {}, [1], {"a": 1}]
    types = ["resume", "suspend", "resume_fail", "reboot", "resize", "status", "nodes", "reload", "ping", "nope", 7]
    fields = ["nodes", "job_id", "reason", "features", "resume_file", "resume_file_error", "min", "group",
              "wait", "client", "version", "extra"]
    for i in range(300):
        kind = rnd.randrange(4)
        if kind == 0:
            body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64)))
        elif kind == 1:
            obj = {"version": 1, "type": rnd.choice(types)}
            for f in rnd.sample(fields, rnd.randrange(4)):
                obj[f] = rnd.choice(values)
            body = json.dumps(obj).encode()
        elif kind == 2:
            body = json.dumps(rnd.choice(values)).encode()
        else:
            body = json.dumps({"version": 1, "type": "resume"}).encode()[:rnd.randrange(1, 30)]
        with connect(d.socket) as s:
            try:
                s.sendall(struct.pack(">I", len(body)) + body)
                r = read_reply(s)
                check(r["ok"] in (True, False) and "version" in r, r)
            except (ConnectionError, OSError):
                pass
    ok(d.ask("ping"))
    check(d.proc.poll() is None, "elasticd died")


def test_resize(d):
    r = ok(d.ask("resize", min=2, group="g"))
    check(r["group"] == "g" and r["min"] == 2, r)
    ok(d.ask("resize", min=1))  # the only group
    err(d.ask("resize", min=1000, group="g"), "bad_request")
    err(d.ask("resize", min=1, group="nope"), "not_found")


def test_permissions(d):
    r = request_as(NOBODY, NOBODY, d.socket, req("resume", nodes="cl5"))
    msg = err(r, "permission_denied")
    check("uid %d" % NOBODY in msg and "slurm_user" in msg, msg)
    ok(request_as(NOBODY, NOBODY, d.socket, req("status")))
    err(request_as(NOBODY, NOBODY, d.socket, req("resize", min=1)), "permission_denied")
    err(request_as(NOBODY, NOBODY, d.socket, req("reload")), "permission_denied")
    check(d.nodes()["cl5"]["operation"] is None)


def test_max_clients(d):
    # max_clients is 8; the test holds 8 idle connections.
    held = []
    try:
        for _ in range(8):
            held.append(connect(d.socket))
        time.sleep(0.2)
        with connect(d.socket) as s:
            err(read_reply(s), "busy")
    finally:
        for s in held:
            s.close()
    time.sleep(0.2)
    ok(d.ask("ping"))


def test_reload_request(d):
    r = ok(d.ask("reload"))
    check(r == {"reloaded": True}, "nothing changed, yet: %r" % (r,))


def test_many_nodes(d):
    r = ok(hook(d, "resume", "cl[10-16]"))
    check(r["operations_created"] == 7, r)


def run_ctl(d, prog, *args, user=None):
    """elasticctl (or one of its hook names) against D's socket: (rc, stdout, stderr)."""
    env = {"ELASTICD_SOCKET": d.socket, "PATH": "/usr/bin:/bin"}
    kw = {}
    if user is not None:
        # Another uid may not reach the build tree: run a copy from the test's dir.
        exe = os.path.join(d.tmp, "elasticctl")
        if not os.path.exists(exe):
            shutil.copy(ELASTICCTL, exe)
            os.chmod(exe, 0o755)
        kw = {"user": user, "group": user, "extra_groups": []}
    else:
        exe = ELASTICCTL
    link = os.path.join(os.path.dirname(exe), prog)
    if prog != "elasticctl" and not os.path.exists(link):
        os.symlink("elasticctl", link)
    p = subprocess.run([link if prog != "elasticctl" else exe] + list(args), env=env,
                       capture_output=True, text=True, timeout=60, **kw)
    return p.returncode, p.stdout, p.stderr


def test_hook_binaries(d):
    rc, out, errs = run_ctl(d, "elastic-resume", "cl[7-8]")
    check(rc == 0, "elastic-resume: %d %s %s" % (rc, out, errs))
    rc, out, errs = run_ctl(d, "elasticctl", "--json", "nodes")
    check(rc == 0, errs)
    nodes = {n["name"]: n for n in json.loads(out)["nodes"]}
    for n in ("cl7", "cl8"):
        check(nodes[n]["operation"] == "resume" and nodes[n]["operation_state"] in ("pending", "running"), nodes[n])
    rc, out, errs = run_ctl(d, "elastic-suspend", "cl[7-8],zz1")
    check(rc == 1 and "zz1" in errs, "unknown node: %d %s" % (rc, errs))
    rc, out, errs = run_ctl(d, "elastic-resume", "cl6", user=NOBODY)
    check(rc == 1 and ("uid %d" % NOBODY) in errs and "slurm_user" in errs, (rc, out, errs))
    print("# as nobody: " + errs.strip())
    rc, out, errs = run_ctl(d, "elasticctl", "status", user=NOBODY)
    check(rc == 0, (rc, out, errs))
    check(d.nodes()["cl6"]["operation"] is None)


def request_tests(t):
    tmp = make_tmp("req")
    d = Daemon(tmp, config_text(tmp, socket_group="nogroup", slurm_user="slurm",
                                admin_group="root"))
    try:
        d.start()
        for fn in (test_ping_status, test_hook_round_trip, test_request_id_in_log,
                   test_idempotent_and_supersede, test_unknown_node, test_bad_hostlist_and_too_many,
                   test_bad_request, test_bad_frame_keeps_connection, test_pipelined_requests,
                   test_oversize_frame, test_garbage, test_resize,
                   test_permissions, test_max_clients, test_reload_request, test_many_nodes):
            t.run(fn, d)
        if ELASTICCTL:
            t.run(test_hook_binaries, d)
        else:
            t.skip("test_hook_binaries", "elasticctl not built")
        t.run(test_sigterm, d)
    finally:
        d.stop(signal.SIGKILL)
        cleanup(tmp)


def test_sigterm(d):
    journal = d.journal_files()
    check(journal, "no journal file in %s" % os.listdir(d.state_dir))
    rc = d.stop(signal.SIGTERM)
    check(rc == 0, "exit code %s" % rc)
    for p in journal + [d.config]:
        check(os.path.exists(p), "%s removed" % p)
    check(not os.path.exists(d.socket), "socket left behind")
    check("Stopped" in d.log(), "no stop message")


# ---- restarts ---------------------------------------------------------------

def test_kill9_restart():
    tmp = make_tmp("kill")
    d = Daemon(tmp, config_text(tmp))
    try:
        d.start()
        reply = hook(d, "resume", "cl[1-3]")
        r = ok(reply)
        d.kill9()
        check(os.path.exists(d.socket), "socket vanished")
        d.start()  # removes the stale socket
        nodes = d.nodes()
        for n in ("cl1", "cl2", "cl3"):
            check(nodes[n]["operation"] == "resume", nodes[n])
            check(nodes[n]["request"] == reply["id"], nodes[n])
        reply2 = hook(d, "suspend", "cl4")
        r2 = ok(reply2)
        check(reply2["id"] != reply["id"] and r2["operations"][0] not in r["operations"], (r, r2))
        check(ok(d.ask("status"))["operations_pending"] == 4)
        # Torn tail: a partial record after kill -9.
        d.kill9()
        for p in d.journal_files():
            with open(p, "ab") as f:
                f.write(b'{"kind":"op","id":"o-ffff-99","node":"cl')
        d.start()
        nodes = d.nodes()
        check(nodes["cl4"]["operation"] == "suspend" and nodes["cl1"]["operation"] == "resume", nodes)
        ok(hook(d, "resume", "cl5"))
        d.stop()
        d.start()
        check(d.nodes()["cl5"]["operation"] == "resume")
        check(d.stop() == 0)
    finally:
        d.stop(signal.SIGKILL)
        cleanup(tmp)


def test_compaction():
    tmp = make_tmp("cmp")
    d = Daemon(tmp, config_text(tmp, groups=(("g", "cl[1-2000]"),)))
    try:
        d.start()
        last = None
        # Each flip of 2000 nodes journals ~4000 records; the journal passes
        # the 4 MiB compaction threshold after a few.
        for i in range(12):
            last = hook(d, "suspend" if i % 2 else "resume", "cl[1-2000]")
            ok(last)
        # Compaction runs on a thread: the replies do not wait for it.
        t0 = time.monotonic()
        while "Journal compacted" not in d.log() and time.monotonic() - t0 < 30:
            time.sleep(0.1)
        check("Journal compacted" in d.log(), "no compaction while running")
        size = d.journal_bytes()
        check(size < 4 * 1024 * 1024 * 2, "journal still %d bytes" % size)
        d.stop()
        d.start()
        nodes = d.nodes()
        check(all(n["operation"] == "suspend" and n["request"] == last["id"] for n in nodes.values()),
              "state lost in compaction")
        again = hook(d, "resume", "cl1")
        new_op = ok(again)["operations"][0]
        check(again["id"] != last["id"] and new_op not in {n["operation_id"] for n in nodes.values()},
              "ids repeat after compaction")
        check(d.stop() == 0)
    finally:
        d.stop(signal.SIGKILL)
        cleanup(tmp)


def test_large_journal_answers():
    """100,000 records are read on a thread: the socket answers (busy, which
    the hooks retry) while they load, then everything is there."""
    tmp = make_tmp("big")
    d = Daemon(tmp, config_text(tmp, groups=(("g", "cl[1-2000]"),)))
    try:
        d.start()
        ok(hook(d, "resume", "cl1"))
        d.stop()
        path = d.journal_files()[0]
        with open(path) as f:
            lines = [json.loads(x) for x in f if x.strip()]
        op = next(x for x in lines if x.get("kind") == "op")
        seq = max(x["seq"] for x in lines)
        with open(path, "a") as f:
            for i in range(100000):
                seq += 1
                rec = dict(op, seq=seq, id="o-big-%d" % (i + 1), node="cl%d" % (i % 2000 + 1))
                f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        t0 = time.monotonic()
        d.start(wait=False)
        busy = answered = 0
        worst = 0.0
        while time.monotonic() - t0 < 120:
            try:
                t = time.monotonic()
                r = request(d.socket, req("ping"), timeout=10)
                worst = max(worst, time.monotonic() - t)
                answered += 1
                if r.get("ok"):
                    break
                check(r["error"]["code"] == "busy", r)
                busy += 1
            except OSError:
                pass
            time.sleep(0.02)
        ready = time.monotonic() - t0
        print("# 100,001 records: ready after %.2f s; %d busy answers meanwhile, slowest %.0f ms"
              % (ready, busy, worst * 1000))
        check(busy > 0, "no busy answer while loading (ready after %.2f s)" % ready)
        check(worst < 1.0, "a ping took %.2f s while loading" % worst)
        nodes = d.nodes()
        check(nodes["cl2000"]["operation"] == "resume" and nodes["cl2000"]["operation_id"] == "o-big-100000",
              nodes["cl2000"])
        check(d.stop() == 0)
    finally:
        d.stop(signal.SIGKILL)
        cleanup(tmp)


def test_journal_failed():
    """A full disk: the request is refused with journal_failed and nothing
    changes; a request that fits goes through afterwards."""
    tmp = make_tmp("full")
    d = Daemon(tmp, config_text(tmp, groups=(("g", "cl[1-2000]"),)))
    os.makedirs(d.state_dir)
    # The state dir on a 96 KiB tmpfs, in a mount namespace of the daemon's own.
    d.wrapper = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=96k,mode=0700 tmpfs "$0" && exec "$@"',
                 d.state_dir]
    try:
        d.start()
        msg = err(hook(d, "resume", "cl[1-2000]"), "journal_failed")
        check("durable" in msg, msg)
        nodes = d.nodes()
        check(all(n["operation"] is None for n in nodes.values()), "a refused request changed the state")
        check(ok(d.ask("status"))["operations_pending"] == 0)
        r = ok(hook(d, "resume", "cl1"))
        check(r["operations_created"] == 1, r)
        check(d.nodes()["cl1"]["operation"] == "resume")
        check(d.stop() == 0)
    finally:
        d.stop(signal.SIGKILL)
        cleanup(tmp)


def test_second_daemon_refused():
    tmp = make_tmp("dup")
    d = Daemon(tmp, config_text(tmp))
    try:
        d.start()
        with open(os.path.join(tmp, "dup.log"), "w+") as log:
            p = subprocess.run([ELASTICD, "-c", d.config], stdout=log, stderr=log, timeout=30)
            log.seek(0)
            text = log.read()
        check(p.returncode == 1, "second daemon exit %s" % p.returncode)
        check("already" in text, text)
        ok(d.ask("ping"))
    finally:
        d.stop()
        cleanup(tmp)


def test_sighup():
    tmp = make_tmp("hup")
    d = Daemon(tmp, config_text(tmp))
    try:
        d.start()
        good = config_text(tmp, groups=(("g", "cl[1-16]"), ("gpu", "gpu[1-2]")))
        d.write_config("cluster: [oops\n")
        d.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        ok(d.ask("ping"))
        check("running configuration stays" in d.log(), d.log()[-2000:])
        check("elasticd.yaml:" in d.log(), "the config error is not logged")
        err(hook(d, "resume", "gpu1"), "unknown_node")
        d.write_config(good)
        d.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        r = ok(hook(d, "resume", "gpu1"))
        check(r["accepted"] == 1)
        check(ok(d.ask("status"))["groups"] == 2)
        check(d.stop() == 0)
    finally:
        d.stop(signal.SIGKILL)
        cleanup(tmp)


def test_reload_refused():
    """A reload that changes a key only a restart applies is refused whole:
    the reply and the log name each such key, nothing of the file is taken
    (not even its live keys), and the daemon carries on with the old one."""
    tmp = make_tmp("rrf")
    d = Daemon(tmp, config_text(tmp))
    try:
        d.start()
        d.write_config("cluster: [oops\n")
        msg = err(d.ask("reload"), "config_refused")
        check("elasticd.yaml:" in msg, msg)
        two = config_text(tmp, groups=(("g", "cl[1-16]"), ("gpu", "gpu[1-2]")), extra_limits={"api_rate": 5})
        d.write_config(two.replace("cluster: itest", "cluster: other") + "metrics:\n  listen: 127.0.0.1:19\n")
        msg = err(d.ask("reload"), "config_refused")
        check("cluster (itest -> other)" in msg and "metrics.listen (null -> \"127.0.0.1:19\")" in msg and
              "restart" in msg, msg)
        check("api_rate" not in msg and "groups" not in msg, "a live key named as needing a restart: " + msg)
        check("refused" in d.log() and "cluster (itest -> other)" in d.log(), d.log()[-2000:])
        err(hook(d, "resume", "gpu1"), "unknown_node")
        check(ok(d.ask("status"))["groups"] == 1)
        # SIGHUP takes the same path.
        d.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        check(d.log().count("cluster (itest -> other)") >= 2, d.log()[-2000:])
        ok(hook(d, "resume", "cl1"))
        # Back to the old cluster, the rest is live: applied, and the log says what changed.
        d.write_config(two)
        r = ok(d.ask("reload"))
        check(r.get("changed") == "limits.api_rate (20 -> 5), groups.gpu (added)", r)
        check("changed: limits.api_rate (20 -> 5), groups.gpu (added)" in d.log(), d.log()[-2000:])
        check(ok(hook(d, "resume", "gpu1"))["accepted"] == 1)
        check(d.stop() == 0)
    finally:
        d.stop(signal.SIGKILL)
        cleanup(tmp)


def test_check_option():
    tmp = make_tmp("chk")
    d = Daemon(tmp, config_text(tmp))
    try:
        p = subprocess.run([ELASTICD, "--check", "-c", d.config], capture_output=True, text=True)
        check(p.returncode == 0, p.stderr)
        check("cluster: itest" in p.stdout, p.stdout)
        d.write_config("cluster: itest\nbogus_key: 1\n")
        p = subprocess.run([ELASTICD, "--check", "-c", d.config], capture_output=True, text=True)
        check(p.returncode == 1, p.stdout + p.stderr)
        check("bogus_key" in p.stderr, p.stderr)
        p = subprocess.run([ELASTICD, "-c", d.config], capture_output=True, text=True, timeout=30)
        check(p.returncode == 1 and "bogus_key" in p.stderr, p.stderr)
        # What start-up refuses without the network, --check refuses too:
        # a socket path too long for sun_path, a missing group, a clouds.yaml
        # that is a FIFO (refused at once, never opened for a blocking read).
        good = config_text(tmp)
        long_sock = os.path.join(tmp, "s" * 120 + ".sock")
        d.write_config(good.replace(os.path.join(tmp, "run", "elasticd.sock"), long_sock))
        p = subprocess.run([ELASTICD, "--check", "-c", d.config], capture_output=True, text=True, timeout=10)
        check(p.returncode == 1 and "a Unix socket path has at most 107" in p.stderr, p.stderr)
        d.write_config(good.replace("group: null", "group: no-such-group-elasticd"))
        p = subprocess.run([ELASTICD, "--check", "-c", d.config], capture_output=True, text=True, timeout=10)
        check(p.returncode == 1 and 'socket_group "no-such-group-elasticd" does not exist' in p.stderr, p.stderr)
        fifo = os.path.join(tmp, "fifo-clouds.yaml")
        os.mkfifo(fifo)
        d.write_config(good.replace("clouds_file: " + os.path.join(tmp, "clouds.yaml"), "clouds_file: " + fifo))
        p = subprocess.run([ELASTICD, "--check", "-c", d.config], capture_output=True, text=True, timeout=10)
        check(p.returncode == 1 and "is a FIFO, not a regular file" in p.stderr, p.stderr)
        # elasticd.yaml itself a FIFO: refused, no hang.
        p = subprocess.run([ELASTICD, "--check", "-c", fifo], capture_output=True, text=True, timeout=10)
        check(p.returncode == 1 and "is a FIFO, not a regular file" in p.stderr, p.stderr)
    finally:
        cleanup(tmp)


# ---- systemd ----------------------------------------------------------------

def test_sd_notify():
    tmp = make_tmp("ntf")
    path = os.path.join(tmp, "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(20)
    d = Daemon(tmp, config_text(tmp), env={"NOTIFY_SOCKET": path})
    seen = []

    def wait_for(word):
        while True:
            msg = s.recv(4096).decode()
            seen.append(msg)
            if word in msg.split("\n"):
                return msg

    try:
        d.start(wait=False)
        msg = wait_for("READY=1")
        ok(d.ask("ping"))  # READY came after the socket was listening
        d.send_signal(signal.SIGHUP)
        wait_for("RELOADING=1")
        wait_for("READY=1")
        d.send_signal(signal.SIGTERM)
        wait_for("STOPPING=1")
        check(d.proc.wait(30) == 0)
        check(any(m.startswith("STATUS=accepting requests") for x in seen for m in x.split("\n")), seen)
    finally:
        d.stop(signal.SIGKILL)
        s.close()
        cleanup(tmp)


def test_socket_activation():
    tmp = make_tmp("act")
    d = Daemon(tmp, config_text(tmp))
    os.makedirs(os.path.dirname(d.socket))
    d.wrapper = ["systemd-socket-activate", "-l", d.socket, "--fdname=elasticd.socket"]
    try:
        d.start()
        r = ok(hook(d, "resume", "cl[1-2]"))
        check(r["accepted"] == 2)
        s = ok(d.ask("status"))
        check(s["socket_activated"] is True, s)
        check("socket activation" in d.log(), d.log())
        check(d.stop() == 0)
        check(os.path.exists(d.socket), "elasticd removed the socket systemd passed it")
    finally:
        d.stop(signal.SIGKILL)
        cleanup(tmp)


def test_valgrind():
    tmp = make_tmp("vg")
    vglog = os.path.join(tmp, "valgrind.log")
    d = Daemon(tmp, config_text(tmp),
               wrapper=["valgrind", "--leak-check=full", "--show-leak-kinds=definite",
                        "--errors-for-leak-kinds=definite", "--log-file=" + vglog])
    try:
        d.start(timeout=120)
        ok(hook(d, "resume", "cl[1-4]", job_id="7"))
        ok(hook(d, "suspend", "cl1"))
        err(hook(d, "resume", "nope1"), "unknown_node")
        d.nodes()
        ok(d.ask("status"))
        ok(d.ask("resize", min=1))
        with connect(d.socket) as s:
            s.sendall(frame(b"[1,2"))
            err(read_reply(s), "bad_frame")
        d.send_signal(signal.SIGHUP)
        time.sleep(1)
        ok(d.ask("ping"))
        # A refused reload and one that changes live keys, under valgrind too.
        d.write_config(config_text(tmp).replace("cluster: itest", "cluster: other"))
        err(d.ask("reload"), "config_refused")
        d.write_config(config_text(tmp, groups=(("g", "cl[1-16]"), ("h", "h[1-2]")), extra_limits={"api_rate": 5}))
        check("changed" in ok(d.ask("reload")))
        check(d.stop(timeout=120) == 0)
        with open(vglog) as f:
            text = f.read()
        check("ERROR SUMMARY: 0 errors" in text, text[-3000:])
        check("definitely lost: 0 bytes" in text or "no leaks are possible" in text, text[-3000:])
    finally:
        d.stop(signal.SIGKILL)
        cleanup(tmp)


def main():
    t = TAP()
    if not ELASTICD or not os.access(ELASTICD, os.X_OK):
        print("Bail out! ELASTICD not set or not executable")
        return 1
    request_tests(t)
    t.run(test_kill9_restart)
    t.run(test_compaction)
    t.run(test_large_journal_answers)
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0:
        t.run(test_journal_failed)
    else:
        t.skip("test_journal_failed", "cannot create a mount namespace (needs root)")
    t.run(test_second_daemon_refused)
    t.run(test_sighup)
    t.run(test_reload_refused)
    t.run(test_check_option)
    t.run(test_sd_notify)
    t.run(test_socket_activation)
    if os.environ.get("ELASTICD_SKIP_VALGRIND"):
        t.skip("test_valgrind", "ELASTICD_SKIP_VALGRIND set")
    else:
        t.run(test_valgrind)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
