#!/usr/bin/env python3
"""An MPI job on elastic nodes, end to end: instances boot with only sshd,
elasticd configures them over SSH (host keys checked against the console)
and starts slurmd; an MPI hello world compiled here runs across two nodes
created for it, once as a batch job with `srun --mpi=pmix` inside, once
with srun straight from the controller."""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stack import HarnessError, Stack, elapsed, ours, preflight  # noqa: E402
from tap import Tap  # noqa: E402


def main():
    preflight("/usr/sbin/sshd", "/usr/bin/mpicc")
    t = Tap()
    s = Stack(nodes=2, suspend_time=600, resume_timeout=120, build_delay=0.5, push=True)
    try:
        s.start()
        mpi = os.path.join(s.base, "mpi_hello")
        subprocess.run(["mpicc", "-O2", "-o", mpi, os.path.join(HERE, "mpi_hello.c")], check=True)

        t0 = time.monotonic()
        out = os.path.join(s.base, "mpi-%j.out")
        jid = s.c.sbatch("-p", "cloud", "-N2", "--ntasks-per-node=1", "-o", out,
                         "--wrap", "srun --mpi=pmix %s" % mpi)
        try:
            s.wait_for(lambda: s.c.job_state(jid) in ("COMPLETED", "FAILED", "CANCELLED", "NODE_FAIL"),
                       180, "the MPI job to end")
        except HarnessError:
            pass
        st = s.c.job_state(jid)
        text = ""
        path = out.replace("%j", str(jid))
        if os.path.exists(path):
            text = open(path).read()
        t.ok(st == "COMPLETED", "sbatch -N2 --ntasks-per-node=1 MPI job on powered-down nodes: %s (%s)"
             % (st, elapsed(t0)), text + s.log("elasticd.log")[-3000:])
        ranks = sorted(l for l in text.splitlines() if l.startswith("hello from rank"))
        t.ok(len(ranks) == 2 and "rank 0 of 2" in ranks[0] and "rank 1 of 2" in ranks[1],
             "both ranks print: %s" % " | ".join(ranks))
        hosts = sorted(l.rsplit(" ", 1)[-1] for l in ranks)
        t.ok(hosts == ["cl1", "cl2"], "the ranks ran on the two elastic nodes (%s)" % " ".join(hosts))
        log = s.log("elasticd.log")
        t.ok(log.count("Configured over SSH") >= 2, "elasticd configured both nodes over SSH")

        p = s.c.run("srun", "-p", "cloud", "-N2", "--ntasks-per-node=1", "--mpi=pmix", mpi, timeout=120)
        lines = sorted(l for l in p.stdout.splitlines() if l.startswith("hello from rank"))
        t.ok(p.returncode == 0 and len(lines) == 2, "srun --mpi=pmix across the elastic nodes",
             p.stdout + p.stderr)
    except Exception:
        t.crashed("mpi")
    finally:
        s.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
