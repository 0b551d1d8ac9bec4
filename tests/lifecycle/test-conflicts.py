#!/usr/bin/env python3
"""Operations that collide, end to end: the same resume twice and a resize
while the builds hang -> one instance per node; a suspend while a resume's
build hangs -> no instance left; a slow delete -> the suspend waits and
completes when released; an orphan with this cluster's metadata -> deleted
by the reconcile; an instance without it -> never touched.  The emulator's
server list is the ground truth: no duplicate, no leak."""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stack import HarnessError, NETWORK_ID, Stack, elapsed, ours, preflight  # noqa: E402
from tap import Tap  # noqa: E402

# Creates a server through the Nova API (the controller namespace's loopback).
NOVA_CREATE = r"""
import json, sys, urllib.request as u
port, body = sys.argv[1], sys.argv[2]
base = "http://127.0.0.1:%s" % port
auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": "demo", "domain": {"name": "Default"}, "password": "demo"}}},
    "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}}
r = u.urlopen(u.Request(base + "/v3/auth/tokens", data=json.dumps(auth).encode(), method="POST",
                        headers={"Content-Type": "application/json"}), timeout=30)
tok = r.headers["X-Subject-Token"]
try:
    r = u.urlopen(u.Request(base + "/compute/v2.1/servers", data=body.encode(), method="POST",
                            headers={"Content-Type": "application/json", "X-Auth-Token": tok,
                                     "OpenStack-API-Version": "compute 2.52"}), timeout=30)
except u.HTTPError as e:
    sys.exit("%s: %s" % (e, e.read().decode(errors="replace")))
print(json.loads(r.read())["server"]["id"])
"""


def main():
    preflight()
    t = Tap()
    s = Stack(nodes=4, suspend_time=300, resume_timeout=150, build_delay=1.0,
              reconcile=5, orphan_grace=5)
    try:
        s.start()
        t.diag("stack up: base %s, emulator port %d" % (s.base, s.port))

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

        def per_node():
            out = {}
            for x in ours(s.servers()):
                out.setdefault(x["metadata"]["elasticd_node"], []).append(x["id"])
            return out

        def op(n):
            return s.nodes().get(n) or {}

        # --- 1. the same resume twice, and a resize, while the builds hang -----
        s.emu_config(build_hang_regex="^cl[12]$")
        s.c.run("scontrol", "update", "nodename=cl[1-2]", "state=power_up", check=True)
        wait(lambda: set(per_node()) >= {"cl1", "cl2"}, 30, "the creates")
        rc1, out1, _ = s.ctl("resume", "cl1")
        rc2, out2, _ = s.ctl("resume", "cl[1-2]")
        t.ok(rc1 == 0 and rc2 == 0 and out1.get("operations_created") == 0 and
             out2.get("operations_created") == 0,
             "resume cl1 / cl[1-2] again while building: no new operation", "%s %s" % (out1, out2))
        rc, out, err = s.ctl("resize", "--min", "2")
        t.ok(rc == 0, "resize --min 2 while cl[1-2] are resuming", "%s %s" % (out, err))
        time.sleep(4)
        t.ok(all(len(v) == 1 for v in per_node().values()) and len(per_node()) == 2,
             "still one instance per node while building: %s" % per_node())
        t0 = time.monotonic()
        s.emu_config(build_hang_regex=None)
        t.ok(wait(lambda: usable("cl1") and usable("cl2"), 60, "cl[1-2] up"),
             "cl[1-2] come up once the builds are released (%s)" % elapsed(t0),
             s.log("elasticd.log")[-3000:])
        pn = per_node()
        first_cl1 = pn.get("cl1")
        t.ok(sorted(pn) == ["cl1", "cl2"] and all(len(v) == 1 for v in pn.values()),
             "exactly one instance for cl1 and cl2: %s" % pn)

        # --- 2. suspend while a resume's build hangs --------------------------
        s.emu_config(build_hang_regex="^cl3$")
        s.c.run("scontrol", "update", "nodename=cl3", "state=power_up", check=True)
        wait(lambda: "cl3" in per_node(), 30, "cl3's create")
        t.ok("cl3" in per_node(), "cl3's instance is building (held)")
        t1 = time.monotonic()
        rc, out, err = s.ctl("suspend", "cl3")
        t.ok(rc == 0 and out.get("superseded") == 1, "suspend cl3 supersedes its resume",
             "%s %s" % (out, err))
        time.sleep(2)
        s.emu_config(build_hang_regex=None)
        t.ok(wait(lambda: "cl3" not in per_node() and op("cl3").get("operation_state") == "done", 60,
                  "cl3's instance gone"),
             "no instance left for cl3, its suspend is done (%s): %s" % (elapsed(t1), op("cl3")),
             s.log("elasticd.log")[-3000:])
        time.sleep(8)  # a late create or adoption would show up here
        t.ok("cl3" not in per_node(), "and none comes back: %s" % per_node())
        # Slurm still believes cl3 is powering up: take it down there too.
        s.c.run("scontrol", "update", "nodename=cl3", "state=power_down_force")
        t.ok(wait(lambda: "POWERED_DOWN" in s.state("cl3"), 60, "cl3 powered down in Slurm"),
             "cl3 powered down in Slurm: %s" % s.state("cl3"))

        # --- 3. a slow delete during suspend ----------------------------------
        s.emu_config(delete_hang_regex="^cl2$")
        rc, out, err = s.ctl("resize", "--min", "1")
        t.ok(wait(lambda: op("cl2").get("operation") == "suspend" and
                  op("cl2").get("step") in ("deleting", "confirming"), 30, "cl2's suspend to delete"),
             "resize --min 1: cl2's suspend is deleting (%s)" % op("cl2").get("step"), str(op("cl2")))
        time.sleep(6)
        t.ok("cl2" in per_node() and op("cl2").get("operation_state") == "running",
             "while the delete hangs the instance stays and the op waits: %s" % op("cl2").get("step"))
        t2 = time.monotonic()
        s.emu_config(delete_hang_regex=None)
        t.ok(wait(lambda: "cl2" not in per_node() and op("cl2").get("operation_state") == "done", 60,
                  "cl2's suspend to finish"),
             "released: the delete completes and the suspend is done (%s)" % elapsed(t2), str(op("cl2")))
        t.ok(wait(lambda: "POWERED_DOWN" in s.state("cl2"), 60, "cl2 powered down"),
             "cl2 powered down in Slurm: %s" % s.state("cl2"))

        # --- 4. an orphan, and a foreign instance -----------------------------
        tmpl = [x for x in ours(s.servers()) if x["metadata"]["elasticd_node"] == "cl1"][0]
        meta = dict(tmpl["metadata"])
        meta["elasticd_node"] = "cl4"
        meta.pop("elasticd_op", None)
        body = {"server": {"name": "cl4", "flavorRef": tmpl["flavor"], "imageRef": tmpl["image"],
                           "networks": [{"uuid": NETWORK_ID}],
                           "metadata": meta, "tags": tmpl.get("tags") or []}}

        def create(b):
            p = s.c.run(sys.executable, "-c", NOVA_CREATE, str(s.port), json.dumps(b), timeout=60)
            if p.returncode != 0:
                raise HarnessError("nova create: " + p.stderr[-800:])
            return p.stdout.strip()
        orphan = create(body)
        foreign_body = json.loads(json.dumps(body))
        foreign_body["server"]["name"] = "someone-else"
        foreign_body["server"]["metadata"] = {"owner": "not-elasticd"}
        foreign_body["server"]["tags"] = []
        foreign = create(foreign_body)
        t.diag("orphan %s (tags %s), foreign %s" % (orphan, body["server"]["tags"], foreign))
        t3 = time.monotonic()

        def ids():
            return {x["id"] for x in s.servers()}
        t.ok(wait(lambda: orphan not in ids(), 60, "the orphan deleted"),
             "the orphan with this cluster's metadata is deleted by the reconcile (%s)" % elapsed(t3),
             s.log("elasticd.log")[-3000:])
        time.sleep(12)  # two more reconciles
        t.ok(foreign in ids(), "the instance without the cluster's metadata is never touched")
        rc, out, _ = s.ctl("status")
        t.diag("status: %s" % json.dumps(out)[:600])

        # --- no duplicate, no leak ------------------------------------------
        pn = per_node()
        t.ok(pn == {"cl1": pn.get("cl1")} and len(pn["cl1"]) == 1,
             "in the end only cl1 has an instance, exactly one: %s" % pn)
        t.ok(usable("cl1"), "cl1 still up: %s" % s.state("cl1"))
        t.ok(pn.get("cl1") == first_cl1, "cl1 kept its first instance (%s, first %s)" % (pn.get("cl1"), first_cl1),
             "\n".join(x for x in s.log("elasticd.log").splitlines() if "cl1" in x)[-4000:])
        rc = s.stop_daemon()
        t.ok(rc == 0, "elasticd stops cleanly", s.log("elasticd.log")[-2000:])
    except Exception:
        t.crashed("conflicts")
    finally:
        s.stop()
    t.ok(not s.c.our_netns() and not os.path.exists(s.base), "nothing left behind")
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
