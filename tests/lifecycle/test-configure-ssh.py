#!/usr/bin/env python3
"""Configuring new nodes over SSH, end to end: the emulator boots each server
as an instance running only sshd, which prints its host keys to the
console in cloud-init's format; elasticd reads them from Nova's console
output, logs in with its key, copies a file and runs the group's commands,
the last of which starts slurmd, which registers; a reimage (rebuild, new
host keys) configures it again. A node whose command
fails is marked DOWN with the command's status and stderr and its instance
is deleted."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stack import HarnessError, Stack, elapsed, ours, preflight  # noqa: E402
from tap import Tap  # noqa: E402

SSH = """\
    ssh:
      private_key: {keydir}/node_key
      connect_timeout: 2s
      console_poll: 1s
      files:
        - {{src: {keydir}/payload, dest: {base}/pushed/payload, mode: "0440", owner: root, group: nogroup}}
      commands:
        - 'test "$(hostname)" != {refuser} || {{ echo "$(hostname) refuses to start" >&2; exit 3; }}'
        - 'hostname >> {base}/pushed/ran'
        - 'SLURM_CONF={slurm_conf} slurmd -N "$(hostname)" -f {slurm_conf}'
"""


def main():
    preflight("/usr/sbin/sshd", "/usr/bin/ssh-keygen", "/usr/bin/scp")
    t = Tap()
    keydir = tempfile.mkdtemp(prefix="push-e2e-%d-" % os.getpid())
    s = Stack(nodes=2, suspend_time=300, resume_timeout=90, build_delay=0.3, service="sshd")
    try:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "elasticd",
                        "-f", os.path.join(keydir, "node_key")], check=True, stdin=subprocess.DEVNULL)
        with open(os.path.join(keydir, "payload"), "w") as f:
            f.write("pushed by elasticd\n")
        refuser = "%s2" % s.group.prefix
        s.group_extra = SSH.format(keydir=keydir, base=s.base, slurm_conf=s.c.slurm_conf, refuser=refuser)
        s.start()
        os.makedirs(os.path.join(s.base, "pushed"), exist_ok=True)
        os.makedirs(os.path.join(s.base, "ssh"), mode=0o700, exist_ok=True)
        shutil.copy(os.path.join(keydir, "node_key.pub"), os.path.join(s.base, "ssh", "authorized_keys"))

        node = "%s1" % s.group.prefix
        t0 = time.monotonic()
        s.c.run("scontrol", "update", "nodename=%s,%s" % (node, refuser), "state=power_up", check=True)
        try:
            s.wait_for(lambda: s.state(node).split("+")[0] == "IDLE" and "POWER" not in s.state(node)
                       and "NOT_RESPONDING" not in s.state(node), 90, "%s to register" % node)
        except HarnessError:
            pass
        st = s.state(node)
        t.ok(st.split("+")[0] == "IDLE" and "POWER" not in st,
             "a node configured over SSH registers: %s (%s)" % (st, elapsed(t0)),
             s.log("elasticd.log")[-5000:])
        payload = os.path.join(s.base, "pushed", "payload")
        ok = os.path.exists(payload)
        t.ok(ok and open(payload).read() == "pushed by elasticd\n"
             and (os.stat(payload).st_mode & 0o7777) == 0o440 and os.stat(payload).st_gid == 65534,
             "the group's file was copied with its mode and group")
        ran = open(os.path.join(s.base, "pushed", "ran")).read().split() \
            if os.path.exists(os.path.join(s.base, "pushed", "ran")) else []
        t.ok(ran == [node], "the commands ran on the node itself, in order (%s)" % " ".join(ran))
        log = s.log("elasticd.log")
        t.ok("Configured over SSH" in log, "elasticd logs the push")

        # reimage: the rebuilt instance has new host keys; it is configured again
        keyfile = os.path.join(s.base, "ssh", node, "ssh_host_ed25519_key.pub")
        old_key = open(keyfile).read()
        t1 = time.monotonic()
        s.c.run("scontrol", "reboot", "reason=reimage", node, check=True)
        try:
            s.wait_for(lambda: len(open(os.path.join(s.base, "pushed", "ran")).read().split()) >= 2
                       and s.state(node).split("+")[0] == "IDLE"
                       and not any(f in s.state(node) for f in ("REBOOT", "NOT_RESPONDING", "POWER")),
                       90, "%s to come back from its rebuild" % node)
        except HarnessError:
            pass
        st = s.state(node)
        t.ok(st.split("+")[0] == "IDLE" and "REBOOT" not in st and open(keyfile).read() != old_key
             and s.log("elasticd.log").count("Configured over SSH") >= 2,
             "a rebuilt node (new host keys) is configured again and registers: %s (%s)" % (st, elapsed(t1)),
             s.log("elasticd.log")[-5000:])

        # the refusing node: DOWN with the command's status and stderr, instance deleted
        try:
            s.wait_for(lambda: "DOWN" in s.state(refuser).split("+") and not [
                x for x in s.servers() if x["name"] == refuser], 60, "%s to be failed" % refuser)
        except HarnessError:
            pass
        out = s.c.run("scontrol", "-o", "show", "node", refuser).stdout
        reason = out.split("Reason=", 1)[1].strip() if "Reason=" in out else ""
        t.ok("DOWN" in s.state(refuser).split("+") and
             "configuring over SSH: command" in reason and "exited with status 3" in reason,
             "a failing command marks the node DOWN with the reason: %s" % reason,
             s.log("elasticd.log")[-3000:])
        t.ok(not [x for x in s.servers() if x["name"] == refuser],
             "the failed node's instance is deleted")

        rc = s.stop_daemon()
        log = s.log("elasticd.log")
        t.ok(rc == 0 and "Sanitizer" not in log and "runtime error" not in log,
             "elasticd stops cleanly (exit %s; no sanitizer report)" % rc, log[-3000:])
        t.ok("PRIVATE KEY" not in log and "pushed by elasticd" not in log,
             "neither the key nor a file's content reaches the log")
    except Exception:
        t.crashed("configure over ssh")
    finally:
        s.stop()
        shutil.rmtree(keydir, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
