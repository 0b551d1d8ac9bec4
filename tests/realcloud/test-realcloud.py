#!/usr/bin/env python3
"""Suite realcloud: a real OpenStack Zed (tests/realcloud/controlplane.py) in a
fresh state dir, then elasticd's cloud client (tests/cloud/test-cloud-real)
against it with password and with application-credential auth, then the
whole product with this cloud in place of the emulator (rcstack.py: a real
slurmctld, each node's slurmd in its own netns at the address the test gave
its name, which the fake driver makes Nova show): resume of 5 nodes through
Slurm, reboot, rebuild, an orphan deleted by the reconcile and an untagged
server spared, suspend, a build forced to ERROR, a NoValidHost flavor, kill -9
of elasticd mid-resume, Keystone stopped for 30 s mid-resume. After each step
Nova is asked for every server in every project: exactly the expected ones
(none at the end).

Needs root and the Debian packages (tests/realcloud/install.sh, run by
scripts/setup --real-cloud); skips only when not root."""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "harness"))
import controlplane  # noqa: E402
import rcstack  # noqa: E402
from slurmcluster import HarnessError  # noqa: E402
from tap import Tap, skip_all  # noqa: E402

BUILD = os.environ.get("ELASTICD_BUILD_ROOT", os.path.join(os.path.dirname(os.path.dirname(HERE)), "build"))
CLIENT = os.environ.get("ELASTICD_TEST_CLOUD_REAL") or os.path.join(BUILD, "tests", "cloud", "test-cloud-real")


def client_suite(t, cp, cloud):
    env = dict(os.environ, ELASTICD_REAL_CLOUD=cloud, OS_CLIENT_CONFIG_FILE=cp.clouds_yaml)
    start = time.monotonic()
    p = subprocess.run([CLIENT], env=env, capture_output=True, text=True, timeout=300,
                       cwd=os.path.join(os.path.dirname(HERE), "cloud"))
    lines = p.stdout.splitlines()
    bad = [l for l in lines if l.startswith("not ok") or l.startswith("Bail out")]
    plan = [l for l in lines if l.startswith("1..")]
    good = p.returncode == 0 and not bad and plan and plan[0] != "1..0" and \
        "SKIP" not in plan[0]
    t.ok(good, "test-cloud-real with %s: %s in %.1f s" % (cloud, plan[0] if plan else "no plan",
                                                         time.monotonic() - start),
         "\n".join(lines[-40:] + p.stderr.splitlines()[-40:]))
    left = cp.servers()
    t.ok(not left, "after %s: no server left in Nova" % cloud,
         "\n".join("%s %s %s" % (s["id"], s["name"], s["status"]) for s in left))


NOVA = "http://127.0.0.1:8774/v2.1"
MICRO = {"OpenStack-API-Version": "compute 2.52"}


def ours(servers, prefix=("rcn", "rch")):
    return [x for x in servers if x["name"].startswith(prefix)]


def lifecycle(t, cp, st):
    c = st.c

    def wait(cond, timeout, what):
        # Asked once a second, not every 0.1 s: each ask lists Nova or runs
        # scontrol, and the control plane needs the 2 cores more.
        last = [0.0]

        def safe():
            if time.monotonic() - last[0] < 1.0:
                return False
            last[0] = time.monotonic()
            try:
                return cond()
            except (OSError, controlplane.ControlPlaneError):
                return False   # a slow or restarting API: ask again
        try:
            c.wait_for(safe, timeout, what)
            return True
        except HarnessError:
            return False

    def count(what, want):
        """Servers in Nova (every project) after a step: exactly WANT names."""
        srv = cp.servers()
        names = sorted(x["name"] for x in srv)
        t.ok(names == sorted(want), "Nova after %s: %d server%s%s" % (
            what, len(names), "" if len(names) == 1 else "s", (": " + ",".join(names)) if names else ""),
            "want %s, got %s" % (sorted(want), [(x["name"], x["status"]) for x in srv]))

    def elog():
        return c.log("elasticd.log")[-3000:]

    def actions(sid):
        _, _, doc = controlplane.http("GET", NOVA + "/servers/%s/os-instance-actions" % sid, token=cp.admin(),
                                      timeout=120)
        return [a["action"] for a in (doc or {}).get("instanceActions", [])]

    def sid_of(name):
        return [x["id"] for x in cp.servers() if x["name"] == name]

    five = ["rcn%d" % i for i in range(1, 6)]
    st.start_daemon(cp.clouds_yaml)

    # --- resume of 5 nodes through Slurm: a job on them -------------------------
    t0 = time.monotonic()
    jid = c.sbatch("-p", "cloud", "-N5", "-w", "rcn[1-5]", "-o", os.path.join(st.base, "job-%j.out"),
                   "--wrap", "srun hostname")
    wait(lambda: c.job_state(jid) in ("COMPLETED", "FAILED", "CANCELLED"), 150, "the job to end")
    out = ""
    try:
        with open(os.path.join(st.base, "job-%d.out" % jid)) as f:
            out = f.read()
    except OSError:
        pass
    t.ok(c.job_state(jid) == "COMPLETED" and sorted(out.split()) == five,
         "a job on 5 powered-down nodes runs on them (%s, %.0f s)" % (c.job_state(jid), time.monotonic() - t0),
         out + elog())
    # slurmd may register (cloud_reg_addrs) before elasticd's poll sees
    # ACTIVE: elasticd's own view says when its resumes ended.
    def addressed(names):
        n = st.nodes()
        return all(n.get(x, {}).get("address") == st.addresses[x] and
                   n.get(x, {}).get("operation_state") == "done" for x in names)

    def resumed(names):
        wait(lambda: addressed(names), 120, "elasticd's resumes to end")
        n = st.nodes()
        return addressed(names), str({x: (n.get(x, {}).get("address"), n.get(x, {}).get("operation_state"))
                                      for x in names})
    ok, view = resumed(five)
    t.ok(ok, "elasticd's resumes end with each node's address from Nova's view of its server", view)
    count("the resume", five)

    # --- reboot, and rebuild (reason reimage) -----------------------------------
    sid1, sid2 = sid_of("rcn1"), sid_of("rcn2")
    boots = {x: c.node_info(x).get("BootTime") for x in ("rcn1", "rcn2")}
    time.sleep(1.1)  # BootTime has a resolution of a second
    t1 = time.monotonic()
    c.run("scontrol", "reboot", "rcn1", check=True)
    c.run("scontrol", "reboot", "reason=reimage", "rcn2", check=True)
    ok = wait(lambda: "reboot" in actions(sid1[0]) and "rebuild" in actions(sid2[0]), 60,
              "Nova to get a reboot and a rebuild") if sid1 and sid2 else False
    t.ok(ok, "scontrol reboot -> Nova reboot of rcn1; reason=reimage -> Nova rebuild of rcn2",
         str((actions(sid1[0]) if sid1 else None, actions(sid2[0]) if sid2 else None)))
    def back(x):
        return st.usable(x) and c.node_info(x).get("BootTime") != boots[x]
    wait(lambda: back("rcn1") and back("rcn2"), 120, "rcn1 and rcn2 back")
    t.ok(back("rcn1") and back("rcn2"), "both come back IDLE with a new boot time (%.0f s): %s, %s" % (
        time.monotonic() - t1, st.state("rcn1"), st.state("rcn2")), elog())
    count("reboot and rebuild", five)

    # --- reconcile: an orphan with this cluster's tag and metadata, an untagged one
    tmpl = [x for x in cp.servers() if x["name"] == "rcn3"]
    tok, _ = controlplane.token("demo", "demo", "demo")

    def create(body):
        code, _, doc = controlplane.http("POST", NOVA + "/servers", body, token=tok, headers=MICRO, timeout=120)
        return doc["server"]["id"] if code == 202 else None
    orphan = foreign = None
    if tmpl:
        meta = dict(tmpl[0]["metadata"])
        meta["elasticd_node"] = "rcn6"
        meta.pop("elasticd_op", None)
        body = {"server": {"name": "rcn6", "flavorRef": "1", "imageRef": tmpl[0]["image"]["id"],
                           "networks": "none", "metadata": meta, "tags": tmpl[0].get("tags") or []}}
        orphan = create(body)
        foreign = create({"server": {"name": "someone-else", "flavorRef": "1",
                                     "imageRef": tmpl[0]["image"]["id"], "networks": "none",
                                     "metadata": {"owner": "not-elasticd"}}})
    t.diag("orphan %s (tags %s), untagged %s" % (orphan, tmpl[0].get("tags") if tmpl else None, foreign))
    t3 = time.monotonic()

    def ids():
        return {x["id"] for x in cp.servers()}
    t.ok(orphan and wait(lambda: orphan not in ids(), 60, "the orphan deleted"),
         "the reconcile deletes a server with the cluster's tag and metadata (%.0f s)" % (time.monotonic() - t3),
         elog())
    time.sleep(11)  # two more reconciles
    t.ok(foreign and foreign in ids(), "and spares one without them")
    count("the reconcile", five + ["someone-else"])
    if foreign:
        controlplane.http("DELETE", NOVA + "/servers/" + foreign, token=tok, timeout=120)
        wait(lambda: foreign not in ids(), 30, "the untagged server deleted")

    # --- suspend --------------------------------------------------------------------
    c.run("scontrol", "update", "nodename=rcn[1-5]", "state=power_down", check=True)
    t.ok(wait(lambda: not ours(cp.servers()), 60, "the servers deleted"),
         "power_down of the 5 nodes deletes their servers", elog())
    wait(lambda: all("POWERED_DOWN" in st.state(x) for x in five), 30, "the nodes powered down")
    count("the suspend", [])

    # --- a build forced to ERROR, a NoValidHost flavor -----------------------------
    st.knobs(fail_regex="^rcn7$")
    c.run("scontrol", "update", "nodename=rcn7,rch1", "state=power_up", check=True)

    def failed(node):
        # DOWN as the base state: "DOWN" is also in POWERING_DOWN / POWERED_DOWN.
        return "DOWN" in st.state(node).split("+") and "elasticd" in st.reason(node)
    wait(lambda: failed("rcn7") and failed("rch1") and not ours(cp.servers()), 90,
         "rcn7 and rch1 to fail")
    note7, noteh = (st.nodes().get(x, {}).get("note") or "" for x in ("rcn7", "rch1"))
    t.ok(failed("rcn7") and "RealcloudFakeDriver" in note7 + st.reason("rcn7"),
         "a build forced to ERROR: rcn7 DOWN with the fault: %s" % st.reason("rcn7"), note7 + elog())
    t.ok(failed("rch1") and "No valid host" in noteh + st.reason("rch1"),
         "the NoValidHost flavor: rch1 DOWN with the fault: %s" % st.reason("rch1"), noteh + elog())
    count("the ERROR build and NoValidHost", [])
    st.knobs(fail_regex="^rc-fail")

    # --- kill -9 of elasticd mid-resume -------------------------------------------------
    three = ["rcn1", "rcn2", "rcn3"]
    st.knobs(spawn_delay=5)
    c.run("scontrol", "update", "nodename=rcn[1-3]", "state=power_up", check=True)
    wait(lambda: len(ours(cp.servers())) >= 2, 60, "creates to start")
    st.kill_daemon()
    t.diag("killed elasticd with %d servers in Nova" % len(ours(cp.servers())))
    st.knobs(spawn_delay=0)
    st.restart_daemon()
    t4 = time.monotonic()
    t.ok(wait(lambda: all(st.usable(x) for x in three), 150, "rcn[1-3] up"),
         "after kill -9 mid-resume and a restart the 3 nodes come up (%.0f s): %s" % (
             time.monotonic() - t4, ", ".join(st.state(x) for x in three)), elog())
    ok, view = resumed(three)
    t.ok(ok, "... and elasticd's resumes, taken over from the journal, end with their addresses", view)
    count("kill -9 mid-resume", three)
    c.run("scontrol", "update", "nodename=rcn[1-3]", "state=power_down", check=True)
    wait(lambda: not ours(cp.servers()), 60, "the servers deleted")
    count("their suspend", [])

    # --- Keystone stopped for 30 s mid-resume -------------------------------------------
    two = ["rcn4", "rcn5"]
    wait(lambda: all("POWERED_DOWN" in st.state(x) and "POWERING" not in st.state(x) for x in two), 30,
         "rcn4, rcn5 powered down")
    c.run("scontrol", "update", "nodename=rcn[4-5]", "state=power_up", check=True)
    cp.stop_service("keystone", grace=2.0)
    t5 = time.monotonic()
    time.sleep(30)
    cp.start_keystone()
    t.diag("Keystone was down %.0f s" % (time.monotonic() - t5))
    t.ok(wait(lambda: all(st.usable(x) for x in two), 150, "rcn4, rcn5 up"),
         "Keystone stopped 30 s mid-resume: both nodes come up (%.0f s): %s" % (
             time.monotonic() - t5, ", ".join(st.state(x) for x in two)), elog())
    ok, view = resumed(two)
    t.ok(ok, "... and elasticd's resumes end with their addresses", view + elog())
    count("the Keystone outage", two)
    c.run("scontrol", "update", "nodename=rcn[4-5]", "state=power_down", check=True)
    wait(lambda: not cp.servers(), 60, "the servers deleted")
    count("the end", [])


def main():
    if os.geteuid() != 0:
        skip_all("needs root (MariaDB, RabbitMQ and the OpenStack services run as root)")
    t = Tap()
    state = os.environ.get("ELASTICD_REALCLOUD_STATE", "/tmp/elasticd-realcloud-%d" % os.getpid())
    st = rcstack.RealStack()
    cp = None
    try:
        # the cluster first: the control plane then starts in its controller netns
        st.enter()
        cp = controlplane.ControlPlane(state, fake_env=st.fake_env())
        controlplane.install_signal_stop(cp)
        try:
            cp.start()
            ok = True
        except controlplane.ControlPlaneError as e:
            ok = False
            t.ok(False, "control plane comes up", str(e))
        if ok:
            t.ok(True, "control plane comes up in %.0f s (%s)" % (
                cp.timings[-1][1], ", ".join("%s %.0f" % w for w in cp.timings)))
            client_suite(t, cp, "realcloud-demo")
            client_suite(t, cp, "realcloud-appcred")
            start = time.monotonic()
            lifecycle(t, cp, st)
            t.diag("lifecycle part: %.0f s" % (time.monotonic() - start))
    except Exception:  # noqa: BLE001
        t.crashed("realcloud")
    finally:
        start = time.monotonic()
        if cp:
            cp.stop()
        t.diag("control plane stopped in %.1f s" % (time.monotonic() - start))
        st.stop()
        if t.failed == 0 and not os.environ.get("ELASTICD_REALCLOUD_KEEP"):
            import shutil
            shutil.rmtree(state, ignore_errors=True)
        else:
            t.diag("state and logs kept in " + state)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
