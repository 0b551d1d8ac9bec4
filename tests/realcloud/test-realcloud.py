#!/usr/bin/env python3
"""Suite realcloud: a real OpenStack Zed (tests/realcloud/controlplane.py) in a
fresh state dir, then elasticd's cloud client (tests/cloud/test-cloud-real)
against it with password and with application-credential auth. After each
run Nova is asked for every server in every project: none may be left.

Needs root and the Debian packages (tests/realcloud/install.sh, run by
scripts/setup --real-cloud); skips only when not root."""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "harness"))
import controlplane  # noqa: E402
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


def main():
    if os.geteuid() != 0:
        skip_all("needs root (MariaDB, RabbitMQ and the OpenStack services run as root)")
    t = Tap()
    state = os.environ.get("ELASTICD_REALCLOUD_STATE", "/tmp/elasticd-realcloud-%d" % os.getpid())
    cp = controlplane.ControlPlane(state)
    controlplane.install_signal_stop(cp)
    try:
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
    except Exception:  # noqa: BLE001
        t.crashed("realcloud")
    finally:
        start = time.monotonic()
        cp.stop()
        t.diag("control plane stopped in %.1f s" % (time.monotonic() - start))
        if t.failed == 0 and not os.environ.get("ELASTICD_REALCLOUD_KEEP"):
            import shutil
            shutil.rmtree(state, ignore_errors=True)
        else:
            t.diag("state and logs kept in " + state)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
