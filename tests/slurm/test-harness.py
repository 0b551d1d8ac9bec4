#!/usr/bin/env python3
"""The Slurm test harness itself, against a real slurmctld/slurmd 22.05:
a cluster of CLOUD nodes comes up powered down; `scontrol update
state=power_up` runs our ResumeProgram, which boots an instance through the
instance CLI; the node registers and runs a job; power_down runs our
SuspendProgram, which destroys the instance; stop() leaves nothing behind,
also when the test process is killed with SIGTERM."""
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "harness"))
import nsutil  # noqa: E402
from slurmcluster import HarnessError, NodeGroup, SlurmCluster  # noqa: E402
from tap import Tap, skip_all  # noqa: E402

INSTANCE = os.path.join(os.path.dirname(HERE), "harness", "instance.py")

# Hooks run with an empty environment (no PATH): absolute paths only.
RESUME = """#!/bin/sh
/usr/bin/env > @BASE@/log/resume.env
echo "$@" >> @BASE@/log/resume.calls
for n in $(/usr/bin/scontrol show hostnames "$1"); do
    @PYTHON@ @HARNESS@/instance.py up --base @BASE@ --name "$n" || exit 1
done
"""
SUSPEND = """#!/bin/sh
echo "$@" >> @BASE@/log/suspend.calls
for n in $(/usr/bin/scontrol show hostnames "$1"); do
    @PYTHON@ @HARNESS@/instance.py down --base @BASE@ --name "$n" || exit 1
done
"""

REBOOT = """#!/bin/sh
echo "$@" >> @BASE@/log/reboot.calls
for n in $(echo "$1" | /usr/bin/tr , ' '); do
    @PYTHON@ @HARNESS@/instance.py reboot --base @BASE@ --name "$n" || exit 1
done
"""

# Started in a child process and killed with SIGTERM: must clean up.
CHILD = """
import sys, time
sys.path.insert(0, %r)
from slurmcluster import SlurmCluster, NodeGroup
with SlurmCluster(groups=[NodeGroup("sg", 2)]) as c:
    c.instance_up("sg1", boot_delay=0)
    c.wait_for(lambda: c.node_state("sg1") == "IDLE+CLOUD", 20, "sg1 up")
    print(c.base, c.prefix, flush=True)
    time.sleep(120)
""" % os.path.join(os.path.dirname(HERE), "harness")


T0 = time.monotonic()


def stamp(t, what):
    t.diag("%6.1f s  %s" % (time.monotonic() - T0, what))


def mounts_mentioning(*words):
    with open("/proc/self/mountinfo") as f:
        return [l for l in f if any(w in l for w in words)]


def leftovers(base, prefix, pids):
    left = []
    left += ["pid %d (%s)" % (p, nsutil.comm(p)) for p in pids if nsutil.alive(p)]
    left += ["netns " + n for n in os.listdir(nsutil.NETNS_DIR)
             if n.startswith(prefix + "-")] if os.path.isdir(nsutil.NETNS_DIR) else []
    left += ["mount " + l.strip() for l in mounts_mentioning(base + "/", prefix + "-")]
    if os.path.exists(base):
        left.append("dir " + base)
    return left


def cli(*args):
    return subprocess.run([sys.executable, INSTANCE, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=30)


def test_rejects_bad_program(t):
    c = SlurmCluster(groups=[NodeGroup("cl", 1)], resume_program="relative/resume")
    try:
        c.start()
        t.ok(False, "a relative ResumeProgram is refused")
        c.stop()
    except HarnessError as e:
        t.ok("absolute" in str(e), "a relative ResumeProgram is refused", str(e))
    t.ok(not os.path.exists(c.base) and not c.our_netns(),
         "a failed start leaves no base dir and no netns")


def test_cluster(t):
    c = SlurmCluster(groups=[NodeGroup("cl", 3), NodeGroup("cn", 1, cloud=False)],
                     scripts={"resume": RESUME, "suspend": SUSPEND, "reboot": REBOOT},
                     resume_program="resume", suspend_program="suspend",
                     reboot_program="reboot",
                     suspend_timeout=2, resume_timeout=30, power_save_interval=1)
    pids = []
    with c:
        t.diag("cluster up in %.2f s (base %s, prefix %s)" % (c.start_seconds, c.base, c.prefix))
        pids += [c._munged.pid, c._slurmctld.pid]
        st = c.sinfo_states()
        t.ok(st == {"cl1": "idle~", "cl2": "idle~", "cl3": "idle~", "cn1": "idle"},
             "3 CLOUD nodes visible as powered down (idle~), static cn1 idle", st)
        t.ok(c.node_state("cl2") == "IDLE+CLOUD+POWERED_DOWN", "scontrol: IDLE+CLOUD+POWERED_DOWN",
             c.node_state("cl2"))
        conf = open(c.slurm_conf).read()
        t.ok("ResumeProgram=%s/bin/resume\n" % c.base in conf and "PrivateData=cloud" in conf,
             "slurm.conf names the hook and PrivateData=cloud")
        mode = os.stat(os.path.join(c.base, "bin", "resume")).st_mode & 0o777
        t.ok(mode == 0o755, "hook script written with mode 0755", oct(mode))

        # --- resume through our hook, which calls the instance CLI
        t0 = time.monotonic()
        c.run("scontrol", "update", "nodename=cl2", "state=power_up", check=True)
        try:
            c.wait_for(lambda: c.node_state("cl2") == "IDLE+CLOUD", 25, "cl2 to register")
            t.ok(True, "power_up -> ResumeProgram -> instance up -> cl2 registers")
            t.diag("power_up -> registered: %.1f s" % (time.monotonic() - t0))
        except HarnessError as e:
            t.ok(False, "power_up -> ResumeProgram -> instance up -> cl2 registers",
                 "%s\nstate %s\n%s" % (e, c.node_state("cl2"), c.log()[-3000:]))
        calls = open(os.path.join(c.base, "log", "resume.calls")).read().split()
        t.ok(calls == ["cl2"], "ResumeProgram called once with argv[1]=cl2", calls)
        env = dict(l.split("=", 1) for l in
                   open(os.path.join(c.base, "log", "resume.env")).read().splitlines() if "=" in l)
        t.ok(env.get("SLURM_CONF") == c.slurm_conf and "PATH" not in env,
             "the hook gets SLURM_CONF and no PATH", env)
        info = c.node_info("cl2")
        t.ok(info.get("NodeAddr") == c.node_addrs["cl2"] and info.get("NodeHostName") == "cl2",
             "cloud_reg_addrs recorded the instance's address and hostname", info)
        ns = c.instance_netns("cl2")
        t.ok(ns in c.our_netns(), "instance netns %s exists" % ns)
        out = subprocess.run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"],
                             stdout=subprocess.PIPE, text=True).stdout
        t.ok(c.node_addrs["cl2"] + "/24" in out, "the address lives only in the instance's netns",
             out)
        root = subprocess.run(["ip", "-4", "-o", "addr"], stdout=subprocess.PIPE, text=True).stdout
        t.ok(c.node_addrs["cl2"] not in root and c.ctl_addr + "/" not in root,
             "no harness address in the root netns", root)
        holder = nsutil.read_pid(os.path.join(c.base, "run", "instance", "cl2.holder"))
        uts = subprocess.run(["nsenter", "-t", str(holder), "--uts", "hostname"],
                             stdout=subprocess.PIPE, text=True).stdout.strip()
        t.ok(uts == "cl2", "the instance has its own hostname", uts)
        up = float(subprocess.run(["nsenter", "-t", str(holder), "--time", "cat", "/proc/uptime"],
                                  stdout=subprocess.PIPE, text=True).stdout.split()[0])
        t.ok(up < 60, "the instance's uptime counts from its boot (time namespace)", up)
        pids += nsutil.netns_pids(ns)

        stamp(t, 'a job runs on it')
        # --- a job runs on it
        out = os.path.join(c.base, "log", "job.out")
        jid = c.sbatch("-p", "cloud", "-w", "cl2", "-o", out, "--wrap", "hostname")
        try:
            c.wait_for(lambda: c.job_state(jid) in ("COMPLETED", "FAILED", "CANCELLED"), 40,
                       "job %d" % jid)
        except HarnessError as e:
            t.diag(str(e))
        st = c.job_state(jid)
        t.ok(st == "COMPLETED", "batch job %d completed on cl2" % jid, st)
        txt = open(out).read().strip() if os.path.exists(out) else ""
        t.ok(txt == "cl2", "the job saw hostname cl2", txt)

        stamp(t, 'reboot_from_controller')
        # --- reboot_from_controller: RebootProgram reboots the instance
        boot0 = c.node_info("cn1").get("BootTime")
        c.run("scontrol", "reboot", "cn1", check=True)
        try:
            c.wait_for(lambda: c.node_info("cn1").get("BootTime") != boot0
                       and c.node_state("cn1") == "IDLE", 25, "cn1 to reboot")
            t.ok(True, "scontrol reboot -> RebootProgram -> instance reboot -> cn1 idle again")
        except HarnessError as e:
            t.ok(False, "scontrol reboot -> RebootProgram -> instance reboot -> cn1 idle again",
                 "%s: %s" % (e, c.node_info("cn1")))
        calls = open(os.path.join(c.base, "log", "reboot.calls")).read().split()
        t.ok(calls == ["cn1"], "RebootProgram called with argv[1]=cn1", calls)

        stamp(t, 'a second instance through')
        # --- a second instance through the emulator's hook, with an explicit address
        r = subprocess.run([sys.executable, INSTANCE, "emu-hook", "--base", c.base],
                           env=dict(os.environ, EMU_EVENT="create", EMU_SERVER_NAME="cl3",
                                    EMU_ADDRESS="10.77.0.200", EMU_SERVER_ID="x"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        t.ok(r.returncode == 0, "instance CLI: emu-hook EMU_EVENT=create", r.stderr)
        try:
            c.wait_for(lambda: c.node_info("cl3").get("NodeAddr") == "10.77.0.200", 20,
                       "cl3 to register")
            t.ok(True, "a node that registers unasked takes the instance's address")
        except HarnessError as e:
            t.ok(False, "a node that registers unasked takes the instance's address",
                 "%s: %s" % (e, c.node_info("cl3")))
        cl3_pids = nsutil.netns_pids(c.instance_netns("cl3"))
        pids += cl3_pids
        r = cli("up", "--base", c.base, "--name", "cl3")
        t.ok(r.returncode == 1 and "already exists" in r.stderr, "up twice is refused", r.stderr)
        r = cli("up", "--base", c.base, "--name", "x9", "--addr", "192.168.5.5")
        t.ok(r.returncode == 1 and "not a host address" in r.stderr,
             "an address outside the subnet is refused", r.stderr)
        r = cli("up", "--base", c.base, "--name", "../x")
        t.ok(r.returncode == 1 and "bad instance name" in r.stderr, "a bad name is refused",
             r.stderr)
        t.ok(not [n for n in c.our_netns() if "x9" in n or ".." in n],
             "refused instances leave no netns")
        r = cli("exec", "--base", c.base, "--name", "cl3", "--", "hostname")
        t.ok(r.returncode == 0 and r.stdout.strip() == "cl3", "instance CLI: exec", r)
        h0 = nsutil.read_pid(os.path.join(c.base, "run", "instance", "cl3.holder"))
        r = cli("reboot", "--base", c.base, "--name", "cl3", "--wait", "--boot-delay", "0")
        h1 = nsutil.read_pid(os.path.join(c.base, "run", "instance", "cl3.holder"))
        t.ok(r.returncode == 0 and h1 and h1 != h0 and not nsutil.alive(h0)
             and c.instance_netns("cl3") in c.our_netns(),
             "instance CLI: reboot replaces every process, keeps the netns", (r, h0, h1))
        cl3_pids = nsutil.netns_pids(c.instance_netns("cl3"))
        pids += cl3_pids
        r = subprocess.run([sys.executable, INSTANCE, "emu-hook", "--base", c.base],
                           env=dict(os.environ, EMU_EVENT="delete", EMU_SERVER_NAME="cl3",
                                    EMU_SERVER_ID="other"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        t.ok(r.returncode == 0 and c.instance_netns("cl3") in c.our_netns()
             and all(nsutil.alive(p) for p in cl3_pids),
             "emu-hook delete by another server of the same name leaves the instance alone", r)
        r = subprocess.run([sys.executable, INSTANCE, "emu-hook", "--base", c.base],
                           env=dict(os.environ, EMU_EVENT="delete", EMU_SERVER_NAME="cl3",
                                    EMU_SERVER_ID="x"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        t.ok(r.returncode == 0 and c.instance_netns("cl3") not in c.our_netns()
             and not any(nsutil.alive(p) for p in cl3_pids),
             "instance CLI: emu-hook delete ends its processes and deletes its netns", r)
        r = cli("down", "--base", c.base, "--name", "cl3")
        t.ok(r.returncode == 0 and "none" in r.stdout, "instance CLI: down of a gone instance "
             "is a no-op", r)

        stamp(t, 'power down through')
        # --- power down through our SuspendProgram, which destroys the instance
        c.run("scontrol", "update", "nodename=cl2", "state=power_down", check=True)
        try:
            c.wait_for(lambda: not nsutil.netns_exists(ns), 20, "cl2's instance to go")
            c.wait_for(lambda: "POWERED_DOWN" in c.node_state("cl2"), 30, "cl2 powered down")
            t.ok(True, "power_down -> SuspendProgram -> instance down -> POWERED_DOWN")
        except HarnessError as e:
            t.ok(False, "power_down -> SuspendProgram -> instance down -> POWERED_DOWN",
                 "%s: %s" % (e, c.node_state("cl2")))
        pids += nsutil.netns_pids(c.ctl_netns)
    stamp(t, 'left = leftovers(c.base, c.prefix, pids)')
    left = leftovers(c.base, c.prefix, pids)
    t.ok(not left, "stop() leaves no process, netns, mount or directory", "\n".join(left))


def start_child(t):
    """A test process of its own with a cluster and a booted instance:
    returns (process, base, prefix, pids in its namespaces)."""
    p = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    if len(line) != 2:
        p.kill()
        t.ok(False, "child test process started a cluster", p.stderr.read())
        return None
    base, prefix = line
    pids = []
    for n in os.listdir(nsutil.NETNS_DIR):
        if n.startswith(prefix + "-"):
            pids += nsutil.netns_pids(n)
    t.ok(len(pids) >= 4, "child's cluster runs (slurmctld, holder, slurmd, ...)", pids)
    return p, base, prefix, pids


def test_sigterm(t):
    r = start_child(t)
    if not r:
        return
    p, base, prefix, pids = r
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
    left = leftovers(base, prefix, pids)
    t.ok(rc == 128 + signal.SIGTERM and not left,
         "SIGTERM to the test process stops its cluster and leaves nothing",
         "rc %s\n%s" % (rc, "\n".join(left)))


def test_sigkill_cleanup(t):
    r = start_child(t)
    if not r:
        return
    p, base, prefix, pids = r
    p.kill()
    p.wait()
    t.ok(leftovers(base, prefix, pids), "SIGKILL leaves the cluster running")
    c = subprocess.run([sys.executable, os.path.join(os.path.dirname(INSTANCE), "slurmcluster.py"),
                        "cleanup", base], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    left = leftovers(base, prefix, pids)
    t.ok(c.returncode == 0 and not left, "slurmcluster.py cleanup BASE removes all of it",
         "%s\n%s" % (c.stdout, "\n".join(left)))


def main():
    if os.geteuid() != 0:
        skip_all("needs root (network namespaces)")
    for prog in ("slurmctld", "slurmd", "munged", "nsenter", "unshare"):
        if not shutil.which(prog, path=nsutil.SAFE_PATH):
            skip_all("%s not installed" % prog)
    t = Tap()
    for f in (test_rejects_bad_program, test_cluster, test_sigterm, test_sigkill_cleanup):
        try:
            f(t)
        except Exception:
            t.crashed(f.__name__)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
