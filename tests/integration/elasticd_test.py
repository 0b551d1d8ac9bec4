"""Helpers for the integration tests: a private elasticd (config, socket,
state dir, log in a temp dir of its own) and a wire-protocol client.

Paths come from the environment meson sets: ELASTICD (the daemon binary),
ELASTICCTL (the client, when built)."""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

ELASTICD = os.environ.get("ELASTICD", "")
ELASTICCTL = os.environ.get("ELASTICCTL", "")

BASE_CONFIG = """\
cluster: itest
cloud: itest
clouds_file: {clouds_file}
state_dir: {state_dir}
socket:
  path: {socket}
  mode: "{mode}"
  group: {socket_group}
slurm:
  conf: {slurm_conf}
  user: {slurm_user}
admin_group: {admin_group}
limits:
  max_frame_bytes: {max_frame}
  max_clients: {max_clients}
  max_hostlist_nodes: {max_nodes}
{extra_limits}groups:
{groups}
"""

GROUP = """\
  - name: {name}
    nodes: "{nodes}"
    flavor: m1.small
    image: debian-12
    networks: auto
"""


# No cloud answers these tests: port 9 (discard) refuses at once, so the
# lifecycle's calls fail fast and are retried; the requests stay journalled.
CLOUDS = """\
clouds:
  itest:
    auth:
      auth_url: http://127.0.0.1:9/v3
      username: itest
      password: not-a-secret
      project_name: itest
      user_domain_name: Default
      project_domain_name: Default
"""


def clouds_file(tmp):
    path = os.path.join(tmp, "clouds.yaml")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(CLOUDS)
    return path


# No slurmctld either: libslurm parses this, and RPCs to it fail at once.
SLURM_CONF = """\
ClusterName=itest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=9
AuthType=auth/none
NodeName=cl[1-16] CPUs=1 State=CLOUD
PartitionName=cloud Nodes=cl[1-16]
"""


def slurm_conf(tmp):
    path = os.path.join(tmp, "slurm.conf")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(SLURM_CONF)
    return path


def config_text(tmp, groups=(("g", "cl[1-16]"),), mode="0660", socket_group="null", slurm_user="slurm",
                admin_group="root", max_frame=65536, max_clients=8, max_nodes=2048, extra_limits=None):
    return BASE_CONFIG.format(
        clouds_file=clouds_file(tmp), slurm_conf=slurm_conf(tmp),
        state_dir=os.path.join(tmp, "state"), socket=os.path.join(tmp, "run", "elasticd.sock"),
        mode=mode, socket_group=socket_group, slurm_user=slurm_user, admin_group=admin_group, max_frame=max_frame,
        max_clients=max_clients, max_nodes=max_nodes,
        extra_limits="".join("  %s: %s\n" % kv for kv in (extra_limits or {}).items()),
        groups="".join(GROUP.format(name=n, nodes=h) for n, h in groups))


class TAP:
    """Runs test functions and prints one TAP line each."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def run(self, fn, *args):
        self.n += 1
        try:
            fn(*args)
        except Exception:  # a failed check or an unexpected error: both fail the case
            self.failed += 1
            for line in traceback.format_exc().splitlines():
                print("# " + line)
            print("not ok %d - %s" % (self.n, fn.__name__))
        else:
            print("ok %d - %s" % (self.n, fn.__name__))
        sys.stdout.flush()

    def skip(self, name, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why))

    def done(self):
        print("1..%d" % self.n)
        return 1 if self.failed else 0


def check(cond, msg=""):
    if not cond:
        raise AssertionError(msg)


def frame(obj):
    body = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
    return struct.pack(">I", len(body)) + body


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def read_reply(s):
    n = struct.unpack(">I", recv_exact(s, 4))[0]
    return json.loads(recv_exact(s, n))


def connect(path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def request(path, obj, timeout=10):
    with connect(path, timeout) as s:
        s.sendall(frame(obj))
        return read_reply(s)


def req(type_, **fields):
    d = {"version": 1, "type": type_}
    d.update(fields)
    return d


# A client run under another uid: same protocol, separate process.
CLIENT_SNIPPET = r"""
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"connect_error": str(e)})); sys.exit(0)
b = sys.argv[2].encode(); s.sendall(struct.pack(">I", len(b)) + b)
def rx(n):
    d = b""
    while len(d) < n:
        c = s.recv(n - len(d))
        if not c: raise SystemExit("EOF")
        d += c
    return d
n = struct.unpack(">I", rx(4))[0]
print(rx(n).decode())
"""


def request_as(uid, gid, path, obj):
    # The system python: another uid may not reach a python under /root.
    py = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
    out = subprocess.run([py, "-c", CLIENT_SNIPPET, path, json.dumps(obj)],
                         user=uid, group=gid, extra_groups=[], capture_output=True, text=True,
                         timeout=20, check=True)
    return json.loads(out.stdout)


class Daemon:
    """One elasticd with a private config, socket, state dir and log."""

    def __init__(self, tmp, config=None, wrapper=(), env=None, args=()):
        self.tmp = tmp
        self.config = os.path.join(tmp, "elasticd.yaml")
        self.socket = os.path.join(tmp, "run", "elasticd.sock")
        self.state_dir = os.path.join(tmp, "state")
        self.logpath = os.path.join(tmp, "elasticd.log")
        self.wrapper = list(wrapper)
        self.env = env
        self.args = list(args)
        self.proc = None
        if config is not None:
            self.write_config(config)

    def write_config(self, text):
        with open(self.config + ".new", "w") as f:
            f.write(text)
        os.rename(self.config + ".new", self.config)

    def start(self, wait=True, timeout=30):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("LISTEN_FDS", None)
        if self.env:
            env.update(self.env)
        self.logf = open(self.logpath, "a")
        self.proc = subprocess.Popen(self.wrapper + [ELASTICD, "-c", self.config, "-d"] + self.args,
                                     stdout=self.logf, stderr=self.logf, env=env)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("elasticd exited with %s:\n%s" % (self.proc.returncode, self.log()))
            try:
                r = request(self.socket, req("ping"), timeout=5)
                if r.get("ok"):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("elasticd did not answer within %ss:\n%s" % (timeout, self.log()))

    def ask(self, type_, **fields):
        return request(self.socket, req(type_, **fields))

    def nodes(self):
        r = self.ask("nodes")
        check(r["ok"], r)
        return {n["name"]: n for n in r["result"]["nodes"]}

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError("elasticd did not exit within %ss after %s" % (timeout, sig))
        finally:
            self.logf.close()
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.logf.close()

    def log(self):
        try:
            with open(self.logpath) as f:
                return f.read()
        except OSError:
            return ""

    def journal_bytes(self):
        total = 0
        for name in os.listdir(self.state_dir):
            p = os.path.join(self.state_dir, name)
            if os.path.isfile(p):
                total += os.path.getsize(p)
        return total

    def journal_files(self):
        return [os.path.join(self.state_dir, n) for n in os.listdir(self.state_dir)
                if os.path.isfile(os.path.join(self.state_dir, n)) and "journal" in n and
                not n.endswith(".lock")]


def make_tmp(tag):
    """A temp dir everybody may traverse (0755), unique per run."""
    d = tempfile.mkdtemp(prefix="elasticd-%s-%d-" % (tag, os.getpid()), dir="/tmp")
    os.chmod(d, 0o755)
    return d


def cleanup(tmp):
    shutil.rmtree(tmp, ignore_errors=True)
