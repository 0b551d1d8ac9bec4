#!/usr/bin/env python3
"""Test "instances": a node of a harness cluster as namespaces of its own.

An instance NAME of the cluster in BASE is
  netns  PREFIX-i-NAME   eth0 = veth to the harness bridge, address ADDR
  holder process         `sleep infinity` owning the instance's UTS
                         (hostname NAME), mount (hosts/nsswitch of the
                         harness) and time namespaces; it starts at "boot"
  services               slurmd, sshd or nothing, joined to the holder's
                         namespaces; `exec` runs anything else there

With --service sshd the instance runs Debian's sshd with a private config
(BASE/ssh/NAME/: host keys made by ssh-keygen at `up`, new ones on a
rebuild; no PAM, root by key only, AuthorizedKeysFile BASE/ssh/authorized_keys
that the test writes) and `emu-hook` prints the host keys to the emulator's
console in cloud-init's format, as a cloud image would; elasticd then
starts slurmd over SSH.

The time namespace is why: slurmctld ignores a registration from a node it
resumed or rebooted while the node's boot time (now - uptime, 1 s
resolution) predates the request ("Still waiting for boot of node").  A
slurmd in a plain netns reports the host's uptime; here CLOCK_BOOTTIME
starts at ~0 when the holder starts, BOOT_DELAY seconds (default 2; 1 was
seen to lose to rounding) after `up` was called.

CLI (the OpenStack emulator's hook and test ResumePrograms call it):
  instance.py up   --base B --name N [--addr A] [--service slurmd|none]
                   [--boot-delay S] [--wait]
  instance.py down --base B --name N
  instance.py reboot --base B --name N [--service ...] [--boot-delay S]
  instance.py exec --base B --name N -- CMD ARGS...
  instance.py hostkeys --base B --name N   (its sshd's host keys as
                   cloud-init prints them on the console)
  instance.py emu-hook --base B [--service ...]   (EMU_EVENT=create|delete|
                   reboot|rebuild, EMU_SERVER_NAME, EMU_ADDRESS, EMU_SERVER_ID
                   from the env; a delete by another server id than the one
                   that created the instance is a no-op)
Works from any namespace (e.g. a hook run by slurmctld inside its private
mount namespace): it re-enters the harness's own namespaces first.
"""
import argparse
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nsutil  # noqa: E402

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class InstanceError(RuntimeError):
    pass


def netns_name(prefix, name):
    return "%s-i-%s" % (prefix, name)


def _veth_name(name):
    # interface names are at most 15 bytes; the veth lives in our ctl netns
    v = "v-" + name
    if len(v) <= 15:
        return v
    return "v" + hashlib.sha1(name.encode()).hexdigest()[:12]


def load_state(base):
    try:
        with open(os.path.join(base, "harness.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        raise InstanceError("%s: no harness cluster there (harness.json missing)" % base)


def _run_dir(state):
    d = os.path.join(state["base"], "run", "instance")
    os.makedirs(d, exist_ok=True)
    return d


def _check_name(name):
    if not NAME_RE.match(name or ""):
        raise InstanceError("bad instance name %r (letters, digits, . _ -; at most 63)" % name)


def _resolve_addr(state, name, addr):
    if not addr:
        addr = state["node_addrs"].get(name)
        if not addr:
            raise InstanceError("no address for %s: not a configured node; pass --addr" % name)
    try:
        a = ipaddress.ip_address(addr)
    except ValueError:
        raise InstanceError("bad address %r for %s" % (addr, name))
    net = ipaddress.ip_network(state["subnet"])
    if a not in net or a in (net.network_address, net.broadcast_address) \
            or str(a) == state["ctl_addr"]:
        raise InstanceError("address %s for %s: not a host address of the harness "
                            "subnet %s (controller %s)" % (a, name, net, state["ctl_addr"]))
    return str(a), net.prefixlen


def up(base, name, addr=None, service="slurmd", boot_delay=None, wait=False, owner=None):
    """Create instance NAME and boot it (in the background).  Returns a dict
    with netns, addr and the pid of the booting process.  OWNER (the
    emulator's server id) is recorded so that deleting another server of
    the same name leaves this instance alone."""
    _check_name(name)
    state = load_state(base)
    addr, plen = _resolve_addr(state, name, addr)
    ns = netns_name(state["prefix"], name)
    if nsutil.netns_exists(ns):
        raise InstanceError("instance %s already exists (netns %s%s)" % (
            name, ns, ", server " + _owner(state, name) if _owner(state, name) else ""))
    if boot_delay is None:
        boot_delay = state.get("boot_delay", 2.0)
    if service == "sshd":
        make_hostkeys(base, name, fresh=True)
    veth, ctl = _veth_name(name), state["ctl_netns"]
    nsutil.netns_add(ns)
    try:
        nsutil.ip("-n", ctl, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                  "netns", ns)
        nsutil.ip("-n", ctl, "link", "set", veth, "master", state["bridge"], "up")
        nsutil.ip("-n", ns, "addr", "add", "%s/%d" % (addr, plen), "dev", "eth0")
        nsutil.ip("-n", ns, "link", "set", "eth0", "up")
    except Exception:
        nsutil.ip("-n", ctl, "link", "del", veth, check=False)
        nsutil.netns_delete(ns)
        raise
    owner_file = os.path.join(_run_dir(state), name + ".owner")
    if owner:
        nsutil.write_file(owner_file, owner + "\n")
    else:
        _unlink(owner_file)
    return _boot(state, name, ns, service, boot_delay, wait)


HOSTKEY_TYPES = ("ed25519", "ecdsa")


def ssh_dir(base, name=None):
    return os.path.join(base, "ssh", name) if name else os.path.join(base, "ssh")


def make_hostkeys(base, name, fresh=False):
    """Host keys of instance NAME (new ones when FRESH, as a new image's
    cloud-init makes) and its sshd_config."""
    state = load_state(base)
    d = ssh_dir(base, name)
    os.makedirs(d, mode=0o700, exist_ok=True)
    for t in HOSTKEY_TYPES:
        key = os.path.join(d, "ssh_host_%s_key" % t)
        if fresh or not os.path.exists(key):
            for f in (key, key + ".pub"):
                _unlink(f)
            subprocess.run(["ssh-keygen", "-q", "-t", t, "-N", "", "-C", "root@" + name,
                            "-f", key], check=True, stdin=subprocess.DEVNULL)
    conf = "".join("HostKey %s/ssh_host_%s_key\n" % (d, t) for t in HOSTKEY_TYPES) + (
        "Port 22\n"
        "ListenAddress 0.0.0.0\n"
        "PidFile %s/%s.sshd.pid\n"
        "AuthorizedKeysFile %s/authorized_keys\n"
        "UsePAM no\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "StrictModes no\n"
        "UseDNS no\n"
        "PrintMotd no\n"
        "PrintLastLog no\n"
        "LogLevel VERBOSE\n"
        "Subsystem sftp internal-sftp\n") % (_run_dir(state), name, ssh_dir(base))
    nsutil.write_file(os.path.join(d, "sshd_config"), conf)


def hostkeys_console(base, name):
    """The host keys of NAME's sshd as cloud-init prints them on the console."""
    d = ssh_dir(base, name)
    lines = ["-----BEGIN SSH HOST KEY KEYS-----"]
    for t in HOSTKEY_TYPES:
        with open(os.path.join(d, "ssh_host_%s_key.pub" % t)) as f:
            lines.append(f.read().strip())
    lines.append("-----END SSH HOST KEY KEYS-----")
    return "\n".join(lines) + "\n"


def _owner(state, name):
    try:
        with open(os.path.join(_run_dir(state), name + ".owner")) as f:
            return f.read().strip()
    except OSError:
        return ""


def _boot(state, name, ns, service, boot_delay, wait):
    base = state["base"]
    for d in ("tmp/" + name, "spool/slurmd." + name, "log"):
        os.makedirs(os.path.join(base, d), exist_ok=True)
    run = _run_dir(state)
    for f in ("holder", "slurmd", "sshd"):
        _unlink(os.path.join(run, "%s.%s" % (name, f)))
    log = open(os.path.join(base, "log", "instance.%s.log" % name), "ab")
    # the booter lives in the instance's netns from the start, so `down`
    # finds (and ends) it even while it is still sleeping
    p = subprocess.Popen(
        ["nsenter", "--net=" + nsutil.netns_path(ns), sys.executable,
         os.path.abspath(__file__), "_boot", "--base", base, "--name", name,
         "--service", service, "--boot-delay", str(boot_delay)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        env=nsutil.clean_env())
    log.close()
    if wait:
        p.wait()
        if p.returncode != 0:
            raise InstanceError("booting %s failed (see %s/log/instance.%s.log)"
                                % (name, base, name))
    return {"name": name, "netns": ns, "booter_pid": p.pid}


def _boot_inside(base, name, service, boot_delay):
    """Runs in the instance's netns: wait, start the holder, start services."""
    state = load_state(base)
    time.sleep(boot_delay)
    run = _run_dir(state)
    argv = nsutil.ns_command(netns_name(state["prefix"], name), state["etc"], name,
                             ["sh", "-c", "echo ready; exec sleep infinity"], time_ns=True)
    holder = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              start_new_session=True, env=nsutil.clean_env())
    if holder.stdout.readline().strip() != b"ready":
        raise InstanceError("holder of %s failed to start (exit %s)" % (name, holder.wait()))
    holder.stdout.close()
    nsutil.write_file(os.path.join(run, name + ".holder"), "%d\n" % holder.pid)
    if service == "slurmd":
        out = open(os.path.join(base, "log", "slurmd.%s.stdout" % name), "ab")
        p = subprocess.Popen(
            _enter(holder.pid, ["slurmd", "-D", "-N", name, "-f", state["slurm_conf"]]),
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            env=nsutil.clean_env(SLURM_CONF=state["slurm_conf"]), cwd=base)
        nsutil.write_file(os.path.join(run, name + ".slurmd"), "%d\n" % p.pid)
    elif service == "sshd":
        # sshd's compiled-in privilege separation directory (systemd makes it)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        log = os.path.join(base, "log", "sshd.%s.log" % name)
        p = subprocess.Popen(
            # a fresh /root as on a new image: the host's ~/.bashrc (which bash
            # sources for ssh commands) stays out of the instance
            _enter(holder.pid, ["sh", "-c", 'mount -t tmpfs -o mode=0700 instance-root /root && '
                                'exec /usr/sbin/sshd -D -E "$0" -f "$1"', log,
                                os.path.join(ssh_dir(base, name), "sshd_config")]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env=nsutil.clean_env(), cwd="/")
        nsutil.write_file(os.path.join(run, name + ".sshd"), "%d\n" % p.pid)
    print("%s booted: holder %d" % (name, holder.pid), flush=True)


def _enter(holder_pid, argv):
    return ["nsenter", "-t", str(holder_pid), "--net", "--uts", "--mount", "--time", "--"] \
        + list(argv)


def holder_pid(base, name):
    """Pid of the instance's namespace holder, or None while it boots."""
    state = load_state(base)
    pid = nsutil.read_pid(os.path.join(_run_dir(state), name + ".holder"))
    if pid and nsutil.alive(pid) and pid in nsutil.netns_pids(
            netns_name(state["prefix"], name)):
        return pid
    return None


def exec_argv(base, name, argv):
    """argv running ARGV inside the booted instance NAME."""
    pid = holder_pid(base, name)
    if not pid:
        raise InstanceError("instance %s is not running (not up, or still booting)" % name)
    return _enter(pid, argv)


def stop(base, name):
    """End every process of instance NAME; keep its netns and address."""
    _check_name(name)
    state = load_state(base)
    ns = netns_name(state["prefix"], name)
    pids = nsutil.netns_pids(ns)
    nsutil.stop_netns_processes(ns)
    run = _run_dir(state)
    for f in ("holder", "slurmd", "sshd"):
        _unlink(os.path.join(run, "%s.%s" % (name, f)))
    return ns, pids


def down(base, name, owner=None):
    """Destroy instance NAME: stop its processes, delete its netns (which
    deletes the veth too).  Returns the pids ended; [] if it was not up, or
    if OWNER is given and another server owns it."""
    _check_name(name)
    state = load_state(base)
    if owner and _owner(state, name) not in ("", owner):
        return []
    ns, pids = stop(base, name)
    nsutil.netns_delete(ns)
    if nsutil.netns_exists(ns):
        raise InstanceError("netns %s could not be deleted" % ns)
    _unlink(os.path.join(_run_dir(state), name + ".owner"))
    return pids


def reboot(base, name, service="slurmd", boot_delay=None, wait=False, rebuild=False):
    """Kill everything in the instance and boot it again (fresh boot time);
    a REBUILD with sshd gets new host keys."""
    ns, _ = stop(base, name)
    if service == "sshd":
        make_hostkeys(base, name, fresh=rebuild)
    if not nsutil.netns_exists(ns):
        raise InstanceError("instance %s does not exist" % name)
    state = load_state(base)
    if boot_delay is None:
        boot_delay = state.get("boot_delay", 2.0)
    return _boot(state, name, ns, service, boot_delay, wait)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _ns_ino(pid, kind):
    return os.stat("/proc/%s/ns/%s" % (pid, kind)).st_ino


def _reenter_harness_ns(base, argv):
    """Hooks run inside slurmctld's private mount (and the controller's
    network) namespace, where netns created here would be invisible to the
    harness: re-exec in the namespaces of the harness's munged."""
    state = load_state(base)
    anchor = state["anchor_pid"]
    if nsutil.comm(anchor) != "munged":
        raise InstanceError("the harness cluster in %s is not running" % base)
    if _ns_ino("self", "mnt") == _ns_ino(anchor, "mnt") and \
            _ns_ino("self", "net") == _ns_ino(anchor, "net"):
        return
    os.execvp("nsenter", ["nsenter", "-t", str(anchor), "--mount", "--net", "--",
                          sys.executable, os.path.abspath(__file__)] + argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    os.environ["PATH"] = nsutil.SAFE_PATH   # hooks run with no PATH at all
    ap = argparse.ArgumentParser(prog="instance.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for c in ("up", "down", "reboot", "exec", "emu-hook", "hostkeys", "_boot"):
        s = sub.add_parser(c)
        s.add_argument("--base", required=True)
        if c != "emu-hook":
            s.add_argument("--name", required=True)
        if c in ("up", "reboot", "emu-hook", "_boot"):
            s.add_argument("--service", choices=("slurmd", "sshd", "none"),
                           default="slurmd")
            s.add_argument("--boot-delay", type=float, default=None)
        if c in ("up", "reboot"):
            s.add_argument("--wait", action="store_true",
                           help="return after the services were started")
        if c == "up":
            s.add_argument("--addr")
        if c == "exec":
            s.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "_boot":
            _boot_inside(a.base, a.name, a.service, a.boot_delay or 0)
            return 0
        _reenter_harness_ns(a.base, argv)
        if a.cmd == "emu-hook":
            ev, name = os.environ.get("EMU_EVENT", ""), os.environ.get("EMU_SERVER_NAME", "")
            sid = os.environ.get("EMU_SERVER_ID") or None
            if ev == "create":
                up(a.base, name, os.environ.get("EMU_ADDRESS") or None, a.service, a.boot_delay,
                   owner=sid)
            elif ev == "delete":
                down(a.base, name, owner=sid)
            elif ev in ("reboot", "rebuild"):
                reboot(a.base, name, a.service, a.boot_delay, rebuild=ev == "rebuild")
            else:
                raise InstanceError("EMU_EVENT=%r: expected create, delete, reboot or rebuild" % ev)
            print("%s %s" % (ev, name))
            if a.service == "sshd" and ev != "delete":
                # stdout is the console log: the keys, as cloud-init prints them
                sys.stdout.write(hostkeys_console(a.base, name))
        elif a.cmd == "up":
            r = up(a.base, a.name, a.addr, a.service, a.boot_delay, a.wait)
            print("%s up: netns %s" % (a.name, r["netns"]))
        elif a.cmd == "hostkeys":
            sys.stdout.write(hostkeys_console(a.base, a.name))
        elif a.cmd == "down":
            pids = down(a.base, a.name)
            print("%s down (ended: %s)" % (a.name, " ".join(map(str, pids)) or "none"))
        elif a.cmd == "reboot":
            reboot(a.base, a.name, a.service, a.boot_delay, a.wait)
            print("%s rebooting" % a.name)
        elif a.cmd == "exec":
            cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
            if not cmd:
                raise InstanceError("exec: no command given")
            os.execvp("nsenter", exec_argv(a.base, a.name, cmd))
    except (InstanceError, RuntimeError, OSError) as e:
        print("instance.py %s: %s" % (a.cmd, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
