"""The real Slurm cluster of tests/harness with elasticd against the real
control plane (controlplane.py) in place of the emulator.

Order: the cluster first (its controller netns exists in seconds), then this
process moves into that netns (setns), so the control plane started after it
listens on the controller's 127.0.0.1: elasticd, run there beside slurmctld,
reaches both, and nothing listens on the machine's own loopback. Nova's fake
driver (fake_driver.py) runs tests/harness/instance.py emu-hook as a server
boots, reboots or goes away, like the emulator's boot hook: each node's
slurmd runs in an instance netns on the cluster's bridge at the address this
stack assigned to its name (REALCLOUD_FAKE_KNOBS "addresses"), the address
Nova then shows under the server's "addresses". leave() moves back to the
root netns before the cluster stops (it ends every process in its netns).
"""
import ctypes
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "harness"))
sys.path.insert(0, os.path.join(TESTS, "lifecycle"))
import nsutil  # noqa: E402
from slurmcluster import NodeGroup, SlurmCluster  # noqa: E402
from stack import ELASTICCTL, ELASTICD, HOOKS, WRAPPER  # noqa: E402

INSTANCE = os.path.join(TESTS, "harness", "instance.py")
CLONE_NEWNET = 0x40000000

CONFIG = """\
cluster: {cluster}
cloud: realcloud-demo
clouds_file: {clouds}
state_dir: {base}/elasticd/state
socket:
  path: {base}/elasticd.sock
  mode: "0600"
slurm:
  conf: {slurm_conf}
  user: root
  suspend_exclude_file: {base}/etc/elasticd-suspend-exc.conf
limits:
  api_timeout: 120s
  active_timeout: 150s
  resume_timeout: 180s
  reconcile_interval: 5s
  orphan_grace: 5s
groups:
  - name: rcn
    nodes: "{nodes}"
    flavor: small
    image: tiny
    networks: [none]
  - name: rch
    nodes: "{huge}"
    flavor: huge
    image: tiny
    networks: [none]
"""


def setns(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns %s: %s" % (path, os.strerror(e)))
    finally:
        os.close(fd)


class RealStack:
    def __init__(self, nodes=7, suspend_time=600):
        self.group = NodeGroup("rcn", nodes)
        self.huge = NodeGroup("rch", 1, partition="huge")
        hooks = {h: WRAPPER % os.path.join(os.path.dirname(ELASTICCTL), h) for h in HOOKS}
        self.c = SlurmCluster(groups=[self.group, self.huge], scripts=hooks,
                              resume_program="elastic-resume", suspend_program="elastic-suspend",
                              resume_fail_program="elastic-resume-fail",
                              reboot_program="elastic-reboot", suspend_time=suspend_time,
                              suspend_timeout=5, resume_timeout=180,
                              include="@BASE@/etc/elasticd-suspend-exc.conf", power_save_interval=1)
        self.daemon = None
        self.root_ns = None
        # The nodes' addresses: the cluster's subnet, above its own (.1, .10 up).
        self.addresses = {n: "10.77.0.%d" % (200 + i) for i, n in
                          enumerate(self.group.names() + self.huge.names())}

    @property
    def base(self):
        return self.c.base

    @property
    def sock(self):
        return os.path.join(self.base, "elasticd.sock")

    @property
    def knobs_path(self):
        return os.path.join(self.base, "realcloud-knobs.json")

    def fake_env(self):
        """nova-compute's environment for fake_driver.py."""
        return {"REALCLOUD_FAKE_KNOBS": self.knobs_path,
                "REALCLOUD_FAKE_HOOK": "%s %s emu-hook --base %s" % (sys.executable, INSTANCE, self.base)}

    def knobs(self, **k):
        """Change the fake driver's knobs (read at each spawn/reboot/destroy)."""
        cur = {"addresses": self.addresses}
        try:
            with open(self.knobs_path) as f:
                cur.update(json.load(f))
        except FileNotFoundError:
            pass
        cur.update(k)
        tmp = self.knobs_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(cur, f)
        os.rename(tmp, self.knobs_path)

    def enter(self):
        """Start the cluster and move this process into its controller netns."""
        self.c.start()
        self.knobs()
        self.root_ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        setns(nsutil.netns_path(self.c.ctl_netns))

    def leave(self):
        if self.root_ns is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.setns(self.root_ns, CLONE_NEWNET)
            os.close(self.root_ns)
            self.root_ns = None

    def start_daemon(self, clouds_yaml):
        edir = os.path.join(self.base, "elasticd")
        os.makedirs(os.path.join(edir, "state"), mode=0o700, exist_ok=True)
        self.conf = os.path.join(edir, "elasticd.yaml")
        nsutil.write_file(self.conf, CONFIG.format(
            cluster="rc%d" % os.getpid(), clouds=clouds_yaml, base=self.base,
            slurm_conf=self.c.slurm_conf, nodes=self.group.hostlist(), huge=self.huge.hostlist()), 0o600)
        self.restart_daemon()

    def restart_daemon(self):
        self.daemon = self.c.spawn([ELASTICD, "-c", self.conf, "-d"],
                                   os.path.join(self.c.log_dir, "elasticd.log"))
        self.c.wait_for(lambda: self.daemon.poll() is not None or
                        self.c.run(ELASTICCTL, "-s", self.sock, "ping", timeout=10).returncode == 0,
                        60, "elasticd to answer ping")
        if self.daemon.poll() is not None:
            raise RuntimeError("elasticd exited: " + self.c.log("elasticd.log")[-3000:])

    def kill_daemon(self):
        os.kill(self.daemon.pid, 9)
        self.daemon.wait(10)

    def stop(self):
        self.leave()
        self.c.stop()

    def ctl(self, *args):
        p = self.c.run(ELASTICCTL, "-s", self.sock, "--json", *args, timeout=30)
        try:
            return json.loads(p.stdout) if p.stdout.strip() else None
        except ValueError:
            return None

    def nodes(self):
        out = self.ctl("nodes")
        return {n["name"]: n for n in (out or {}).get("nodes", [])}

    def state(self, node):
        return self.c.node_state(node)

    def usable(self, node):
        st = self.state(node)
        return "IDLE" in st and not any(w in st for w in ("POWER", "NOT_RESPONDING", "REBOOT",
                                                           "DOWN", "DRAIN"))

    def reason(self, node):
        return self.c.run("sinfo", "-h", "-N", "-n", node, "-o", "%E").stdout.strip()
