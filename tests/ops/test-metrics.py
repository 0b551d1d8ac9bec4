#!/usr/bin/env python3
"""`elasticctl metrics`: the daemon's counters in the Prometheus text format,
accepted by promtool, moving as a scripted resume runs (TAP). No cloud and no
slurmctld answer: the hook counters need neither."""

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import elasticd_test as et  # noqa: E402

ELASTICCTL = os.environ["ELASTICCTL"]

n = 0
failed = 0


def ok(cond, name, diag=""):
    global n, failed
    n += 1
    if not cond:
        failed += 1
        for line in str(diag).splitlines():
            print("# " + line)
    print(("ok" if cond else "not ok") + " %d - %s" % (n, name))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def metrics(d):
    p = subprocess.run([ELASTICCTL, "-s", d.socket, "metrics"], capture_output=True, text=True, timeout=30)
    return p


def samples(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"^(\S+) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def promtool_ok(text, name):
    if shutil.which("promtool") is None:
        global n
        n += 1
        print("ok %d - %s # SKIP promtool not installed (Debian package prometheus)" % (n, name))
        return
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=30)
    ok(p.returncode == 0, name, p.stdout + p.stderr)


def main():
    tmp = et.make_tmp("ops-metrics")
    port = free_port()
    d = et.Daemon(tmp, et.config_text(tmp) + 'metrics:\n  listen: "127.0.0.1:%d"\n' % port)
    try:
        d.start()
        before = metrics(d)
        ok(before.returncode == 0 and "elasticd_requests_total" in before.stdout,
           "elasticctl metrics prints the metrics", before.stdout + before.stderr)
        promtool_ok(before.stdout, "promtool check metrics accepts a fresh daemon's metrics")
        b = samples(before.stdout)
        ok(b.get('elasticd_requests_total{type="resume"}') == 0, "no resume counted before any",
           repr(b))

        # The hook as slurmctld runs it: argv[0] elastic-resume, a ranged hostlist.
        hook = os.path.join(os.path.dirname(ELASTICCTL), "elastic-resume")
        p = subprocess.run([hook, "cl[1-3]"], env={"ELASTICD_SOCKET": d.socket}, capture_output=True,
                           text=True, timeout=30)
        ok(p.returncode == 0, "elastic-resume cl[1-3] is accepted", p.stdout + p.stderr)
        r = d.ask("nosuchtype")
        ok(not r["ok"], "a bad request is refused", repr(r))

        after = metrics(d)
        promtool_ok(after.stdout, "promtool check metrics accepts the metrics after a resume")
        a = samples(after.stdout)
        ok(a.get('elasticd_requests_total{type="resume"}') == 1, "the resume is counted", repr(a))
        ok(a.get('elasticd_requests_total{type="metrics"}', 0) >= 1, "the metrics request counts itself")
        ok(a.get("elasticd_requests_refused_total", 0) >= 1 + b.get("elasticd_requests_refused_total", 0),
           "the refused request is counted", repr(a))
        in_group = sum(v for k, v in a.items() if k.startswith('elasticd_nodes{group="g"'))
        ok(in_group == 3, "the three nodes appear in group g's node gauge", repr(a))
        ok(a.get("elasticd_journal_bytes", 0) > b.get("elasticd_journal_bytes", 0),
           "the journal grew", "%r -> %r" % (b.get("elasticd_journal_bytes"), a.get("elasticd_journal_bytes")))
        ok(a.get('elasticd_operations_started_total{kind="resume"}') is not None,
           "operation counters by kind are there", repr(a))

        ok(a.get("elasticd_create_to_active_seconds_count") == 0 and
           a.get('elasticd_active_to_registered_seconds_bucket{le="+Inf"}') == 0,
           "the boot histograms are there, empty without a cloud", repr(a))

        # The same over HTTP on the configured loopback address.
        status, body = http_get(port, "/metrics")
        ok(status == 200 and "elasticd_requests_total" in body, "GET /metrics answers 200 with the metrics",
           "%s %r" % (status, body[:200]))
        promtool_ok(body, "promtool check metrics accepts GET /metrics")
        h = samples(body)
        ok(h.get('elasticd_requests_total{type="resume"}') == 1, "HTTP shows the same counters", repr(h))
        status, _ = http_get(port, "/other")
        ok(status == 404, "another path is 404", status)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /metrics HTTP/1.0\r\n" + b"X: " + b"y" * 5000 + b"\r\n\r\n")
        reply = s.recv(4096)
        s.close()
        ok(reply.startswith(b"HTTP/1.0 431"), "an oversized request is refused", repr(reply[:80]))
        ok(d.ask("ping")["ok"], "the daemon still answers")

        j = subprocess.run([ELASTICCTL, "-s", d.socket, "--json", "metrics"], capture_output=True, text=True,
                           timeout=30)
        ok(j.returncode == 0 and '"text"' in j.stdout, "elasticctl --json metrics gives the reply object",
           j.stdout + j.stderr)
    except Exception as e:  # a crash in the harness is a failure, not a silent pass
        ok(False, "metrics test ran", "%r\n%s" % (e, d.log()))
    finally:
        d.stop()
        et.cleanup(tmp)
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
