"""The whole product on one machine: a real Slurm cluster in namespaces
(tests/harness), the OpenStack emulator (tests/emulator) whose boot hook
turns each server into an instance namespace running slurmd, and the real
elasticd with its hooks wired into slurm.conf.

Everything runs in the cluster's controller network namespace (slurmctld,
the emulator on its loopback, elasticd), so no address is ever configured
outside namespaces the stack created.  Used by the lifecycle tests and by
scripts/demo."""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "harness"))
sys.path.insert(0, os.path.join(TESTS, "emulator"))
import nsutil  # noqa: E402
from slurmcluster import HarnessError, NodeGroup, SlurmCluster  # noqa: E402

BUILD = os.environ.get("ELASTICD_BUILD_ROOT",
                       os.path.join(os.path.dirname(TESTS), "build"))
ELASTICD = os.environ.get("ELASTICD") or os.path.join(BUILD, "daemon", "elasticd")
ELASTICCTL = os.environ.get("ELASTICCTL") or os.path.join(BUILD, "daemon", "elasticctl")
EMULATOR = os.path.join(TESTS, "emulator", "emulator.py")
INSTANCE = os.path.join(TESTS, "harness", "instance.py")
NETWORK_ID = "4b6b1e2c-2f7e-4c5a-9d3b-8e1f0a2b3c4d"
# The group names its network: every create resolves it through Neutron first
# (the emulator's Nova refuses anything but the id).
NETWORK_NAME = "private"

# slurmctld runs hooks with an empty environment: name the private socket here.
WRAPPER = """#!/bin/sh
ELASTICD_SOCKET=@BASE@/elasticd.sock; export ELASTICD_SOCKET
exec %s "$@"
"""

# push=True: instances run only sshd; elasticd logs in with this key, checks
# the host key against the console, and starts slurmd itself.
PUSH = """\
    ssh:
      private_key: {base}/elasticd/node_key
      connect_timeout: 2s
      console_poll: 1s
      commands:
        - 'SLURM_CONF={slurm_conf} slurmd -N "$(hostname)" -f {slurm_conf}'
"""

HOOKS = ("elastic-resume", "elastic-suspend", "elastic-resume-fail", "elastic-reboot")

CONFIG = """\
cluster: {cluster}
cloud: emulator
clouds_file: {base}/elasticd/clouds.yaml
state_dir: {base}/elasticd/state
socket:
  path: {base}/elasticd.sock
  mode: "0600"
slurm:
  conf: {slurm_conf}
  user: root
  suspend_exclude_file: {base}/etc/elasticd-suspend-exc.conf
limits:
  active_timeout: {resume_deadline}s
  resume_timeout: {resume_deadline}s
  reconcile_interval: {reconcile}s
  orphan_grace: {orphan_grace}s
{limits_extra}groups:
  - name: cloud
    nodes: "{nodes}"
    flavor: small
    image: tiny
    networks: ["{network}"]
{group_extra}{more_groups}"""

CLOUDS = """\
clouds:
  emulator:
    auth_type: password
    auth:
      auth_url: http://127.0.0.1:{port}/v3
      username: demo
      password: demo
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
"""


class Stack:
    def __init__(self, nodes=4, prefix="cl", suspend_time=20, resume_timeout=120,
                 build_delay=1.0, emu_args=(), elasticd_args=(), wrapper=None,
                 resume_deadline=None, reconcile=30, orphan_grace=30, group_extra="",
                 debug=True, boot_delay=None, service=None, push=False, more_groups=(),
                 limits_extra="", pool=range(200, 250)):
        """more_groups: (prefix, count, yaml[, partition]) for further
        elasticd groups, in partition "cloud" unless named; yaml holds the
        group's keys after its nodes (flavor, image, networks), indented by
        four spaces. limits_extra: more lines under limits:, indented by two."""
        self.group = NodeGroup(prefix, nodes)
        self.more_groups = [(NodeGroup(g[0], g[1], partition=g[3] if len(g) > 3 else None), g[2])
                            for g in more_groups]
        self.limits_extra = limits_extra
        self.pool = pool
        hooks = {h: WRAPPER % os.path.join(os.path.dirname(ELASTICCTL), h) for h in HOOKS}
        self.c = SlurmCluster(groups=[self.group] + [g for g, _ in self.more_groups], scripts=hooks,
                              resume_program="elastic-resume", suspend_program="elastic-suspend",
                              resume_fail_program="elastic-resume-fail",
                              reboot_program="elastic-reboot",
                              suspend_time=suspend_time, resume_timeout=resume_timeout,
                              include="@BASE@/etc/elasticd-suspend-exc.conf",
                              power_save_interval=1)
        self.build_delay = build_delay
        self.emu_args = list(emu_args)
        self.elasticd_args = list(elasticd_args)
        self.wrapper = wrapper or []
        self.resume_deadline = resume_deadline or resume_timeout
        self.reconcile = reconcile
        self.orphan_grace = orphan_grace
        self.group_extra = group_extra
        self.debug = debug
        self.boot_delay = boot_delay
        self.service = service       # the instances' service: slurmd (default) or sshd
        self.push = push
        if push:
            self.service = "sshd"
        self.emulator = None
        self.daemon = None
        self.port = None

    # ---- start / stop ----------------------------------------------------
    @property
    def base(self):
        return self.c.base

    @property
    def sock(self):
        return os.path.join(self.c.base, "elasticd.sock")

    @property
    def conf(self):
        return os.path.join(self.c.base, "elasticd", "elasticd.yaml")

    def start(self):
        c = self.c
        c.start()
        edir = os.path.join(c.base, "elasticd")
        os.makedirs(os.path.join(edir, "state"), mode=0o700, exist_ok=True)
        # Servers get addresses on the cluster's subnet, above the configured nodes'.
        pool = ",".join("10.77.0.%d" % i for i in self.pool)
        hook = "%s %s emu-hook --base %s" % (sys.executable, INSTANCE, c.base)
        if self.boot_delay is not None:
            hook += " --boot-delay %s" % self.boot_delay
        if self.service:
            hook += " --service %s" % self.service
        portfile = os.path.join(edir, "emulator.port")
        self.emulator = c.spawn([sys.executable, EMULATOR, "--port", "0", "--port-file", portfile,
                                 "--address-pool", pool, "--build-delay", str(self.build_delay),
                                 "--delete-delay", "0.2", "--boot-hook", hook, "--delete-hook", hook,
                                 "--reboot-hook", hook] + self.emu_args,
                                os.path.join(c.log_dir, "emulator.log"))
        c.wait_for(lambda: os.path.exists(portfile) and open(portfile).read().strip(), 20,
                   "the emulator's port")
        with open(portfile) as f:
            self.port = int(f.read())
        nsutil.write_file(os.path.join(edir, "clouds.yaml"), CLOUDS.format(port=self.port), 0o600)
        if self.push:
            import subprocess
            key = os.path.join(edir, "node_key")
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "elasticd", "-f", key],
                           check=True, stdin=subprocess.DEVNULL)
            os.makedirs(os.path.join(c.base, "ssh"), mode=0o700, exist_ok=True)
            with open(key + ".pub") as src, open(os.path.join(c.base, "ssh", "authorized_keys"), "w") as dst:
                dst.write(src.read())
            self.group_extra = PUSH.format(base=c.base, slurm_conf=c.slurm_conf) + self.group_extra
        nsutil.write_file(self.conf, CONFIG.format(
            cluster="t%d" % os.getpid(), base=c.base, slurm_conf=c.slurm_conf,
            nodes=self.group.hostlist(), network=NETWORK_NAME, resume_deadline=self.resume_deadline,
            reconcile=self.reconcile, orphan_grace=self.orphan_grace,
            group_extra=self.group_extra, limits_extra=self.limits_extra,
            more_groups="".join("  - name: %s\n    nodes: \"%s\"\n%s" % (g.prefix, g.hostlist(), y)
                                for g, y in self.more_groups)), 0o600)
        self.start_daemon()
        return self

    def start_daemon(self):
        argv = self.wrapper + [ELASTICD, "-c", self.conf] + (["-d"] if self.debug else [])
        self.daemon = self.c.spawn(argv + self.elasticd_args,
                                   os.path.join(self.c.log_dir, "elasticd.log"))
        self.c.wait_for(lambda: self.daemon.poll() is not None or
                        self.c.run(ELASTICCTL, "-s", self.sock, "ping", timeout=10).returncode == 0,
                        60, "elasticd to answer ping")
        if self.daemon.poll() is not None:
            raise HarnessError("elasticd exited: " + self.log("elasticd.log")[-3000:])

    def kill_daemon(self, sig=9):
        os.kill(self.daemon.pid, sig)
        self.daemon.wait(10)

    def stop_daemon(self):
        return self.c.stop_process(self.daemon, timeout=20)

    def stop(self):
        self.c.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- talking to things -------------------------------------------------
    def log(self, name="slurmctld.log"):
        return self.c.log(name)

    def ctl(self, *args, timeout=30):
        """elasticctl --json ARGS: (exit code, parsed JSON or None, stderr)."""
        p = self.c.run(ELASTICCTL, "-s", self.sock, "--json", *args, timeout=timeout)
        try:
            out = json.loads(p.stdout) if p.stdout.strip() else None
        except ValueError:
            out = None
        return p.returncode, out, p.stderr

    def nodes(self):
        rc, out, _ = self.ctl("nodes")
        if rc != 0 or not isinstance(out, dict):
            return {}
        return {n["name"]: n for n in out.get("nodes", [])}

    def emu(self, method, path, body=None):
        """A call to the emulator's control API (it listens in the controller ns)."""
        code = ("import json,sys,urllib.request as u\n"
                "d=sys.stdin.read()\n"
                "r=u.Request(sys.argv[1],data=d.encode() if d else None,method=sys.argv[2],"
                "headers={'Content-Type':'application/json'})\n"
                "print(u.urlopen(r,timeout=30).read().decode())\n")
        url = "http://127.0.0.1:%d/_emulator/%s" % (self.port, path.lstrip("/"))
        p = self.c.run(sys.executable, "-c", code, url, method,
                       input=json.dumps(body) if body is not None else "", timeout=60)
        if p.returncode != 0:
            raise HarnessError("emulator %s %s: %s" % (method, path, p.stderr.strip()[-500:]))
        return json.loads(p.stdout)

    def servers(self, live=True):
        """The emulator's servers (deleted ones too unless live)."""
        out = self.emu("GET", "servers")["servers"]
        return [s for s in out if not live or s.get("status") not in ("DELETED",)]

    def emu_config(self, **knobs):
        return self.emu("POST", "config", knobs)

    def wait_for(self, cond, timeout, what):
        return self.c.wait_for(cond, timeout, what)

    def state(self, node):
        return self.c.node_state(node)

    def journal(self):
        recs = []
        d = os.path.join(self.base, "elasticd", "state")
        for f in sorted(os.listdir(d)):
            if not f.endswith(".jsonl") and "journal" not in f:
                continue
            with open(os.path.join(d, f), errors="replace") as fh:
                for line in fh:
                    try:
                        recs.append(json.loads(line))
                    except ValueError:
                        pass
        return recs


def preflight(*programs):
    """Skip the whole test (TAP "1..0 # SKIP") unless we are root and
    elasticd, elasticctl and PROGRAMS exist."""
    from tap import skip_all
    if os.geteuid() != 0:
        skip_all("needs root (network namespaces)")
    for prog in (ELASTICD, ELASTICCTL) + programs:
        if not os.access(prog, os.X_OK):
            skip_all("%s not available" % prog)


def ours(servers):
    """The emulator's servers that carry elasticd's node metadata."""
    return [x for x in servers if (x.get("metadata") or {}).get("elasticd_node")]


def elapsed(t0):
    return "%.1f s" % (time.monotonic() - t0)
