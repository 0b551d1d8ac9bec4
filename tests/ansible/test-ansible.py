#!/usr/bin/env python3
"""The ansible role: ansible-lint, syntax check and, as root, a real run into a
fresh Debian 12 root made with debootstrap (chroot connection), twice: the
second run must change nothing. TAP."""
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ["SOURCE_ROOT"]
BUILD = os.environ["MESON_BUILD_ROOT"]
ANSIBLE = os.path.join(SRC, "ansible")
CHROOT = os.environ.get("ANSIBLE_CHROOT") == "1"
# Pre-installed in the cached root so that each run does not download them;
# the role's apt task still checks them.
BASE_PACKAGES = ("python3,python3-apt,meson,ninja-build,pkg-config,gcc,libc6-dev,"
                 "libslurm-dev,libcurl4-openssl-dev,libjansson-dev,libyaml-dev,"
                 "libssh2-1-dev,libsystemd-dev,systemd")

n = 0


def ok(cond, name, detail=""):
    global n
    n += 1
    print(("ok" if cond else "not ok") + f" {n} - {name}", flush=True)
    if not cond and detail:
        for line in detail.splitlines()[-40:]:
            print("# " + line)
    return cond


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kw)


def debian_mirror():
    """The first Debian mirror apt on this machine uses."""
    for d in ("/etc/apt/sources.list.d", "/etc/apt"):
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            if not (f.endswith(".sources") or f.endswith(".list")):
                continue
            text = open(os.path.join(d, f)).read()
            for m in re.finditer(r"(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+/debian)\s", text):
                return m.group(1)
    return "http://deb.debian.org/debian"


def cache_dir():
    """Where the pristine root is kept: $ELASTICD_TEST_CACHE, else a machine
    cache shared by every checkout (a clean CI clone reuses it), else the
    build tree."""
    for d in (os.environ.get("ELASTICD_TEST_CACHE"), "/var/cache/elasticd-tests"):
        if d:
            try:
                os.makedirs(d, exist_ok=True)
                if os.access(d, os.W_OK):
                    return d
            except OSError:
                pass
    return os.path.join(BUILD, "ansible-cache")


def base_root():
    """A pristine bookworm root, made once and cached (cache_dir())."""
    cache = cache_dir()
    os.makedirs(cache, exist_ok=True)
    root = os.path.join(cache, "bookworm")
    with open(os.path.join(cache, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(root, ".complete")):
            tmp = root + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)
            r = run(["debootstrap", "--variant=minbase", "--include=" + BASE_PACKAGES,
                     "bookworm", tmp, debian_mirror()])
            if r.returncode != 0:
                raise RuntimeError("debootstrap failed:\n" + r.stdout[-3000:])
            open(os.path.join(tmp, ".complete"), "w").close()
            os.rename(tmp, root)
    return root


def recap(out):
    m = re.search(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else None


def lint_and_syntax():
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", NO_COLOR="1")
    r = run(["ansible-lint", "--offline", "site.yml", "roles"], cwd=ANSIBLE, env=env)
    ok(r.returncode == 0, "ansible-lint is clean", r.stdout)
    r = run(["ansible-playbook", "--syntax-check", "-i", "localhost,", "site.yml"],
            cwd=ANSIBLE, env=env)
    ok(r.returncode == 0, "ansible-playbook --syntax-check", r.stdout)


def chroot_run():
    os.makedirs(os.path.join(BUILD, "ansible-cache"), exist_ok=True)
    work = tempfile.mkdtemp(prefix=f"elasticd-ansible-{os.getpid()}-",
                            dir=os.path.join(BUILD, "ansible-cache"))
    root = os.path.join(work, "root")
    try:
        r = run(["cp", "-a", "--reflink=auto", base_root(), root])
        if not ok(r.returncode == 0, "fresh Debian 12 root", r.stdout):
            return
        inv = os.path.join(work, "inventory")
        with open(inv, "w") as f:
            f.write("[slurm_controllers]\n"
                    f"{root} ansible_connection=chroot ansible_python_interpreter=/usr/bin/python3\n")
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0",
                   ANSIBLE_LOCAL_TEMP=os.path.join(work, "tmp"),
                   ANSIBLE_REMOTE_TEMP="/root/.ansible/tmp")
        argv = ["ansible-playbook", "-i", inv, "site.yml",
                "-e", "elasticd_source_dir=" + SRC,
                "-e", "elasticd_os_password=not-a-real-secret"]
        r = run(argv, cwd=ANSIBLE, env=env)
        first = recap(r.stdout)
        ok(r.returncode == 0 and first and first[3] == 0, "playbook runs in the chroot", r.stdout)
        ok("not-a-real-secret" not in r.stdout, "the cloud password never reaches the output")
        c = run(["chroot", root, "/usr/local/sbin/elasticd", "--check", "-c",
                 "/etc/elasticd/elasticd.yaml"])
        ok(c.returncode == 0, "elasticd --check passes in the chroot", c.stdout)
        units = [os.path.join(root, "usr/local/lib/systemd/system", u)
                 for u in ("elasticd.service", "elasticd.socket")]
        wants = [os.path.join(root, "etc/systemd/system/sockets.target.wants/elasticd.socket"),
                 os.path.join(root, "etc/systemd/system/multi-user.target.wants/elasticd.service")]
        ok(all(os.path.exists(u) for u in units), "units installed")
        ok(all(os.path.lexists(w) for w in wants), "units enabled")
        clouds = os.path.join(root, "etc/elasticd/clouds.yaml")
        ok(os.path.exists(clouds) and os.stat(clouds).st_mode & 0o777 == 0o600,
           "clouds.yaml is mode 0600")
        ps = os.path.join(root, "etc/slurm/power-saving.conf")
        ok(os.path.exists(os.path.join(root, "etc/slurm/elasticd-suspend-exc.conf"))
           and os.path.exists(ps)
           and "ResumeProgram=/usr/local/bin/elastic-resume" in open(ps).read(),
           "slurm power-saving block and suspend-exclusion file written")
        r = run(argv, cwd=ANSIBLE, env=env)
        second = recap(r.stdout)
        ok(r.returncode == 0 and second and second[1] == 0, "second run: changed=0", r.stdout)
    finally:
        # Nothing is mounted in the root; refuse to delete through a mount anyway.
        mounted = any(root in line for line in open("/proc/mounts"))
        if not mounted:
            shutil.rmtree(work, ignore_errors=True)


def main():
    if not shutil.which("ansible-playbook") or not shutil.which("ansible-lint"):
        print("1..0 # SKIP ansible or ansible-lint not installed")
        return 0
    if CHROOT:
        if os.geteuid() != 0 or not shutil.which("debootstrap"):
            print("1..0 # SKIP needs root and debootstrap")
            return 0
        print("1..9")
        chroot_run()
    else:
        print("1..2")
        lint_and_syntax()
    return 0


if __name__ == "__main__":
    sys.exit(main())
