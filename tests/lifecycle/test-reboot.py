#!/usr/bin/env python3
"""Reboots end to end, with elasticd under valgrind: scontrol reboot with a
reimage word -> a Nova rebuild; a plain scontrol reboot -> a Nova reboot;
the node comes back IDLE and runs srun; a reboot of a powered-down node
creates nothing; after the group's image changes a plain reboot rebuilds.
At SIGTERM valgrind must report no error and no definite leak."""
import os
import re
import shutil
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stack import HarnessError, Stack, elapsed, ours, preflight  # noqa: E402
from tap import Tap  # noqa: E402


def main():
    preflight()
    vg = shutil.which("valgrind")
    vglog = "/tmp/elasticd-reboot-vg-%d.log" % os.getpid()
    wrapper = ["valgrind", "--leak-check=full", "--error-exitcode=99",
               "--errors-for-leak-kinds=definite", "--log-file=" + vglog] if vg else None
    t = Tap()
    s = Stack(nodes=3, suspend_time=300, resume_timeout=120, build_delay=1.0, wrapper=wrapper)
    try:
        s.start()
        t.diag("stack up: base %s, emulator port %d, valgrind %s" % (s.base, s.port, bool(vg)))

        def usable(n):
            st = s.state(n)
            return "IDLE" in st and "POWER" not in st and "NOT_RESPONDING" not in st \
                and "REBOOT" not in st and "DOWN" not in st and "DRAIN" not in st

        def wait(cond, timeout, what):
            try:
                s.wait_for(cond, timeout, what)
            except HarnessError:
                pass
            return cond()

        def actions(server_id, since):
            reqs = s.emu("GET", "requests?since=%d&method=POST&path=%s/action" %
                         (since, server_id))["requests"]
            return [r for r in reqs if isinstance(r.get("body"), dict)]

        def seq():
            r = s.emu("GET", "requests")["requests"]
            return r[-1]["seq"] if r else 0

        def srun_ok(n):
            p = s.c.run("srun", "-w", n, "-t", "1", "hostname", timeout=60)
            return p.returncode == 0 and p.stdout.strip() == n, p.stdout + p.stderr

        # --- power cl1 up ----------------------------------------------------
        t0 = time.monotonic()
        s.c.run("scontrol", "update", "nodename=cl1", "state=power_up", check=True)
        t.ok(wait(lambda: usable("cl1"), 90, "cl1 idle"),
             "cl1 powers up and is IDLE (%s)" % elapsed(t0), s.log("elasticd.log")[-3000:])
        srv = [x for x in ours(s.servers()) if x["metadata"]["elasticd_node"] == "cl1"]
        sid = srv[0]["id"] if srv else "none"
        img0 = str(srv[0].get("image")) if srv else ""

        # --- reboot with the reimage word -> rebuild ---------------------------
        since = seq()
        t1 = time.monotonic()
        s.c.run("scontrol", "reboot", "ASAP", "reason=reimage", "cl1", check=True)
        t.ok(wait(lambda: any("rebuild" in a["body"] for a in actions(sid, since)), 60,
                  "a rebuild of cl1's instance"),
             "reboot reason=reimage -> POST action rebuild for cl1's instance",
             str(actions(sid, since)) + s.log("elasticd.log")[-3000:])
        t.ok(not any("reboot" in a["body"] for a in actions(sid, since)), "and no reboot action")
        time.sleep(2)
        t.ok(wait(lambda: usable("cl1"), 120, "cl1 idle after the rebuild"),
             "cl1 comes back IDLE after the rebuild (%s): %s" % (elapsed(t1), s.state("cl1")),
             s.log()[-3000:] + s.log("elasticd.log")[-3000:])
        ok, out = srun_ok("cl1")
        t.ok(ok, "srun hostname on cl1 after the rebuild works", out)
        t.ok(len(ours(s.servers())) == 1, "still exactly one instance")

        # --- plain reboot -> reboot ------------------------------------------
        since = seq()
        t2 = time.monotonic()
        s.c.run("scontrol", "reboot", "cl1", check=True)
        t.ok(wait(lambda: any("reboot" in a["body"] for a in actions(sid, since)), 60,
                  "a reboot of cl1's instance"),
             "plain scontrol reboot -> POST action reboot", str(actions(sid, since)))
        t.ok(not any("rebuild" in a["body"] for a in actions(sid, since)), "and no rebuild action")
        time.sleep(2)
        t.ok(wait(lambda: usable("cl1"), 120, "cl1 idle after the reboot"),
             "cl1 comes back IDLE after the reboot (%s): %s" % (elapsed(t2), s.state("cl1")),
             s.log()[-3000:])
        ok, out = srun_ok("cl1")
        t.ok(ok, "srun hostname on cl1 after the reboot works", out)

        # --- reboot of a powered-down node ----------------------------------
        n0 = len(s.servers(live=False))
        rc, out, err = s.ctl("reboot", "cl3", timeout=60)
        t.ok(rc == 0, "elasticctl reboot cl3 (powered down) is accepted", "%s %s %s" % (rc, out, err))

        def note():
            return (s.nodes().get("cl3") or {})
        wait(lambda: "no instance" in str(note()), 30, "cl3's op to finish")
        t.ok("no instance to reboot" in str(note()) or
             "no instance to reboot" in s.log("elasticd.log"),
             "the op finishes 'no instance to reboot'", str(note()))
        t.ok(len(s.servers(live=False)) == n0, "nothing created for cl3")
        s.c.run("scontrol", "reboot", "cl2", check=False)
        time.sleep(5)
        t.ok(len(s.servers(live=False)) == n0 and "POWERED_DOWN" in s.state("cl2"),
             "scontrol reboot of powered-down cl2 creates nothing (%s)" % s.state("cl2"))

        # --- image changed -> a plain reboot rebuilds --------------------------
        with open(s.conf) as f:
            conf = f.read()
        with open(s.conf, "w") as f:
            f.write(re.sub(r"image: tiny\n", "image: tiny-v2\n", conf))
        rc, out, err = s.ctl("reload")
        t.ok(rc == 0, "elasticctl reload after the image change", "%s %s" % (out, err))
        since = seq()
        t3 = time.monotonic()
        s.c.run("scontrol", "reboot", "cl1", check=True)
        t.ok(wait(lambda: any("rebuild" in a["body"] for a in actions(sid, since)), 60,
                  "a rebuild after the image change"),
             "group image changed -> a plain reboot rebuilds", str(actions(sid, since)) +
             s.log("elasticd.log")[-3000:])
        time.sleep(2)
        t.ok(wait(lambda: usable("cl1"), 120, "cl1 idle after the image rebuild"),
             "cl1 comes back IDLE on tiny-v2 (%s)" % elapsed(t3))
        img = [x.get("image") for x in ours(s.servers())]
        t.ok(len(img) == 1 and str(img[0]) != img0, "instance image changed: %s -> %s" % (img0, img))

        # --- valgrind at SIGTERM --------------------------------------------
        rc = s.stop_daemon()
        t.ok(rc == 0, "elasticd stops cleanly under valgrind (rc %s)" % rc,
             open(vglog).read()[-4000:] if os.path.exists(vglog) else "")
        if vg:
            log = open(vglog).read()
            m = re.search(r"ERROR SUMMARY: (\d+) errors", log)
            d = re.search(r"definitely lost: ([\d,]+) bytes", log)
            t.ok(m and m.group(1) == "0", "valgrind: %s errors" % (m.group(1) if m else "?"),
                 log[-6000:])
            t.ok(d is None or d.group(1) == "0", "valgrind: definitely lost %s bytes" %
                 (d.group(1) if d else "0"), log[-6000:])
    except Exception:
        t.crashed("reboot")
    finally:
        s.stop()
        if os.path.exists(vglog):
            os.unlink(vglog)
    t.ok(not s.c.our_netns() and not os.path.exists(s.base), "nothing left behind")
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
