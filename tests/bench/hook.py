#!/usr/bin/env python3
"""Benchmark (not a pass/fail test): wall time of the elastic-resume hook
against a running elasticd, for 1, 100 and 1000-node hostlists, side by side
with what a Python hook pays before doing anything: `python3 -c 'import
openstack'` (Debian's python3-openstacksdk).

    tests/bench/hook.py [BUILD_DIR] [--runs N] [--tmp DIR]
    meson test -C build --benchmark --suite bench hook

Starts its own elasticd (private config, socket, state dir in a temp dir).
Each hook call alternates resume and suspend so that every call journals new
operations (fdatasync included), as slurmctld's calls do."""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import elasticd_test  # noqa: E402
from elasticd_test import Daemon, config_text  # noqa: E402


def timed(argv, env):
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (" ".join(argv), p.returncode, p.stderr.decode()))
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--runs", type=int, default=50, help="hook calls per hostlist size")
    ap.add_argument("--python-runs", type=int, default=10, help="python3 -c 'import openstack' runs")
    ap.add_argument("--tmp", default=None,
                    help="where the daemon's state dir goes (default: the system temp dir; "
                         "/dev/shm shows the cost without a disk's fdatasync)")
    a = ap.parse_args()

    build = os.path.abspath(a.build)
    elasticd = os.path.join(build, "daemon", "elasticd")
    hook = os.path.join(build, "daemon", "elastic-resume")
    suspend = os.path.join(build, "daemon", "elastic-suspend")
    for p in (elasticd, hook, suspend):
        if not os.access(p, os.X_OK):
            raise SystemExit("%s not built (ninja -C %s)" % (p, build))

    tmp = tempfile.mkdtemp(prefix="elasticd-bench-%d-" % os.getpid(), dir=a.tmp)
    d = Daemon(tmp, config_text(tmp, groups=(("g", "cl[1-1000]"),), max_nodes=65536))
    elasticd_test.ELASTICD = elasticd
    env = {"ELASTICD_SOCKET": d.socket}
    results = {}
    try:
        d.start()
        for size, hostlist in ((1, "cl1"), (100, "cl[1-100]"), (1000, "cl[1-1000]")):
            times = []
            for i in range(a.runs):
                times.append(timed([hook if i % 2 == 0 else suspend, hostlist], env))
            results[size] = times
        status = d.ask("status")["result"]
        d.stop(signal.SIGTERM)
        # The daemon's own time per request, from its log: "(X ms, journal Y ms)".
        inside = {}
        for m in re.finditer(r"\((\d+) nodes?\) from .*\(([\d.]+) ms, journal ([\d.]+) ms\)", d.log()):
            inside.setdefault(int(m.group(1)), []).append((float(m.group(2)), float(m.group(3))))
    finally:
        if d.proc and d.proc.poll() is None:
            d.proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    # Debian's python3 is the one with python3-openstacksdk.
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
    py = []
    for _ in range(a.python_runs):
        py.append(timed([python, "-c", "import openstack"], dict(os.environ)))
    py_med = statistics.median(py)
    # What any exec costs on this machine right now (load from other work shows here).
    base = [timed(["/bin/true"], {}) for _ in range(a.runs)]

    print("elastic-resume/suspend against elasticd, state dir on %s (%d calls each, median wall time):"
          % (a.tmp or tempfile.gettempdir(), a.runs))
    for size, times in results.items():
        med = statistics.median(times)
        print("  %5d nodes: median %7.2f ms  (min %.2f, max %.2f)  %6.0fx faster than importing openstacksdk"
              % (size, med * 1000, min(times) * 1000, max(times) * 1000, py_med / med))
    print("python3 -c 'import openstack' (%d runs): median %.1f ms (min %.1f, max %.1f)"
          % (a.python_runs, py_med * 1000, min(py) * 1000, max(py) * 1000))
    for size, v in sorted(inside.items()):
        print("  in elasticd, %5d nodes: median %.2f ms handling, of which %.2f ms journal append + fdatasync"
              % (size, statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)))
    print("/bin/true (process spawn baseline, %d runs): median %.2f ms" % (a.runs, statistics.median(base) * 1000))
    print("load average: %s" % open("/proc/loadavg").read().split()[:3])
    j = status.get("journal", {})
    print("daemon journal appends: %s, avg %.3f ms, max %.3f ms (fdatasync included)"
          % (j.get("appends_since_start"), j.get("append_ms_avg", 0), j.get("append_ms_max", 0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
