"""A real Slurm 22.05 cluster for tests, in namespaces of the test's own.

    from slurmcluster import SlurmCluster, NodeGroup
    with SlurmCluster(groups=[NodeGroup("cl", 4)],
                      resume_program="/abs/resume.sh") as c:
        print(c.run("sinfo").stdout)
        c.instance_up("cl1")          # a node "boots": netns + slurmd
        c.wait_for(lambda: c.node_state("cl1") == "IDLE+CLOUD")

Topology (one run; every name carries the run's unique prefix):
  munged          root netns, private key and socket in BASE/munge
  netns P-ctl     bridge br0 with the controller address (.1 of the subnet);
                  slurmctld runs there with its own UTS (hostname slurmctl)
                  and mount namespace (hosts/nsswitch), as do the clients
  netns P-i-NODE  one per instance: eth0 = veth to br0, its own UTS, mount
                  and time namespaces (see instance.py)
No address is ever added to the root netns and no namespace has a default
route, so no packet leaves.  stop() ends exactly the processes it started
or that live in its own netns, deletes its netns and (unless keep) BASE.
"""
import atexit
import ipaddress
import itertools
import json
import os
import shutil
import signal
import string
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nsutil  # noqa: E402
import instance as instance_mod  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "slurm.conf.in")
_seq = itertools.count()


class HarnessError(RuntimeError):
    pass


class NodeGroup:
    """Nodes PREFIX<start>..PREFIX<start+count-1> (zero-padded to WIDTH).

    cloud=True: State=CLOUD, powered down until resumed.  cloud=False: a
    static node with a fixed NodeAddr, started by the harness."""

    def __init__(self, prefix, count, start=1, width=0, cloud=True,
                 features="cloud", cpus=1, memory=400, partition=None,
                 tmp_disk=None):
        self.prefix, self.count, self.start, self.width = prefix, count, start, width
        self.cloud, self.features, self.cpus, self.memory = cloud, features, cpus, memory
        self.partition = partition or ("cloud" if cloud else "static")
        self.tmp_disk = tmp_disk

    def names(self):
        return ["%s%0*d" % (self.prefix, self.width, i)
                for i in range(self.start, self.start + self.count)]

    def hostlist(self):
        last = self.start + self.count - 1
        if self.count == 1:
            return "%s%0*d" % (self.prefix, self.width, self.start)
        return "%s[%0*d-%0*d]" % (self.prefix, self.width, self.start,
                                  self.width, last)


def _check_program(path, what):
    """slurmctld silently refuses a hook that is not absolute, executable and
    free of group/world write permission: fail loudly here instead."""
    if not os.path.isabs(path):
        raise HarnessError("%s %r: must be an absolute path" % (what, path))
    try:
        st = os.stat(path)
    except OSError as e:
        raise HarnessError("%s %s: %s" % (what, path, e.strerror))
    if not os.access(path, os.X_OK) or st.st_mode & 0o022:
        raise HarnessError("%s %s: must be executable and not group/world-writable "
                           "(mode %o)" % (what, path, st.st_mode & 0o7777))


class SlurmCluster:
    def __init__(self, groups=None, base=None, prefix=None, subnet="10.77.0.0/24",
                 resume_program=None, suspend_program=None,
                 resume_fail_program=None, reboot_program=None,
                 suspend_time=300, suspend_timeout=10, resume_timeout=60,
                 power_save_interval=10, cloud_reg_addrs=True,
                 reboot_from_controller=True, idle_on_node_suspend=True,
                 enable_configless=True, include=None, suspend_exc_nodes=None,
                 cloud_in_hosts=False, extra_conf="", keep=None,
                 ctld_debug="debug", slurmd_debug="info", boot_delay=2.0,
                 ctl_port=6817, start_timeout=30.0, scripts=None, node_addr_start=10):
        n = next(_seq)
        # "x": no run's prefix + "-" may be the start of another run's names
        tag = "%d" % os.getpid() + ("x%d" % n if n else "")
        # short: slurm and munge sockets live under it (sun_path is 108 bytes)
        self.base = os.path.abspath(base or "/tmp/eh-" + tag)
        self.prefix = prefix or "eh" + tag
        self.groups = list(groups if groups is not None else [NodeGroup("cl", 4)])
        self.subnet = ipaddress.ip_network(subnet)
        if self.subnet.num_addresses < 16:
            raise HarnessError("subnet %s: too small" % subnet)
        self.ctl_addr = str(self.subnet.network_address + 1)
        self.ctl_netns = self.prefix + "-ctl"
        self.ctl_hostname = "slurmctl"
        self.bin_dir = os.path.join(self.base, "bin")
        self.scripts = dict(scripts or {})
        self.programs = {k: self._program_path(v) for k, v in (
            ("ResumeProgram", resume_program), ("SuspendProgram", suspend_program),
            ("ResumeFailProgram", resume_fail_program), ("RebootProgram", reboot_program))}
        self.suspend_time, self.suspend_timeout = suspend_time, suspend_timeout
        self.resume_timeout, self.power_save_interval = resume_timeout, power_save_interval
        self.cloud_reg_addrs, self.reboot_from_controller = cloud_reg_addrs, reboot_from_controller
        self.idle_on_node_suspend, self.enable_configless = idle_on_node_suspend, enable_configless
        # include may name a file under BASE as "@BASE@/..."
        self.include = include.replace("@BASE@", self.base) if include else None
        self.suspend_exc_nodes = suspend_exc_nodes
        if keep is None:   # HARNESS_KEEP=1: keep every test's BASE for a post-mortem
            keep = os.environ.get("HARNESS_KEEP") == "1"
        self.cloud_in_hosts, self.extra_conf, self.keep = cloud_in_hosts, extra_conf, keep
        self.ctld_debug, self.slurmd_debug = ctld_debug, slurmd_debug
        self.boot_delay, self.ctl_port, self.start_timeout = boot_delay, ctl_port, start_timeout
        self.etc = os.path.join(self.base, "etc")
        self.slurm_conf = os.path.join(self.etc, "slurm.conf")
        self.log_dir = os.path.join(self.base, "log")
        self.munge_socket = os.path.join(self.base, "munge", "munge.socket")
        self.node_addr_start = node_addr_start
        self.node_addrs = self._assign_addresses()
        self._children = []       # Popen objects of daemons we started
        self._munged = None
        self._slurmctld = None
        self._started = False
        self._old_handlers = {}

    # ---- set-up --------------------------------------------------------
    def _program_path(self, p):
        """A hook is an absolute path, or the name of one of SCRIPTS (which
        start() writes to BASE/bin with mode 0755)."""
        if p and not os.path.isabs(p) and p in self.scripts:
            return os.path.join(self.bin_dir, p)
        return p

    def _write_scripts(self):
        os.makedirs(self.bin_dir, exist_ok=True)
        for name, text in self.scripts.items():
            if "/" in name:
                raise HarnessError("script name %r: no '/' allowed" % name)
            text = (text.replace("@BASE@", self.base).replace("@HARNESS@", HERE)
                    .replace("@PYTHON@", sys.executable))
            nsutil.write_file(os.path.join(self.bin_dir, name), text, 0o755)

    def _assign_addresses(self):
        addrs, host = {}, self.subnet.network_address + self.node_addr_start
        for g in self.groups:
            for name in g.names():
                if name in addrs:
                    raise HarnessError("node %s is in two groups" % name)
                if host not in self.subnet or host == self.subnet.broadcast_address:
                    raise HarnessError("subnet %s has too few addresses" % self.subnet)
                addrs[name] = str(host)
                host += 1
        return addrs

    def nodes(self, cloud=None):
        return [n for g in self.groups if cloud is None or g.cloud == cloud
                for n in g.names()]

    def render_conf(self):
        params = ["power_save_interval=%d" % self.power_save_interval,
                  "power_save_min_interval=0"]
        for flag, name in ((self.enable_configless, "enable_configless"),
                           (self.cloud_reg_addrs, "cloud_reg_addrs"),
                           (self.reboot_from_controller, "reboot_from_controller"),
                           (self.idle_on_node_suspend, "idle_on_node_suspend")):
            if flag:
                params.insert(0, name)
        programs = ["%s=%s" % (k, v) for k, v in self.programs.items() if v]
        nodes = []
        parts = {}
        for g in self.groups:
            common = "CPUs=%d RealMemory=%d" % (g.cpus, g.memory)
            if g.tmp_disk:
                common += " TmpDisk=%d" % g.tmp_disk
            if g.features:
                common += " Feature=" + g.features
            if g.cloud:
                nodes.append("NodeName=%s %s State=CLOUD" % (g.hostlist(), common))
            else:
                for name in g.names():
                    nodes.append("NodeName=%s NodeAddr=%s NodeHostname=%s %s State=UNKNOWN"
                                 % (name, self.node_addrs[name], name, common))
            parts.setdefault(g.partition, []).append(g.hostlist())
        partitions = ["PartitionName=%s Nodes=%s%s MaxTime=INFINITE State=UP"
                      % (p, ",".join(hl), " Default=YES" if i == 0 else "")
                      for i, (p, hl) in enumerate(parts.items())]
        extra = self.extra_conf
        if self.suspend_exc_nodes:
            extra = "SuspendExcNodes=%s\n%s" % (self.suspend_exc_nodes, extra)
        with open(TEMPLATE) as f:
            tmpl = string.Template(f.read())
        return tmpl.substitute(
            base=self.base, cluster_name="eh", ctl_hostname=self.ctl_hostname,
            ctl_addr=self.ctl_addr, ctl_port=self.ctl_port, slurmd_port=6818,
            ctld_debug=self.ctld_debug, slurmd_debug=self.slurmd_debug,
            ctld_parameters=",".join(params), programs="\n".join(programs),
            suspend_time=self.suspend_time, suspend_timeout=self.suspend_timeout,
            resume_timeout=self.resume_timeout, extra=extra.strip(),
            nodes="\n".join(nodes), partitions="\n".join(partitions),
            include=("Include %s" % self.include) if self.include else "")

    def _write_files(self):
        if os.path.exists(self.base):
            raise HarnessError("base dir %s already exists (another run?)" % self.base)
        for d in ("", "etc", "munge", "state", "spool", "run", "log", "tmp"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        os.chmod(self.base, 0o755)
        self._write_scripts()
        for k, v in self.programs.items():
            if v:
                _check_program(v, k)
        if bool(self.programs["ResumeProgram"]) != bool(self.programs["SuspendProgram"]):
            # slurmctld 22.05 logs "power_save module disabled, NULL
            # SuspendProgram" and never runs the other one either
            raise HarnessError("power saving needs both ResumeProgram and SuspendProgram")
        if self.include and not os.path.exists(self.include):
            nsutil.write_file(self.include, "# elasticd suspend exclusions (empty)\n")
        nsutil.write_file(self.slurm_conf, self.render_conf())
        nsutil.write_file(os.path.join(self.etc, "cgroup.conf"), "")
        hosts = ["127.0.0.1 localhost", "%s %s" % (self.ctl_addr, self.ctl_hostname)]
        for g in self.groups:
            if not g.cloud or self.cloud_in_hosts:
                hosts += ["%s %s" % (self.node_addrs[n], n) for n in g.names()]
        nsutil.write_file(os.path.join(self.etc, "hosts"), "\n".join(hosts) + "\n")
        # "files" only: an unknown name fails at once (Debian's getaddrinfo
        # retries 10 times, 1 s apart) and no DNS query is ever sent
        nsutil.write_file(os.path.join(self.etc, "nsswitch.conf"),
                          "passwd: files\ngroup: files\nshadow: files\nhosts: files\n")

    def _write_state(self):
        state = {"base": self.base, "prefix": self.prefix, "ctl_netns": self.ctl_netns,
                 "bridge": "br0", "subnet": str(self.subnet), "ctl_addr": self.ctl_addr,
                 "slurm_conf": self.slurm_conf, "etc": self.etc,
                 "anchor_pid": self._munged.pid, "boot_delay": self.boot_delay,
                 "slurmd_debug": self.slurmd_debug, "node_addrs": self.node_addrs}
        nsutil.write_file(os.path.join(self.base, "harness.json"),
                          json.dumps(state, indent=1) + "\n")

    def _start_munged(self):
        m = os.path.join(self.base, "munge")
        key = os.path.join(m, "munge.key")
        subprocess.run(["mungekey", "--create", "--keyfile=" + key], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        os.chmod(key, 0o400)
        out = open(os.path.join(m, "munged.stdout"), "ab")
        self._munged = subprocess.Popen(
            ["munged", "--foreground", "--key-file=" + key, "--socket=" + self.munge_socket,
             "--pid-file=" + os.path.join(m, "munged.pid"),
             "--log-file=" + os.path.join(m, "munged.log"),
             "--seed-file=" + os.path.join(m, "munged.seed")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            env=nsutil.clean_env(), start_new_session=True)
        out.close()
        self._children.append(self._munged)
        self._wait(lambda: os.path.exists(self.munge_socket), 10, "munged socket",
                   lambda: self._munged.poll() is None)

    def _start_netns(self):
        nsutil.netns_add(self.ctl_netns)
        n = self.ctl_netns
        nsutil.ip("-n", n, "link", "add", "br0", "type", "bridge")
        nsutil.ip("-n", n, "addr", "add", "%s/%d" % (self.ctl_addr, self.subnet.prefixlen),
                  "dev", "br0")
        nsutil.ip("-n", n, "link", "set", "br0", "up")

    def _start_slurmctld(self):
        out = open(os.path.join(self.log_dir, "slurmctld.stdout"), "ab")
        argv = nsutil.ns_command(self.ctl_netns, self.etc, self.ctl_hostname,
                                 ["slurmctld", "-D", "-i", "-f", self.slurm_conf])
        # cwd: the hooks inherit it; env -i: RebootProgram gets slurmctld's
        # whole environment, so keep it small
        self._slurmctld = subprocess.Popen(
            argv, cwd=self.base, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            env=nsutil.clean_env(SLURM_CONF=self.slurm_conf), start_new_session=True)
        out.close()
        self._children.append(self._slurmctld)
        nsutil.write_file(os.path.join(self.base, "run", "harness-slurmctld.pid"),
                          "%d\n" % self._slurmctld.pid)

        def up():
            p = self.run("scontrol", "ping", timeout=10)
            return "UP" in p.stdout
        self._wait(up, self.start_timeout, "slurmctld to answer scontrol ping",
                   lambda: self._slurmctld.poll() is None,
                   os.path.join(self.log_dir, "slurmctld.log"))

    def start(self):
        t0 = time.monotonic()
        self._install_signal_handlers()
        atexit.register(self.stop)
        self._started = True
        try:
            self._write_files()
            self._start_munged()
            self._write_state()
            self._start_netns()
            self._start_slurmctld()
            static = self.nodes(cloud=False)
            for name in static:
                self.instance_up(name, boot_delay=0)
            if static:
                self.wait_for(lambda: all(self.node_state(n).startswith("IDLE")
                                          for n in static),
                              self.start_timeout, "static nodes to become idle")
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    # ---- using it ------------------------------------------------------
    def ctl_command(self, argv, env=None):
        """argv running ARGV in the controller's netns, with our SLURM_CONF."""
        return nsutil.ns_command(self.ctl_netns, self.etc, "-",
                                 ["env", "SLURM_CONF=" + self.slurm_conf] +
                                 ["%s=%s" % kv for kv in (env or {}).items()] + list(argv))

    def run(self, *argv, check=False, timeout=60, env=None, input=None):
        """Run a client (sinfo, sbatch, scontrol, ...) in the controller ns.
        Returns CompletedProcess with text stdout/stderr."""
        p = subprocess.run(self.ctl_command(argv, env), input=input, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           env=nsutil.clean_env(), timeout=timeout, cwd=self.base)
        if check and p.returncode != 0:
            raise HarnessError("%s: exit %d: %s" % (" ".join(argv), p.returncode,
                                                    p.stderr.strip()))
        return p

    def spawn(self, argv, log, env=None):
        """Start a long-running program (e.g. elasticd) in the controller ns,
        detached, output to LOG.  stop() ends it; so may stop_process()."""
        out = open(log, "ab")
        p = subprocess.Popen(self.ctl_command(argv, env), stdin=subprocess.DEVNULL,
                             stdout=out, stderr=out, env=nsutil.clean_env(),
                             start_new_session=True, cwd=self.base)
        out.close()
        self._children.append(p)
        return p

    def stop_process(self, p, timeout=5.0):
        if p.poll() is None:
            nsutil.stop_pids([p.pid], timeout, reap=self._reap)
        self._reap()
        return p.returncode

    def node_info(self, name):
        """`scontrol -o show node NAME` as a dict ({} if unknown)."""
        p = self.run("scontrol", "-o", "show", "node", name)
        info = {}
        if p.returncode != 0:
            return info
        for tok in p.stdout.strip().split(" "):
            k, sep, v = tok.partition("=")
            if sep and k not in info:
                info[k] = v
        return info

    def node_state(self, name):
        """Full state string, e.g. IDLE+CLOUD+POWERED_DOWN ("" if unknown)."""
        return self.node_info(name).get("State", "")

    def sinfo_states(self):
        """{node: sinfo's short state (idle~, alloc#, ...)} for every node."""
        p = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=True)
        return dict(line.split() for line in p.stdout.splitlines() if line.strip())

    def job_state(self, job_id):
        p = self.run("scontrol", "-o", "show", "job", str(job_id))
        for tok in p.stdout.split():
            if tok.startswith("JobState="):
                return tok.split("=", 1)[1]
        return ""

    def sbatch(self, *args):
        """Submit; return the job id."""
        p = self.run("sbatch", "--parsable", *args, check=True)
        return int(p.stdout.strip().split(";")[0])

    def instance_up(self, name, addr=None, service="slurmd", boot_delay=None, wait=False):
        return instance_mod.up(self.base, name, addr=addr, service=service,
                               boot_delay=boot_delay, wait=wait)

    def instance_down(self, name):
        return instance_mod.down(self.base, name)

    def instance_netns(self, name):
        return instance_mod.netns_name(self.prefix, name)

    def log(self, name="slurmctld.log"):
        try:
            with open(os.path.join(self.log_dir, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_for(self, cond, timeout=30.0, what="condition"):
        """Poll COND every 0.1 s; return its first true value, or raise
        HarnessError naming WHAT after TIMEOUT seconds."""
        return self._wait(cond, timeout, what)

    def _wait(self, cond, timeout, what, still_ok=None, logfile=None):
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            if still_ok and not still_ok():
                tail = ""
                if logfile and os.path.exists(logfile):
                    tail = "\n" + "".join(open(logfile, errors="replace").readlines()[-20:])
                raise HarnessError("died while waiting for %s%s" % (what, tail))
            if time.monotonic() >= deadline:
                raise HarnessError("timed out after %.0f s waiting for %s" % (timeout, what))
            time.sleep(0.1)

    # ---- tear-down -----------------------------------------------------
    def _reap(self):
        for p in self._children:
            p.poll()

    def our_netns(self):
        return _netns_with_prefix(self.prefix)

    def stop(self):
        """Stop everything this cluster started; idempotent."""
        if not self._started:
            return
        self._started = False
        # a second signal must not cut the tear-down short
        self._restore_signal_handlers()
        held = {}
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            try:
                held[s] = signal.signal(s, signal.SIG_IGN)
            except ValueError:
                pass
        try:
            self._reap()   # a pid of a child already reaped may be reused: skip those
            _teardown(self.prefix, self.ctl_netns,
                      self._slurmctld.pid if self._slurmctld and
                      self._slurmctld.returncode is None else None,
                      [p.pid for p in self._children
                       if p not in (self._munged, self._slurmctld) and p.returncode is None],
                      self._munged.pid if self._munged and
                      self._munged.returncode is None else None,
                      self._reap)
            self._reap()
            if not self.keep:
                shutil.rmtree(self.base, ignore_errors=True)
        finally:
            for s, h in held.items():
                signal.signal(s, h)
            try:
                atexit.unregister(self.stop)
            except Exception:
                pass

    def _install_signal_handlers(self):
        def handler(signum, frame):
            # unwinds through `with` / try-finally, which calls stop()
            raise SystemExit(128 + signum)
        for s in (signal.SIGTERM, signal.SIGHUP):
            try:
                self._old_handlers[s] = signal.signal(s, handler)
            except ValueError:
                pass  # not the main thread: the caller handles signals

    def _restore_signal_handlers(self):
        for s, h in self._old_handlers.items():
            try:
                signal.signal(s, h)
            except ValueError:
                pass
        self._old_handlers = {}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _netns_with_prefix(prefix):
    try:
        names = os.listdir(nsutil.NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix + "-"))


def _teardown(prefix, ctl_netns, slurmctld_pid, other_pids, munged_pid, reap=None):
    """Instances first (slurmd, slurmstepd, jobs), then slurmctld by its pid,
    then whatever else lives in the controller ns (slurmscriptd, hooks,
    daemons started with spawn()) or was started by us, munged last; then
    delete the netns."""
    for ns in _netns_with_prefix(prefix):
        if ns != ctl_netns:
            nsutil.stop_netns_processes(ns, reap=reap)
    if slurmctld_pid:
        nsutil.stop_pids([slurmctld_pid], reap=reap)
    nsutil.stop_netns_processes(ctl_netns, reap=reap)
    nsutil.stop_pids(other_pids, reap=reap)
    if munged_pid:
        nsutil.stop_pids([munged_pid], reap=reap)
    for ns in _netns_with_prefix(prefix):
        nsutil.netns_delete(ns)


def cleanup(base):
    """Tear down the cluster in BASE left behind by a test process that was
    killed with SIGKILL (what stop() would have done), and remove BASE."""
    state = instance_mod.load_state(base)
    munged = state["anchor_pid"]
    try:
        with open("/proc/%d/cmdline" % munged, "rb") as f:
            mine = (base + "/munge/").encode() in f.read()
    except OSError:
        mine = False
    _teardown(state["prefix"], state["ctl_netns"], None, [],
              munged if mine and nsutil.comm(munged) == "munged" else None)
    shutil.rmtree(base, ignore_errors=True)


def main(argv):
    if len(argv) != 3 or argv[1] != "cleanup":
        print("usage: slurmcluster.py cleanup BASE   (tear down a cluster whose test was killed)",
              file=sys.stderr)
        return 64
    try:
        cleanup(os.path.abspath(argv[2]))
    except (instance_mod.InstanceError, OSError, RuntimeError) as e:
        print("slurmcluster.py cleanup: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
