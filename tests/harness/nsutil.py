"""Namespace and process helpers shared by the Slurm test harness.

Everything here acts only on things the caller names: a netns it created, pids
it recorded.  Nothing is found by process name."""
import os
import signal
import subprocess
import time

NETNS_DIR = "/run/netns"

# Daemons and clients get this PATH and nothing else from the caller's
# environment, so what they see is the same on every machine.
SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def ip(*args, check=True):
    """Run `ip ARGS...`; raise with ip's own message on failure."""
    p = subprocess.run(["ip", *args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), p.stderr.strip()))
    return p


def netns_path(name):
    return os.path.join(NETNS_DIR, name)


def netns_exists(name):
    return os.path.exists(netns_path(name))


def netns_add(name):
    ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")


def netns_delete(name):
    if netns_exists(name):
        ip("netns", "delete", name, check=False)


def netns_pids(name):
    """Pids of every process whose network namespace is netns NAME."""
    try:
        st = os.stat(netns_path(name))
    except FileNotFoundError:
        return []
    key = (st.st_dev, st.st_ino)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = os.stat("/proc/%s/ns/net" % d)
        except OSError:
            continue  # gone, or a kernel thread
        if (s.st_dev, s.st_ino) == key and int(d) != os.getpid():
            pids.append(int(d))
    return pids


def alive(pid):
    """True if PID exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def stop_pids(pids, timeout=5.0, reap=None):
    """TERM every pid, wait up to TIMEOUT seconds, then KILL what is left.

    REAP, if given, is called each round so a parent can collect its own
    children (a child we started stays a zombie until waited for)."""
    pids = [p for p in pids if p and p > 1]
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while True:
        if reap:
            reap()
        left = [p for p in pids if alive(p)]
        if not left:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 2.0
    while any(alive(p) for p in left) and time.monotonic() < deadline:
        if reap:
            reap()
        time.sleep(0.02)


def stop_netns_processes(name, timeout=5.0, reap=None):
    """Stop every process in netns NAME (repeat: a dying daemon may fork)."""
    for _ in range(3):
        pids = netns_pids(name)
        if not pids:
            return
        stop_pids(pids, timeout, reap)


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_file(path, text, mode=0o644):
    """Write TEXT to PATH atomically (rename), with MODE."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


# Shell run as the first process of a private mount namespace: replace the
# name-service files (no DNS lookups, no Debian getaddrinfo retries), drop the
# copies of /run/netns/* bind mounts (they would pin other runs' netns alive),
# optionally set the UTS hostname ("-" keeps it), then exec the command.
#   $0 = etc dir holding hosts + nsswitch.conf, $1 = hostname or "-"
NS_PROLOGUE = (
    'mount --bind "$0/hosts" /etc/hosts && '
    'mount --bind "$0/nsswitch.conf" /etc/nsswitch.conf || exit 111; '
    'umount -l /run/netns 2>/dev/null; '
    '[ "$1" = - ] || hostname "$1" || exit 112; shift; exec "$@"'
)


def ns_command(netns, etc_dir, hostname, argv, time_ns=False):
    """argv that runs ARGV in netns NETNS with private mount (+ UTS when a
    hostname is given, + time when TIME_NS) namespaces.

    Not `ip netns exec`: that remounts /sys, which hides /sys/fs/cgroup, and
    slurmd 22.05 then refuses to start.  nsenter --net keeps /sys.  Every step
    execs, so the pid of the returned command is the pid of ARGV[0]."""
    cmd = ["nsenter", "--net=" + netns_path(netns), "unshare", "--mount",
           "--propagation", "private"]
    if hostname != "-":
        cmd.append("--uts")
    if time_ns:
        # CLOCK_BOOTTIME (sysinfo uptime) starts at ~0 for this process tree.
        up = int(float(open("/proc/uptime").read().split()[0]))
        cmd += ["--time", "--boottime", "-%d" % up]
    return cmd + ["sh", "-c", NS_PROLOGUE, etc_dir, hostname] + list(argv)


def clean_env(**extra):
    env = {"PATH": SAFE_PATH}
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env
