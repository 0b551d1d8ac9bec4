#!/usr/bin/env python3
"""The node lifecycle end to end, driven by a real slurmctld: sbatch on
powered-down CLOUD nodes -> elastic-resume -> elasticd creates the
instances in the emulator (each boots as a namespace running slurmd) ->
slurmd registers -> the job runs -> SuspendTime -> elastic-suspend -> the
instances are deleted.  Then an ERROR build, and kill -9 of elasticd in the
middle of a resume."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stack import ELASTICCTL, HarnessError, Stack, elapsed, nsutil, ours, preflight  # noqa: E402
from tap import Tap  # noqa: E402


def main():
    preflight()
    t = Tap()
    s = Stack(nodes=4, suspend_time=20, resume_timeout=120, build_delay=1.0)
    try:
        s.start()
        t.diag("stack up: base %s, emulator port %d" % (s.base, s.port))

        # --- 1. a job on two powered-down nodes -------------------------------
        t0 = time.monotonic()
        jid = s.c.sbatch("-p", "cloud", "-N2", "-o", os.path.join(s.base, "job-%j.out"),
                         "--wrap", "srun hostname")
        try:
            s.wait_for(lambda: s.c.job_state(jid) in ("COMPLETED", "FAILED", "CANCELLED"), 150,
                       "job %d to end" % jid)
        except HarnessError:
            pass
        st = s.c.job_state(jid)
        out = ""
        try:
            with open(os.path.join(s.base, "job-%d.out" % jid)) as f:
                out = f.read()
        except OSError:
            pass
        t.ok(st == "COMPLETED", "sbatch -N2 on powered-down nodes completes (%s, %s)" % (st, elapsed(t0)),
             s.log("elasticd.log")[-4000:] + "\n" + s.log()[-2000:])
        hosts = sorted(out.split())
        t.ok(len(hosts) == 2 and all(h.startswith("cl") for h in hosts),
             "the job ran on two elastic nodes: %s" % " ".join(hosts))

        live = ours(s.servers())
        t.ok(len(live) == 2 and all(x["status"] == "ACTIVE" for x in live),
             "two ACTIVE instances carry elasticd's metadata",
             str([(x["name"], x["status"], x.get("metadata")) for x in live]))
        names = sorted(x["metadata"]["elasticd_node"] for x in live)
        t.ok(names == hosts, "each instance is named for its node (%s)" % " ".join(names))
        nodes = s.nodes()
        up = [n for n in names if nodes.get(n, {}).get("instance_id") and nodes[n].get("address")]
        t.ok(len(up) == 2, "elasticctl nodes shows their instances and addresses",
             str({n: nodes.get(n) for n in names}))

        # --- 2. idle -> SuspendTime -> instances deleted -----------------------
        t1 = time.monotonic()
        try:
            s.wait_for(lambda: not ours(s.servers()), 120, "the instances to be deleted")
        except HarnessError:
            pass
        left = ours(s.servers())
        t.ok(not left, "after SuspendTime both instances are deleted (%s)" % elapsed(t1),
             str([(x["name"], x["status"]) for x in left]) + s.log("elasticd.log")[-3000:])
        try:
            s.wait_for(lambda: all("POWERED_DOWN" in s.state(n) for n in names), 60,
                       "the nodes to be powered down")
        except HarnessError:
            pass
        t.ok(all("POWERED_DOWN" in s.state(n) for n in names),
             "the nodes are powered down again: %s" % ", ".join(s.state(n) for n in names))

        # --- 3. an ERROR build: instance deleted, node DOWN with the fault ------
        # (a NoValidHost is a capacity failure: failed over, not DOWN; test-weather)
        s.emu_config(build_error_regex="^cl3$", build_error_kind="spawn",
                     build_error_message="Image tiny is unacceptable: injected")
        s.c.run("scontrol", "update", "nodename=cl3", "state=power_up", check=True)

        def reason(node):
            return s.c.run("sinfo", "-h", "-N", "-n", node, "-o", "%E").stdout.strip()

        def down_with_reason(node="cl3"):
            # powered down at once, then DOWN (not left powering up for ResumeTimeout)
            st = s.state(node).split("+")
            return "DOWN" in st and "POWERED_DOWN" in st and "elasticd" in reason(node)
        try:
            s.wait_for(down_with_reason, 60, "cl3 to be marked DOWN by elasticd")
        except HarnessError:
            pass
        t.ok(down_with_reason() and "Image tiny is unacceptable" in reason("cl3"),
             "an ERROR build leaves cl3 DOWN with the cloud's fault: %s" % reason("cl3"),
             s.log("elasticd.log")[-3000:])
        try:
            s.wait_for(lambda: not [x for x in ours(s.servers()) if x["name"] == "cl3"], 30,
                       "cl3's instance to be deleted")
        except HarnessError:
            pass
        t.ok(not [x for x in ours(s.servers()) if x["name"] == "cl3"],
             "the ERROR instance is deleted")
        # A fault that quotes a URL with a password and a token: neither
        # reaches Slurm's reason nor the node's note (elasticctl nodes).
        s.emu_config(build_error_regex="^cl4$", build_error_kind="spawn",
                     build_error_message="image fetch from http://admin:S3cretPW@img.example/x?token=T0kenXYZ failed")
        s.c.run("scontrol", "update", "nodename=cl4", "state=power_up", check=True)
        try:
            s.wait_for(lambda: down_with_reason("cl4"), 60,
                       "cl4 to be marked DOWN by elasticd")
        except HarnessError:
            pass
        # The failed resume's note (the suspend that Slurm asks for after the
        # power down follows it, with a note of its own): as journalled.
        note = " ".join(r.get("note") or "" for r in s.journal()
                        if r.get("node") == "cl4" and r.get("kind") == "op_state" and r.get("state") == "failed")
        t.ok("img.example" in reason("cl4") and "S3cretPW" not in reason("cl4") and "T0kenXYZ" not in reason("cl4"),
             "a URL in the cloud's fault reaches Slurm's reason redacted: %s" % reason("cl4"))
        t.ok("img.example" in note and "S3cretPW" not in note and "T0kenXYZ" not in note,
             "... and the node's note: %s" % note)
        table = s.c.run(ELASTICCTL, "-s", s.sock, "nodes").stdout
        t.ok("cl4" in table and "S3cretPW" not in table and "T0kenXYZ" not in table,
             "... also in elasticctl nodes' table (the row form)", table)
        s.emu_config(build_error_regex=None, build_error_kind="novalidhost")
        s.c.run("scontrol", "update", "nodename=cl[3-4]", "state=resume")

        # --- 4. kill -9 elasticd in the middle of a resume ----------------------
        s.emu_config(build_delay=4.0)
        s.c.run("scontrol", "update", "nodename=cl[1-4]", "state=power_up", check=True)
        try:
            s.wait_for(lambda: len(ours(s.servers())) >= 2, 30, "creates to start")
        except HarnessError:
            pass
        s.kill_daemon(9)
        t.diag("killed elasticd with %d instances in the emulator" % len(ours(s.servers())))
        s.start_daemon()
        s.emu_config(build_delay=1.0)

        def all_up():
            return all(("IDLE" in s.state(n) or "MIXED" in s.state(n) or "ALLOC" in s.state(n))
                       and "NOT_RESPONDING" not in s.state(n) and "POWER" not in s.state(n)
                       for n in s.group.names())
        try:
            s.wait_for(all_up, 120, "every node up after the restart")
        except HarnessError:
            pass
        t.ok(all_up(), "after kill -9 and restart every node comes up: %s" %
             ", ".join("%s=%s" % (n, s.state(n)) for n in s.group.names()),
             s.log("elasticd.log")[-4000:])
        live = ours(s.servers())
        per_node = {}
        for x in live:
            per_node.setdefault(x["metadata"]["elasticd_node"], []).append(x["id"])
        dups = {k: v for k, v in per_node.items() if len(v) > 1}
        t.ok(len(live) == 4 and not dups, "exactly one instance per node, no duplicate (%d live)" %
             len(live), str(per_node))

        rc = s.stop_daemon()
        t.ok(rc == 0, "elasticd stops cleanly", s.log("elasticd.log")[-2000:])
    except Exception:
        t.crashed("lifecycle")
    finally:
        s.stop()
    t.ok(not s.c.our_netns() and not os.path.exists(s.base), "nothing left behind",
         " ".join(s.c.our_netns()))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
