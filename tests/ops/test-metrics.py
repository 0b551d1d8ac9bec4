#!/usr/bin/env python3
"""`elasticctl metrics`: the daemon's counters in the Prometheus text format,
accepted by promtool, moving as a scripted resume runs (TAP). No cloud and no
slurmctld answer: the hook counters need neither."""

import os
import re
import shutil
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
    d = et.Daemon(tmp, et.config_text(tmp))
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
