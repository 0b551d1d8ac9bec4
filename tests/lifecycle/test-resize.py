#!/usr/bin/env python3
"""resize --min end to end on Slurm 22.05: the suspend-exclusion file is
rewritten and slurmctld reconfigured; kept nodes are powered up through
Slurm and stay up past SuspendTime; shrinking powers idle nodes down at
once and drains busy ones until their job ends; resize --wait prints
progress and returns when the group is done."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stack import ELASTICCTL, HarnessError, Stack, elapsed, ours, preflight  # noqa: E402
from tap import Tap  # noqa: E402


def main():
    preflight()
    t = Tap()
    s = Stack(nodes=4, suspend_time=15, resume_timeout=120, build_delay=1.0)
    try:
        s.start()
        t.diag("stack up: base %s, emulator port %d" % (s.base, s.port))
        exc = os.path.join(s.base, "etc", "elasticd-suspend-exc.conf")

        def usable(n):
            st = s.state(n)
            return "IDLE" in st and "POWER" not in st and "NOT_RESPONDING" not in st \
                and "DOWN" not in st and "DRAIN" not in st

        def down(n):
            return "POWERED_DOWN" in s.state(n)

        def wait(cond, timeout, what):
            try:
                s.wait_for(cond, timeout, what)
            except HarnessError:
                pass
            return cond()

        def live_nodes():
            return sorted(x["metadata"]["elasticd_node"] for x in ours(s.servers()))

        # --- grow to 3 --------------------------------------------------------
        t0 = time.monotonic()
        rc, out, err = s.ctl("resize", "--min", "3")
        t.ok(rc == 0 and out and out.get("group") == "cloud", "resize --min 3 accepted", "%s %s" % (out, err))
        t.ok(wait(lambda: all(usable(n) for n in ("cl1", "cl2", "cl3")), 90, "cl[1-3] up"),
             "cl[1-3] powered up through Slurm and IDLE (%s)" % elapsed(t0),
             ", ".join(s.state(n) for n in s.group.names()) + s.log("elasticd.log")[-3000:])
        text = open(exc).read() if os.path.exists(exc) else ""
        t.ok("SuspendExcNodes=cl[1-3]" in text, "the exclusion file keeps cl[1-3]", text)
        t.ok(down("cl4"), "cl4 stays powered down (%s)" % s.state("cl4"))
        time.sleep(25)  # well past SuspendTime (15 s)
        t.ok(all(usable(n) for n in ("cl1", "cl2", "cl3")) and live_nodes() == ["cl1", "cl2", "cl3"],
             "after SuspendTime cl[1-3] are still up with one instance each: %s" % live_nodes(),
             ", ".join(s.state(n) for n in s.group.names()))

        # --- shrink to 1 with a job on cl3 -----------------------------------
        jid = s.c.sbatch("-p", "cloud", "-w", "cl3", "-o", "/dev/null", "--wrap", "sleep 35")
        t.ok(wait(lambda: s.c.job_state(jid) == "RUNNING", 30, "the job on cl3 to run"),
             "a job runs on cl3 (%s)" % s.c.job_state(jid))
        t1 = time.monotonic()
        rc, out, err = s.ctl("resize", "--min", "1")
        t.ok(rc == 0, "resize --min 1 accepted", "%s %s" % (out, err))
        t.ok(wait(lambda: down("cl2"), 60, "cl2 powered down"),
             "idle cl2 powers down (%s): %s" % (elapsed(t1), s.state("cl2")), s.log("elasticd.log")[-3000:])
        st = s.state("cl3")
        t.ok(s.c.job_state(jid) == "RUNNING" and "DRAIN" in st and "POWER_DOWN" in st,
             "busy cl3 keeps its job, DRAIN + POWER_DOWN: %s" % st)
        t.ok("cl3" in live_nodes(), "cl3's instance is still there while the job runs")
        t.ok(wait(lambda: s.c.job_state(jid) == "COMPLETED" and down("cl3"), 90, "cl3 powered down"),
             "cl3 powers down after its job ends (%s after the resize): %s" % (elapsed(t1), s.state("cl3")))
        t.ok(wait(lambda: live_nodes() == ["cl1"], 30, "only cl1's instance"),
             "only cl1 keeps an instance: %s" % live_nodes())
        t.ok(usable("cl1"), "cl1 is still up (%s)" % s.state("cl1"))
        text = open(exc).read() if os.path.exists(exc) else ""
        t.ok("SuspendExcNodes=cl1\n" in text, "the exclusion file keeps cl1", text)

        # --- resize --min 3 --wait --------------------------------------------
        # A node powered down by resize may need a moment before Slurm powers it up again.
        t2 = time.monotonic()
        p = s.c.run(ELASTICCTL, "-s", s.sock, "-t", "150", "resize", "--min", "3", "--wait", timeout=170)
        lines = [x for x in p.stdout.splitlines() if x.startswith("group cloud:")]
        t.ok(p.returncode == 0 and lines and lines[-1].endswith(": done"),
             "resize --min 3 --wait returns done (%s, %d progress lines)" % (elapsed(t2), len(lines)),
             p.stdout + p.stderr)
        t.ok(len(lines) >= 2, "it printed progress before done", p.stdout)
        t.ok(all(usable(n) for n in ("cl1", "cl2", "cl3")),
             "when it returns cl[1-3] are up: %s" % ", ".join(s.state(n) for n in ("cl1", "cl2", "cl3")))
        t.ok(live_nodes() == ["cl1", "cl2", "cl3"], "one instance each: %s" % live_nodes())
        for ln in lines:
            t.diag(ln)

        rc = s.stop_daemon()
        t.ok(rc == 0, "elasticd stops cleanly", s.log("elasticd.log")[-2000:])
    except Exception:
        t.crashed("resize")
    finally:
        s.stop()
    t.ok(not s.c.our_netns() and not os.path.exists(s.base), "nothing left behind")
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
