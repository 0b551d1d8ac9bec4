#!/usr/bin/env python3
"""Reloads an admin would do while nodes come and go, end to end (real
slurmctld, the emulator, the real elasticd):

1. a reload that changes `cluster:` is refused whole, naming the key; the
   daemon keeps its cluster and a resume still succeeds (was: accepted, then
   every resume failed with "Invalid argument");
2. a reload that changes limits.api_rate is applied: two resumes at once
   reach the cloud at most one call per 2 s (was: silently ignored);
3. a reload that removes a group while one of its resumes waits on a flavor
   lookup (emulator latency on the flavor GET) leaves the daemon running and
   answering (was: SIGSEGV in on_flavor_resolved);
4. the flavor, image and network ids a resume resolved are journalled: after
   a restart, a resume looks none of them up again (was: each one, per
   restart); a reload naming another image then looks that one up and the
   instance gets it, not the old id."""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stack import HarnessError, Stack, elapsed, ours, preflight  # noqa: E402
from tap import Tap  # noqa: E402
import nsutil  # noqa: E402


def main():
    preflight()
    t = Tap()
    s = Stack(nodes=4, suspend_time=300, resume_timeout=150, build_delay=1.0)
    try:
        s.start()
        t.diag("stack up: base %s, emulator port %d" % (s.base, s.port))
        with open(s.conf) as f:
            conf0 = f.read()
        cluster = re.search(r"^cluster: (\S+)$", conf0, re.M).group(1)

        def usable(n):
            st = s.state(n)
            return "IDLE" in st and "POWER" not in st and "NOT_RESPONDING" not in st \
                and "DOWN" not in st and "DRAIN" not in st

        def wait(cond, timeout, what):
            try:
                s.wait_for(cond, timeout, what)
            except HarnessError:
                pass
            return cond()

        def reload_with(text):
            nsutil.write_file(s.conf, text, 0o600)
            return s.ctl("reload")

        def alive():
            rc, out, _ = s.ctl("status")
            return s.daemon.poll() is None and rc == 0 and isinstance(out, dict)

        def elog():
            return s.log("elasticd.log")

        # --- 1. a new cluster name: refused, the old one stays -----------------
        rc, out, err = reload_with(conf0.replace("cluster: %s\n" % cluster, "cluster: renamed\n"))
        t.ok(rc != 0 and "cluster (%s -> renamed)" % cluster in err and "restart" in err,
             "reload changing cluster is refused, naming the key", "rc %s: %s %s" % (rc, out, err))
        t.ok("refused" in elog() and "cluster (%s -> renamed)" % cluster in elog(),
             "the log says what was refused and why", elog()[-2000:])
        nsutil.write_file(s.conf, conf0, 0o600)
        t0 = time.monotonic()
        s.c.run("scontrol", "update", "nodename=cl1", "state=power_up", check=True)
        t.ok(wait(lambda: usable("cl1"), 120, "cl1 up"),
             "a resume after the refused reload succeeds (%s)" % elapsed(t0), elog()[-3000:])
        mine = [x for x in ours(s.servers()) if x["metadata"]["elasticd_node"] == "cl1"]
        t.ok(len(mine) == 1 and mine[0]["metadata"].get("elasticd_cluster") == cluster,
             "its instance carries the running cluster's name", str(mine))

        # --- 2. api_rate: applied at once ---------------------------------------
        slow = conf0.replace("limits:\n", "limits:\n  api_rate: 0.5\n  api_burst: 1\n", 1)
        rc, out, err = reload_with(slow)
        t.ok(rc == 0 and out.get("changed") == "limits.api_rate (20 -> 0.5), limits.api_burst (40 -> 1)" and
             "changed: limits.api_rate (20 -> 0.5), limits.api_burst (40 -> 1)" in elog(),
             "reload changing api_rate is applied and logged", "%s %s %s" % (out, err, elog()[-1500:]))
        since = max([e["seq"] for e in s.emu("GET", "requests")["requests"]] or [0])
        t1 = time.monotonic()
        s.c.run("scontrol", "update", "nodename=cl[2-3]", "state=power_up", check=True)
        up = wait(lambda: usable("cl2") and usable("cl3"), 140, "cl[2-3] up")
        reqs = [e for e in s.emu("GET", "requests?since=%d" % since)["requests"]
                if not e["path"].startswith("/_emulator")]
        starts = sorted(e["time"] for e in reqs)
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        t.ok(up, "cl[2-3] come up at 0.5 calls/s (%s, %d calls)" % (elapsed(t1), len(reqs)), elog()[-3000:])
        t.ok(len(reqs) >= 3 and min(gaps) >= 1.5,
             "no two cloud calls closer than 1.5 s: min gap %.2f s over %d calls"
             % (min(gaps) if gaps else -1, len(reqs)),
             " ".join("%s %s" % (e["method"], e["path"]) for e in reqs))
        rc, out, err = reload_with(conf0)
        t.ok(rc == 0 and "limits.api_rate (0.5 -> 20)" in elog(), "and back to 20/s", "%s %s" % (out, err))

        # --- 3. a group removed while its resume waits on a flavor lookup -------
        # Flavor "1" (small's id) is not cached yet: its GET is held 8 s.
        s.emu_config(latency_by_path={"^GET .*/flavors": 8.0})
        by_id = conf0.replace("    flavor: small\n", "    flavor: \"1\"\n", 1)
        rc, out, err = reload_with(by_id)
        t.ok(rc == 0, "reload: the group's flavor by id", "%s %s" % (out, err))
        since = max([e["seq"] for e in s.emu("GET", "requests")["requests"]] or [0])
        s.c.run("scontrol", "update", "nodename=cl4", "state=power_up", check=True)
        t.ok(wait(lambda: (s.nodes().get("cl4") or {}).get("operation") == "resume", 30, "cl4's resume"),
             "cl4's resume started", str(s.nodes().get("cl4")))
        time.sleep(1.5)  # its flavor GET (the first call) is held 8 s
        gone = re.sub(r"  - name: cloud\n    nodes: \"[^\"]*\"\n", "  - name: spare\n    nodes: \"sp[1-2]\"\n",
                      by_id, count=1)
        t_reload = time.time()
        rc, out, err = reload_with(gone)
        t.ok(rc == 0 and "groups.cloud (removed)" in elog(),
             "reload removing the group while the lookup waits is accepted", "%s %s" % (out, err))
        time.sleep(10)  # the flavor answer arrives for an operation whose group is gone
        flavor_gets = [e for e in s.emu("GET", "requests?since=%d" % since)["requests"] if "/flavors" in e["path"]]
        t.ok(any(e["time"] < t_reload < e["time"] + e["duration"] for e in flavor_gets),
             "the reload came while cl4's flavor GET was held", "reload at %.2f: %s" % (t_reload, flavor_gets))
        t.ok(alive(), "the daemon keeps running and answering after the flavor answer",
             "exit %s: %s" % (s.daemon.poll(), elog()[-3000:]))
        s.emu_config(latency_by_path={})
        rc, out, err = reload_with(conf0)
        t.ok(rc == 0 and alive(), "the group back: reload accepted, the daemon answers", "%s %s" % (out, err))
        # The resume kept the group it started with: it carried on.
        t.ok(wait(lambda: usable("cl4"), 120, "cl4 up"), "cl4's resume finished with its own group: %s"
             % s.nodes().get("cl4"), elog()[-3000:])

        # --- 4. resolved ids journalled: a restart does not look them up -------
        look = [r for r in s.journal() if r.get("kind") == "lookup"]
        named = {(r["what"], r["name"]) for r in look if r.get("id")}
        t.ok({("flavor", "small"), ("image", "tiny"), ("network", "private")} <= named,
             "the group's flavor, image and network ids are journalled", str(look))
        s.c.run("scontrol", "update", "nodename=cl[1-2]", "state=power_down_force", check=True)
        wait(lambda: not [x for x in ours(s.servers()) if x["metadata"]["elasticd_node"] in ("cl1", "cl2")]
             and all("POWERED_DOWN" in s.state(n) for n in ("cl1", "cl2")), 120, "cl[1-2] powered down")
        s.stop_daemon()
        s.start_daemon()
        seeded = re.findall(r"(\d+) resolved flavor, image and network ids? taken from the journal \(0 ", elog())
        t.ok(seeded and int(seeded[-1]) >= 3, "the restarted daemon takes the ids from the journal: %s" % seeded,
             elog()[-2000:])
        since = max([e["seq"] for e in s.emu("GET", "requests")["requests"]] or [0])

        def lookups():
            reqs = s.emu("GET", "requests?since=%d" % since)["requests"]
            return {k: sum(1 for e in reqs if e["method"] == "GET" and "/" + k in e["path"].split("?")[0])
                    for k in ("flavors", "images", "networks")}

        t2 = time.monotonic()
        s.c.run("scontrol", "update", "nodename=cl1", "state=power_up", check=True)
        t.ok(wait(lambda: usable("cl1"), 120, "cl1 up"), "cl1 resumes after the restart (%s)" % elapsed(t2),
             elog()[-3000:])
        got = lookups()
        t.ok(got == {"flavors": 0, "images": 0, "networks": 0},
             "no flavor, image or network lookup after the restart: %s" % got)
        # Another image by name: looked up, and used; the old id is not.
        rc, out, err = reload_with(conf0.replace("    image: tiny\n", "    image: tiny-v2\n", 1))
        t.ok(rc == 0, "reload: the group's image is tiny-v2", "%s %s" % (out, err))
        s.c.run("scontrol", "update", "nodename=cl2", "state=power_up", check=True)
        t.ok(wait(lambda: usable("cl2"), 120, "cl2 up"), "cl2 resumes with the new image", elog()[-3000:])
        got = lookups()
        mine = [x for x in ours(s.servers()) if x["metadata"]["elasticd_node"] == "cl2"]
        t.ok(got["images"] >= 1 and got["flavors"] == 0 and got["networks"] == 0 and len(mine) == 1 and
             mine[0].get("image") == "7c1f2f0e-3a4b-4d2c-9e8f-5a6b7c8d9e0f",
             "the new image is looked up (%s) and the instance has it" % got,
             str([(x.get("image"), x.get("status")) for x in mine]))
    except HarnessError as e:
        t.ok(False, "harness: %s" % e)
    finally:
        s.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
