#!/usr/bin/env python3
"""Benchmark (figures, never pass/fail on timing): elasticd with 10,000 nodes
in 10 groups of 1,000 against a real slurmctld holding them as CLOUD nodes
(tests/harness) and the OpenStack emulator as the cloud (no boot hook: the
servers go ACTIVE and never register).

Prints: idle RSS; CPU seconds and wake-ups (context switches, all threads)
over an idle minute; `elasticctl nodes` and `status` wall times; the time
from the resume hook to the first server POST of a 1,000-node resume; RSS
after that resume; the replay time of a 100,000-record journal
(bench-journal).

    tests/bench/scale.py [BUILD_DIR] [--groups 10] [--nodes 1000] [--idle 60]
    meson test -C build --benchmark --suite bench scale
Needs root (namespaces), slurmctld and munged, as the lifecycle tests."""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "harness"))
import nsutil  # noqa: E402
from slurmcluster import NodeGroup, SlurmCluster  # noqa: E402

EMULATOR = os.path.join(TESTS, "emulator", "emulator.py")
HOOKS = ("elastic-resume", "elastic-suspend", "elastic-resume-fail", "elastic-reboot")
WRAPPER = """#!/bin/sh
ELASTICD_SOCKET=@BASE@/elasticd.sock; export ELASTICD_SOCKET
exec %s "$@"
"""
CLOUDS = """\
clouds:
  emulator:
    auth_type: password
    auth:
      auth_url: http://127.0.0.1:{port}/v3
      username: demo
      password: demo
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
"""
CONFIG = """\
cluster: s{pid}
cloud: emulator
clouds_file: {base}/elasticd/clouds.yaml
state_dir: {base}/elasticd/state
socket:
  path: {base}/elasticd.sock
  mode: "0600"
slurm:
  conf: {slurm_conf}
  user: root
limits:
  max_hostlist_nodes: 65536
groups:
"""
GROUP = """\
  - name: g{i}
    nodes: "{nodes}"
    flavor: small
    image: tiny
    networks: ["private"]
"""
# Polls the emulator's stats (in the controller netns) until a server POST
# shows, then prints the wall-clock time it saw it.
FIRST_POST = """\
import json, sys, time, urllib.request as u
url = sys.argv[1]; end = time.time() + float(sys.argv[2])
while time.time() < end:
    st = json.loads(u.urlopen(url, timeout=10).read())
    if any(k.startswith("POST") and k.rstrip("/").endswith("/servers") and v > 0
           for k, v in st.get("by_route", {}).items()):
        print(time.time()); sys.exit(0)
    time.sleep(0.01)
print("none"); sys.exit(1)
"""


class Figures(dict):
    """Printed as they come, so that a run cut short still shows them."""
    def __setitem__(self, k, v):
        super().__setitem__(k, v)
        print("  %-55s %s" % (k + ":", v), flush=True)


def find_pid(exe, conf):
    exe = os.path.realpath(exe)
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.path.realpath("/proc/%s/exe" % p) == exe and conf in open("/proc/%s/cmdline" % p).read():
                return int(p)
        except OSError:
            pass
    return None


def rss_kib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def rss_breakdown(pid):
    """RSS by kind of page, from /proc/PID/smaps, in KiB: pages of files
    (shared libraries and elasticd itself) left as they are on disk, of
    which how many other processes map too at this moment (that part moves
    with what else runs), the files' pages written to (relocations: as good
    as anonymous), the heap, and the other anonymous mappings (thread
    arenas, stacks, blocks of 128 KiB and more)."""
    out = {"file clean": 0, "shared now": 0, "file written": 0, "heap": 0, "other anon": 0}
    name = None
    for line in open("/proc/%d/smaps" % pid):
        f = line.split()
        if "-" in f[0] and ":" not in f[0]:
            name = f[5] if len(f) > 5 else ""
            anon = name == "" or name.startswith("[")
            continue
        if f[0] not in ("Shared_Clean:", "Shared_Dirty:", "Private_Clean:", "Private_Dirty:"):
            continue
        kib = int(f[1])
        if name == "[heap]":
            out["heap"] += kib
        elif anon:
            out["other anon"] += kib
        elif f[0].endswith("Clean:"):
            out["file clean"] += kib
            if f[0] == "Shared_Clean:":
                out["shared now"] += kib
        else:
            out["file written"] += kib
    threads = len(os.listdir("/proc/%d/task" % pid))
    return ("libraries and binary %d KiB as on disk (%d of it mapped by other processes now) + %d written; "
            "heap %d; other anonymous %d; %d threads" % (
                out["file clean"], out["shared now"], out["file written"], out["heap"], out["other anon"],
                threads))


def cpu_and_switches(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    cpu = (int(f[11]) + int(f[12])) / tck
    sw = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            for line in open("/proc/%d/task/%s/status" % (pid, t)):
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    sw += int(line.split()[1])
        except OSError:
            pass
    return cpu, sw


def cpu_ns(pid):
    """CPU time of every thread of PID, in ns (schedstat: finer than ticks)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            total += int(open("/proc/%d/task/%s/schedstat" % (pid, t)).read().split()[0])
        except OSError:
            pass
    return total


def timed(argv, env, runs, daemon_pid=None):
    """Median wall time of RUNS runs, and the mean CPU seconds per run of
    the client (user + system) and of the daemon; or None and the error."""
    times = []
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    d0 = cpu_ns(daemon_pid) if daemon_pid else 0
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - t0)
        if p.returncode != 0:
            return None, p.stderr.decode().strip()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / runs
    daemon = (cpu_ns(daemon_pid) - d0) / 1e9 / runs if daemon_pid else None
    return (statistics.median(times), client, daemon), None


def daemon_cpu_per_request(sock, request, pid, runs):
    """elasticd's mean CPU seconds to answer REQUEST (a dict) and the reply's
    size, asked over one connection per run as elasticctl does."""
    import socket
    import struct
    body = json.dumps(dict(request, version=1)).encode()
    d0, size = cpu_ns(pid), 0
    for _ in range(runs):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(sock)
            s.sendall(struct.pack(">I", len(body)) + body)
            head = b""
            while len(head) < 4:
                head += s.recv(4 - len(head))
            size = struct.unpack(">I", head)[0]
            got = 0
            while got < size:
                got += len(s.recv(min(1 << 20, size - got)))
    return (cpu_ns(pid) - d0) / 1e9 / runs, size


def timed_text(t, runs):
    med, client, daemon = t
    s = "%.1f ms wall (median of %d); CPU per call: client %.1f ms" % (med * 1000, runs, client * 1000)
    return s + (", elasticd %.1f ms" % (daemon * 1000) if daemon is not None else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--nodes", type=int, default=1000, help="nodes per group")
    ap.add_argument("--idle", type=float, default=60.0, help="idle seconds measured")
    ap.add_argument("--resume", type=int, default=1000, help="nodes resumed at once (0: no resume)")
    ap.add_argument("--hold", type=float, default=0,
                    help="before the resume, keep everything up this long (to profile by hand)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="put NAME=VALUE into elasticd's environment (e.g. GLIBC_TUNABLES, to compare)")
    ap.add_argument("--resume-wait", type=float, default=300.0,
                    help="longest wait for the resume's first POST, in seconds")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    elasticd = os.path.join(build, "daemon", "elasticd")
    elasticctl = os.path.join(build, "daemon", "elasticctl")
    if os.geteuid() != 0:
        print("scale: needs root (namespaces, slurmctld); skipped")
        return 77

    groups = [NodeGroup("g%dn" % i, a.nodes) for i in range(a.groups)]
    hooks = {h: WRAPPER % os.path.join(build, "daemon", h) for h in HOOKS}
    c = SlurmCluster(groups=groups, scripts=hooks, subnet="10.77.0.0/16",
                     resume_program="elastic-resume", suspend_program="elastic-suspend",
                     resume_fail_program="elastic-resume-fail", reboot_program="elastic-reboot",
                     suspend_time=3600, resume_timeout=600, power_save_interval=10,
                     ctld_debug="info", start_timeout=120)
    print("elasticd at %d nodes in %d groups against slurmctld and the emulator:" % (a.groups * a.nodes, a.groups),
          flush=True)
    out = Figures()
    try:
        t = time.monotonic()
        c.start()
        out["slurmctld start"] = "%.1f s" % (time.monotonic() - t)
        edir = os.path.join(c.base, "elasticd")
        os.makedirs(os.path.join(edir, "state"), mode=0o700, exist_ok=True)
        portfile = os.path.join(edir, "emulator.port")
        c.spawn([sys.executable, EMULATOR, "--port", "0", "--port-file", portfile, "--build-delay", "5"],
                os.path.join(c.log_dir, "emulator.log"))
        c.wait_for(lambda: os.path.exists(portfile) and open(portfile).read().strip(), 30, "the emulator")
        port = int(open(portfile).read())
        nsutil.write_file(os.path.join(edir, "clouds.yaml"), CLOUDS.format(port=port), 0o600)
        conf = os.path.join(edir, "elasticd.yaml")
        text = CONFIG.format(pid=os.getpid(), base=c.base, slurm_conf=c.slurm_conf)
        text += "".join(GROUP.format(i=i, nodes=g.hostlist()) for i, g in enumerate(groups))
        nsutil.write_file(conf, text, 0o600)
        sock = os.path.join(c.base, "elasticd.sock")
        env = {"ELASTICD_SOCKET": sock, "PATH": "/usr/bin:/bin"}

        t = time.monotonic()
        c.spawn([elasticd, "-c", conf], os.path.join(c.log_dir, "elasticd.log"),
                 env=dict(e.split("=", 1) for e in a.env) or None)
        c.wait_for(lambda: subprocess.run([elasticctl, "-s", sock, "ping"], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL).returncode == 0, 120, "elasticd")
        out["elasticd start to ping"] = "%.2f s" % (time.monotonic() - t)
        pid = find_pid(elasticd, conf)
        time.sleep(10)      # settle: first Slurm load, first reconcile
        out["idle RSS (target <= 16384 KiB)"] = "%d KiB" % rss_kib(pid)
        out["idle RSS by kind"] = rss_breakdown(pid)
        cpu0, sw0 = cpu_and_switches(pid)
        peak = 0
        for _ in range(int(a.idle)):
            time.sleep(1)
            peak = max(peak, rss_kib(pid))
        time.sleep(a.idle - int(a.idle))
        cpu1, sw1 = cpu_and_switches(pid)
        out["idle RSS after the idle time (highest seen)"] = "%d KiB (%d KiB)" % (rss_kib(pid), peak)
        out["idle RSS by kind, after"] = rss_breakdown(pid)
        out["idle CPU per minute (target < 0.1 s)"] = "%.3f s (%.2f s in %.0f s)" % (
            (cpu1 - cpu0) * 60 / a.idle, cpu1 - cpu0, a.idle)
        out["idle wake-ups per minute"] = "%.0f (context switches, all threads)" % ((sw1 - sw0) * 60 / a.idle)
        # The same load for a program that does nothing, to compare with.
        t, err = timed(["/bin/true"], env, 11)
        out["/bin/true (start-up under this load)"] = timed_text(t, 11)
        for what, argv, target in (("nodes", ["nodes"], "< 100 ms"), ("nodes --json", ["--json", "nodes"], ""),
                                   ("status", ["status"], "< 10 ms")):
            runs = 5 if "json" in what else 11
            t, err = timed([elasticctl, "-s", sock] + argv, env, runs, pid)
            key = "elasticctl %s%s" % (what, " (target %s)" % target if target else "")
            out[key] = timed_text(t, runs) if t is not None else "failed: " + err
        for form, extra in (("objects", {}), ("rows", {"rows": True}), ("table", {"table": True})):
            cpu, size = daemon_cpu_per_request(sock, dict(extra, type="nodes"), pid, 5)
            out["elasticd CPU for a nodes reply, %s form" % form] = "%.1f ms (%d bytes)" % (cpu * 1000, size)
        out["load average"] = " ".join(open("/proc/loadavg").read().split()[:3])

        if a.hold > 0:
            print("holding %.0f s: ELASTICD_SOCKET=%s, elasticd pid %d, config %s" % (a.hold, sock, pid, conf),
                  flush=True)
            time.sleep(a.hold)
        if a.resume <= 0:
            return 0
        # 1,000-node resume: hook -> first server POST at the emulator.
        nodes = groups[0].names()[:a.resume]
        hostlist = "%s[%d-%d]" % (groups[0].prefix, 1, len(nodes))
        url = "http://127.0.0.1:%d/_emulator/stats" % port
        poll = subprocess.Popen(c.ctl_command([sys.executable, "-c", FIRST_POST, url, str(a.resume_wait)]),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env=nsutil.clean_env())
        time.sleep(1.0)     # the poller's interpreter is up
        t0 = time.time()
        hook = subprocess.run([os.path.join(build, "daemon", "elastic-resume"), hostlist], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        t_hook = time.time() - t0
        first = poll.communicate(timeout=a.resume_wait + 30)[0].strip()
        out["resume hook (%d nodes) returned after" % len(nodes)] = "%.1f ms (exit %d)" % (t_hook * 1000,
                                                                                          hook.returncode)
        out["hook to first POST (target <= 2 s)"] = ("%.2f s" % (float(first) - t0)
                                                     if first not in ("", "none") else
                                                     "none within %.0f s" % a.resume_wait)
        time.sleep(20)
        out["RSS 20 s into the %d-node resume" % len(nodes)] = "%d KiB" % rss_kib(pid)
        st = subprocess.run([elasticctl, "-s", sock, "--json", "status"], env=env, capture_output=True,
                            text=True)
        try:
            s = json.loads(st.stdout)
            out["elasticd status after the resume"] = json.dumps(s.get("result", s).get("operations", ""))[:200]
        except ValueError:
            pass
    finally:
        c.stop()

    bj = os.path.join(build, "tests", "bench", "bench-journal")
    if os.access(bj, os.X_OK):
        p = subprocess.run([bj], capture_output=True, text=True, timeout=300)
        for line in p.stdout.splitlines():
            if "replay" in line or "compact" in line or "open" in line:
                out["journal (bench-journal, 100k records): " + line.split(":")[0].strip()] = \
                    line.split(":", 1)[1].strip() if ":" in line else line

    print("load average: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
