#!/usr/bin/env python3
"""scripts/demo's driver: a real Slurm cluster whose cloud is the bundled
OpenStack emulator, elasticd in between, and an MPI job that makes two
powered-down nodes power up, run, idle and power down, shown live.

Everything runs in network namespaces this script creates and removes; Ctrl-C
at any point stops everything it started."""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lifecycle"))
from stack import Stack  # noqa: E402

BOLD = "\033[1m" if sys.stdout.isatty() else ""
DIM = "\033[2m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""

T0 = time.monotonic()


def say(msg, style=""):
    print("%s[%6.1fs]%s %s%s%s" % (DIM, time.monotonic() - T0, RESET, style, msg, RESET), flush=True)


def explain(msg):
    say(msg, BOLD)


def slurm_words(state):
    """Slurm's node state in words for someone who never used Slurm."""
    if not state:
        return "unknown"
    s = set(state.split("+"))
    if "POWERING_UP" in s:
        return "powering up"
    if "POWERING_DOWN" in s:
        return "powering down"
    if "POWERED_DOWN" in s:
        return "off (powered down)"
    if "DOWN" in s:
        return "down"
    if "ALLOCATED" in s or "MIXED" in s:
        return "running a job"
    if "IDLE" in s:
        return "idle, ready"
    return state.lower()


class Watcher:
    """Prints a line for every change of a node, an instance or the job."""

    def __init__(self, stack, nodes):
        self.s = stack
        self.nodes = nodes
        self.last = {}
        self.job_last = None

    def poll(self, job=None):
        view = self.s.nodes()
        states = {n: self.s.state(n) for n in self.nodes}
        servers = {x["name"]: x for x in self.s.servers()
                   if (x.get("metadata") or {}).get("elasticd_node")}
        for n in self.nodes:
            v = view.get(n, {})
            srv = servers.get(n)
            inst = "no instance"
            if srv:
                task = srv.get("task_state")
                inst = "instance %s %s%s" % (srv["id"][:8], srv["status"],
                                            " (%s)" % task if task else "")
            op = ""
            if v.get("operation") and v.get("operation_state") in ("pending", "running"):
                op = "elasticd: %s, step %s" % (v["operation"], v.get("step") or "pending")
            line = "%-4s %-20s %-38s %s" % (n, slurm_words(states[n]), inst, op)
            if self.last.get(n) != line:
                self.last[n] = line
                say(line)
        if job:
            st = self.s.c.job_state(job)
            if st != self.job_last:
                self.job_last = st
                say("job %d: %s" % (job, st), BOLD)
                if st == "CONFIGURING":
                    say("  (Slurm holds a job in CONFIGURING until its nodes have booted; it checks "
                        "every 30 s, so a job may start up to 30 s after its nodes are ready)")
            return st
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suspend-time", type=int, default=30,
                    help="seconds a node stays idle before Slurm powers it down (default 30)")
    ap.add_argument("--nodes", type=int, default=4, help="cloud nodes in the cluster (default 4)")
    a = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("scripts/demo: run as root (it creates network namespaces)")

    explain("Starting: munge, slurmctld (%d powered-down cloud nodes cl[1-%d]), the OpenStack "
            "emulator and elasticd" % (a.nodes, a.nodes))
    s = Stack(nodes=a.nodes, suspend_time=a.suspend_time, resume_timeout=180, build_delay=2.0,
              debug=False, push=True)
    try:
        s.start()
        say("Slurm sees: " + s.c.run("sinfo", "-h", "-o", "%P %D %t %N").stdout.strip().replace("\n", "; "))
        say("elasticd logs to %s" % os.path.join(s.c.log_dir, "elasticd.log"))

        mpi = os.path.join(s.base, "mpi_hello")
        subprocess.run(["mpicc", "-O2", "-o", mpi, os.path.join(ROOT, "tests", "lifecycle", "mpi_hello.c")],
                       check=True)
        out = os.path.join(s.base, "mpi-%j.out")
        explain("Submitting an MPI job that needs 2 nodes: sbatch -N2 --ntasks-per-node=1 "
                "--wrap 'srun --mpi=pmix mpi_hello'")
        job = s.c.sbatch("-p", "cloud", "-N2", "--ntasks-per-node=1", "-o", out,
                         "--wrap", "srun --mpi=pmix %s" % mpi)
        explain("No node is on: Slurm runs elastic-resume; elasticd creates the instances, checks "
                "each one's SSH host key against its console log, logs in and starts slurmd")
        w = Watcher(s, s.group.names())
        deadline = time.monotonic() + 300
        st = None
        while time.monotonic() < deadline:
            st = w.poll(job)
            if st in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL"):
                break
            time.sleep(1)
        path = out.replace("%j", str(job))
        if os.path.exists(path):
            explain("The job's output:")
            with open(path) as f:
                for line in f.read().splitlines():
                    say("  " + line)
        if st != "COMPLETED":
            explain("The job ended %s; see %s" % (st, s.c.log_dir))
            return 1

        explain("The nodes are idle now; after SuspendTime (%d s) Slurm runs elastic-suspend and "
                "elasticd deletes the instances" % a.suspend_time)
        deadline = time.monotonic() + a.suspend_time + 120
        while time.monotonic() < deadline:
            w.poll()
            used = [n for n in s.group.names() if "POWERED_DOWN" not in s.state(n)]
            live = [x for x in s.servers() if (x.get("metadata") or {}).get("elasticd_node")]
            if not used and not live:
                break
            time.sleep(1)
        w.poll()
        rc, status, _ = s.ctl("status")
        if rc == 0 and status:
            ops = status.get("operations", {})
            explain("elasticd did: %s; instances created %s, deleted %s" % (
                ", ".join("%s %d/%d ok" % (k, v.get("succeeded", 0), v.get("started", 0))
                          for k, v in ops.items() if v.get("started")),
                status.get("instances_created"), status.get("instances_deleted")))
        explain("Done in %.0f s. Stopping everything that was started." % (time.monotonic() - T0))
        return 0
    except KeyboardInterrupt:
        explain("Interrupted: stopping everything that was started")
        return 130
    finally:
        s.stop()


if __name__ == "__main__":
    sys.exit(main())
