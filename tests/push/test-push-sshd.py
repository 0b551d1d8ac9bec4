#!/usr/bin/env python3
"""Pushes (daemon/push/push.c through tests/push/push-run) against a real sshd
running in an instance namespace of the test harness: files land with
their mode, owner and content; commands run in order and a failing one
fails the push with its status and stderr; a host key other than the
console's refuses the push; an sshd that is not up is retried until it is,
or until the deadline; a key sshd does not know fails the login. One push
runs under valgrind when it is installed."""
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "harness"))
import instance as instance_mod  # noqa: E402
from slurmcluster import NodeGroup, SlurmCluster  # noqa: E402
from tap import Tap, skip_all  # noqa: E402

PUSH_RUN = os.environ.get("PUSH_RUN", "")
EKEYREJECTED, EACCES, ETIMEDOUT, EPROTO = 129, 13, 110, 71


def keygen(path, comment):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                   check=True, stdin=subprocess.DEVNULL)


def result(p):
    """(code, reason, steps) from push-run's output."""
    steps, code, reason = [], None, ""
    for line in p.stdout.splitlines():
        if line.startswith("step "):
            steps.append(line[5:])
        elif line.startswith("result "):
            parts = line.split(" ", 2)
            code = int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
    return code, reason, steps


def main():
    if os.geteuid() != 0:
        skip_all("needs root (network namespaces)")
    for tool in ("/usr/sbin/sshd", "/usr/bin/ssh-keygen", "/usr/bin/scp", "slurmctld"):
        if not shutil.which(tool):
            skip_all("%s is not installed" % tool)
    if not PUSH_RUN or not os.access(PUSH_RUN, os.X_OK):
        skip_all("PUSH_RUN not set (run through meson)")

    t = Tap()
    with SlurmCluster(groups=[NodeGroup("ps", 4)]) as c:
        base = c.base
        sshdir = instance_mod.ssh_dir(base)
        os.makedirs(sshdir, mode=0o700, exist_ok=True)
        key, wrong = os.path.join(sshdir, "elasticd_key"), os.path.join(sshdir, "wrong_key")
        keygen(key, "elasticd")
        keygen(wrong, "not-authorized")
        shutil.copy(key + ".pub", os.path.join(sshdir, "authorized_keys"))

        def addr(name):
            return c.node_addrs[name]

        def console(name, path):
            with open(path, "w") as f:
                f.write("[    4.2] cloud-init[600]: Cloud-init v. 22.4.2 final\n")
                f.write(instance_mod.hostkeys_console(base, name))
                f.write("%s login: \n" % name)
            return path

        reports = []

        def push(name, *args, key_path=key, deadline_ms=15000, cons=None, wrapper=()):
            argv = list(wrapper) + [PUSH_RUN, "--address", addr(name), "--key", key_path,
                                    "--console", cons or console(name, os.path.join(base, name + ".console")),
                                    "--deadline-ms", str(deadline_ms), "--connect-timeout-ms", "1000"]
            p = c.run(*(argv + list(args)), timeout=120)
            if "Sanitizer" in p.stderr or "runtime error:" in p.stderr:
                reports.append(p.stderr[-2000:])
            return p, result(p)

        # ps1: sshd up; everything a node needs
        t0 = time.monotonic()
        c.instance_up("ps1", service="sshd", boot_delay=0, wait=True)
        node_root = os.path.join(base, "node-ps1")
        os.makedirs(os.path.join(node_root, "etc/munge"))
        os.makedirs(os.path.join(node_root, "etc/slurm"))
        src = os.path.join(base, "src")
        os.makedirs(src)
        with open(os.path.join(src, "munge.key"), "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(os.path.join(src, "munge.key"), 0o600)
        with open(os.path.join(src, "slurmd.default"), "w") as f:
            f.write("SLURMD_OPTIONS='--conf-server slurmctl'\n")
        with open(os.path.join(node_root, "etc/slurm/slurmd.default"), "w") as f:
            f.write("old content\n")
        mk = os.path.join(node_root, "run.log")
        p, (code, reason, steps) = push(
            "ps1",
            "--file", "%s/munge.key:%s/etc/munge/munge.key:0400:nobody:nogroup" % (src, node_root),
            "--file", "%s/slurmd.default:%s/etc/slurm/slurmd.default:0644" % (src, node_root),
            "--cmd", "echo first >> %s" % mk,
            "--cmd", "echo second >> %s; hostname >> %s" % (mk, mk))
        push_seconds = time.monotonic() - t0
        if t.ok(code == 0, "a push succeeds: %s" % (reason or "ok"), p.stdout + p.stderr):
            st = os.stat(os.path.join(node_root, "etc/munge/munge.key"))
            t.ok(oct(st.st_mode & 0o7777) == "0o400" and st.st_uid == 65534 and st.st_gid == 65534,
                 "the munge key lands with mode 0400, owner nobody:nogroup",
                 "mode %o uid %d gid %d" % (st.st_mode & 0o7777, st.st_uid, st.st_gid))
            t.ok(open(os.path.join(node_root, "etc/munge/munge.key"), "rb").read()
                 == open(os.path.join(src, "munge.key"), "rb").read(), "its content is the source's")
            st = os.stat(os.path.join(node_root, "etc/slurm/slurmd.default"))
            t.ok(open(os.path.join(node_root, "etc/slurm/slurmd.default")).read()
                 == "SLURMD_OPTIONS='--conf-server slurmctl'\n" and (st.st_mode & 0o7777) == 0o644
                 and st.st_uid == 0,
                 "an existing file is replaced (mode 0644, owner root)")
            left = [f for f in os.listdir(os.path.join(node_root, "etc/munge"))
                    + os.listdir(os.path.join(node_root, "etc/slurm")) if "elasticd-" in f]
            t.ok(not left, "no temporary file is left behind", repr(left))
            t.ok(open(mk).read() == "first\nsecond\nps1\n",
                 "commands run in order, on the node (its hostname)", open(mk).read())
            t.ok(steps == ["connect", "hostkey", "auth",
                           "copy %s/etc/munge/munge.key" % node_root,
                           "copy %s/etc/slurm/slurmd.default" % node_root,
                           "run echo first >> %s" % mk,
                           "run echo second >> %s; hostname >> %s" % (mk, mk)],
                 "each step is reported", repr(steps))
        else:
            t.diag(open(os.path.join(base, "log", "sshd.ps1.log")).read())

        # a failing command: its status and stderr; nothing after it runs
        after = os.path.join(node_root, "after")
        p, (code, reason, steps) = push(
            "ps1", "--cmd", "echo started; echo 'slurmd: fatal: Unable to determine this slurmd NodeName' >&2; exit 7",
            "--cmd", "touch %s" % after)
        t.ok(code == -EPROTO and "exited with status 7: slurmd: fatal: Unable to determine this slurmd NodeName"
             in reason and not os.path.exists(after),
             "a failing command fails the push with its status and stderr; later commands do not run",
             p.stdout)
        t.ok("\n" not in reason and reason.endswith("status 7: slurmd: fatal: Unable to determine this slurmd NodeName"),
             "the reason is one line with stderr only (not stdout)", reason)

        # an install that fails on the node (owner unknown there)
        p, (code, reason, steps) = push(
            "ps1", "--file", "%s/munge.key:%s/etc/munge/k2:0400:no-such-user" % (src, node_root))
        t.ok(code == -EPROTO and "no-such-user" in reason
             and not [f for f in os.listdir(os.path.join(node_root, "etc/munge")) if f != "munge.key"],
             "an unknown owner fails the copy and leaves nothing behind", p.stdout)
        p, (code, reason, steps) = push(
            "ps1", "--file", "%s/munge.key:%s/no/such/dir/k:0400" % (src, node_root))
        t.ok(code < 0 and "does the directory exist?" in reason, "a missing directory is named", p.stdout)

        # host key not the console's: refused before logging in
        other = os.path.join(base, "other.console")
        with open(other, "w") as f:
            f.write("-----BEGIN SSH HOST KEY KEYS-----\n")
            f.write(open(key + ".pub").read())
            f.write("-----END SSH HOST KEY KEYS-----\n")
        marker = os.path.join(node_root, "mitm")
        p, (code, reason, steps) = push("ps1", "--cmd", "touch %s" % marker, cons=other)
        t.ok(code == -EKEYREJECTED and reason.startswith("host key mismatch: sshd at %s:22 presented ssh-ed25519 SHA256:"
                                                          % addr("ps1"))
             and "not among the 1 key the instance printed on its console" in reason
             and "auth" not in steps and not os.path.exists(marker),
             "a host key that is not the console's refuses the push", p.stdout)

        # a key sshd does not know
        p, (code, reason, steps) = push("ps1", "--cmd", "touch %s" % marker, key_path=wrong)
        t.ok(code == -EACCES and ("refused the key %s for user root" % wrong) in reason
             and not os.path.exists(marker), "a key sshd does not accept fails the login clearly", p.stdout)
        t.ok("PRIVATE KEY" not in p.stdout + p.stderr, "no key material in the output")

        # no sshd at all: retried until the deadline
        c.instance_up("ps2", service="none", boot_delay=0, wait=True)
        t1 = time.monotonic()
        p, (code, reason, steps) = push("ps2", deadline_ms=2500,
                                        cons=console("ps1", os.path.join(base, "c1")))
        took = time.monotonic() - t1
        attempts = reason.split("(")[1].split(" ")[0] if "(" in reason else "0"
        t.ok(code == -ETIMEDOUT and ("sshd at %s:22 not reachable before the deadline" % addr("ps2")) in reason
             and int(attempts) > 1 and "last: Connection refused" in reason and took >= 2.4,
             "an sshd that is not up is retried until the deadline", p.stdout)

        # sshd coming up while we retry: the push waits for it
        c.instance_up("ps3", service="sshd", boot_delay=2)   # keys now, sshd in ~2 s
        p, (code, reason, steps) = push("ps3", "--cmd", "true", deadline_ms=20000)
        t.ok(code == 0, "a push started before sshd is up succeeds once it is", p.stdout)

        # under valgrind: no leak, no error (libssh2's globals are released)
        if os.environ.get("PUSH_SANITIZE", "none") not in ("", "none"):
            t.skip("valgrind: a full push is clean", "sanitizer build (ASan checks it instead)")
        elif shutil.which("valgrind"):
            p, (code, reason, steps) = push(
                "ps1", "--file", "%s/slurmd.default:%s/etc/slurm/vg:0644" % (src, node_root), "--cmd", "true",
                wrapper=("valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
                         "--suppressions=" + os.path.join(HERE, "libssh2.supp"),
                         "--error-exitcode=99"), deadline_ms=60000)
            t.ok(p.returncode == 0 and code == 0, "valgrind: a full push is clean",
                 p.stdout + p.stderr[-3000:])
        else:
            t.skip("valgrind: a full push is clean", "valgrind not installed")
        t.ok(not reports, "no sanitizer report from any push", "\n".join(reports))
        t.diag("first push incl. instance boot: %.2f s" % push_seconds)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
