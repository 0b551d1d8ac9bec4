#!/usr/bin/env python3
"""End to end: a real slurmctld whose ResumeProgram is elastic-resume talks to
a real elasticd.  A job submitted to a powered-down CLOUD node makes
slurmctld run the hook, and elasticd records a resume operation for that node
(journalled, visible in `elasticctl nodes`).  The node does not come up here
(no cloud behind this daemon): that is the lifecycle work's test.

Why a wrapper script as ResumeProgram: slurmctld runs hooks with an empty
environment (only SLURM_CONF, SLURM_RESUME_FILE, SLURM_JOB_ID), so a test
cannot point elastic-resume at its private socket from the outside, and the
built-in default (meson option socket_path, /run/elasticd/elasticd.sock) is
shared by everyone on the machine.  BASE/bin/elastic-resume (mode 0755, as
slurmctld requires) is therefore
    #!/bin/sh
    ELASTICD_SOCKET=BASE/elasticd.sock; export ELASTICD_SOCKET
    exec BUILD/daemon/elastic-resume "$@"
In hook mode elasticctl takes its arguments exactly as slurmctld passes them
(no options: `-s` would be taken for the hostlist), but it does honour
ELASTICD_SOCKET; exec keeps argv[0] = .../elastic-resume, which is how
elasticctl knows it runs as the resume hook."""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "harness"))
import nsutil  # noqa: E402
from slurmcluster import HarnessError, NodeGroup, SlurmCluster  # noqa: E402
from tap import Tap, skip_all  # noqa: E402

BUILD = os.environ.get("ELASTICD_BUILD_ROOT", os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                                           "build"))
ELASTICD = os.environ.get("ELASTICD") or os.path.join(BUILD, "daemon", "elasticd")
ELASTICCTL = os.environ.get("ELASTICCTL") or os.path.join(BUILD, "daemon", "elasticctl")
HOOK_DIR = os.path.dirname(ELASTICCTL)

WRAPPER = """#!/bin/sh
# slurmctld gives hooks no environment: name elasticd's private socket here
ELASTICD_SOCKET=@BASE@/elasticd.sock; export ELASTICD_SOCKET
exec %s "$@"
"""


def wrapper(hook):
    return WRAPPER % os.path.join(HOOK_DIR, hook)

CONFIG = """\
cluster: e2e{tag}
cloud: e2e
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
  reconcile_interval: 1h
# nothing listens there: every cloud call fails at once, inside our netns
endpoints:
  compute: http://127.0.0.1:9/compute
  image: http://127.0.0.1:9/image
  identity: http://127.0.0.1:9/identity
groups:
  - name: cloud
    nodes: "cl[1-4]"
    flavor: m1.small
    image: debian-12
    networks: auto
"""

CLOUDS = """\
clouds:
  e2e:
    auth:
      auth_url: http://127.0.0.1:9/identity/v3
      username: e2e
      password: not-a-secret
      project_name: e2e
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
"""


def ctl_json(c, *args):
    p = c.run(ELASTICCTL, "-s", os.path.join(c.base, "elasticd.sock"), "--json", *args,
              timeout=20)
    try:
        return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None, p
    except ValueError:
        return p.returncode, None, p


def journal_records(state_dir):
    """Every JSON object in the state dir's journal files (JSON lines)."""
    recs = []
    for root, _, files in os.walk(state_dir):
        for f in sorted(files):
            try:
                with open(os.path.join(root, f), errors="replace") as fh:
                    for line in fh:
                        line = line.strip()
                        if line.startswith("{"):
                            try:
                                recs.append(json.loads(line))
                            except ValueError:
                                pass
            except OSError:
                pass
    return recs


def find_node(nodes_result, name):
    if not isinstance(nodes_result, dict):
        return None
    lst = nodes_result.get("nodes", nodes_result.get("result", {}).get("nodes")
                           if isinstance(nodes_result.get("result"), dict) else None)
    for n in lst or []:
        if isinstance(n, dict) and n.get("name") == name:
            return n
    return None


def daemon_log_tail(c):
    """elasticd's log without the chatter of our own polling."""
    lines = [l for l in c.log("elasticd.log").splitlines()
             if "Client connected" not in l and " from uid " not in l]
    return "\n".join(lines[-30:])


def main():
    if os.geteuid() != 0:
        skip_all("needs root (network namespaces)")
    hook = os.path.join(HOOK_DIR, "elastic-resume")
    for prog in (ELASTICD, ELASTICCTL, hook):
        if not os.access(prog, os.X_OK):
            skip_all("%s not built" % prog)
    t = Tap()
    c = SlurmCluster(groups=[NodeGroup("cl", 4)],
                     scripts={h: wrapper(h) for h in ("elastic-resume", "elastic-suspend",
                                                      "elastic-resume-fail")},
                     resume_program="elastic-resume", suspend_program="elastic-suspend",
                     resume_fail_program="elastic-resume-fail", resume_timeout=60,
                     include="@BASE@/etc/elasticd-suspend-exc.conf", power_save_interval=1)
    daemon = None
    try:
        c.start()
        t.diag("cluster up in %.2f s, base %s" % (c.start_seconds, c.base))
        edir = os.path.join(c.base, "elasticd")
        os.makedirs(os.path.join(edir, "state"), mode=0o700)
        nsutil.write_file(os.path.join(edir, "clouds.yaml"), CLOUDS, 0o600)
        conf = os.path.join(edir, "elasticd.yaml")
        nsutil.write_file(conf, CONFIG.format(base=c.base, slurm_conf=c.slurm_conf,
                                              tag=os.getpid()), 0o600)
        # in the controller netns: its libslurm reaches slurmctld there
        daemon = c.spawn([ELASTICD, "-c", conf, "-d"], os.path.join(c.log_dir, "elasticd.log"))
        sock = os.path.join(c.base, "elasticd.sock")
        try:
            c.wait_for(lambda: daemon.poll() is not None or
                       c.run(ELASTICCTL, "-s", sock, "ping", timeout=10).returncode == 0,
                       20, "elasticd to answer ping")
        except HarnessError:
            pass
        alive = daemon.poll() is None
        t.ok(alive, "elasticd starts with a private socket and state dir", daemon_log_tail(c))
        if not alive:
            return t.done()

        t0 = time.monotonic()
        jid = c.sbatch("-p", "cloud", "-N1", "-o", "/dev/null", "--wrap", "hostname")
        node = None

        def allocated():
            nonlocal node
            p = c.run("squeue", "-h", "-j", str(jid), "-o", "%N")
            node = p.stdout.strip() or None
            return node
        try:
            c.wait_for(allocated, 20, "job %d to get a node" % jid)
        except HarnessError:
            pass
        t.ok(node in c.nodes(), "job %d is allocated a powered-down CLOUD node (%s)" % (jid, node))
        node = node or "cl1"

        waking = "waking nodes %s" % node
        try:
            c.wait_for(lambda: waking in c.log(), 20, "slurmctld to run ResumeProgram")
            t.ok(True, "slurmctld runs ResumeProgram for %s" % node)
            t.diag("sbatch -> ResumeProgram: %.1f s" % (time.monotonic() - t0))
        except HarnessError:
            t.ok(False, "slurmctld runs ResumeProgram for %s" % node, c.log()[-3000:])

        def resumed():
            rc, res, _ = ctl_json(c, "nodes")
            n = find_node(res, node)
            return n if n and n.get("operation") == "resume" else None
        n = None
        try:
            n = c.wait_for(resumed, 20, "elasticd to record a resume for %s" % node)
            t.ok(True, "elasticctl nodes --json shows %s with a resume operation" % node)
            t.diag(json.dumps(n))
            t.diag("sbatch -> resume recorded: %.1f s" % (time.monotonic() - t0))
        except HarnessError:
            rc, res, p = ctl_json(c, "nodes")
            t.ok(False, "elasticctl nodes --json shows %s with a resume operation" % node,
                 "rc %s: %s\n%s\n%s" % (rc, json.dumps(find_node(res, node)), p.stderr,
                                         daemon_log_tail(c)))
        bad = [l for l in c.log().splitlines() if "program exit status" in l or
               "can not execute" in l.lower()]
        t.ok(not bad, "the hook exits 0 (slurmctld logs no failure)", "\n".join(bad))

        # journal.jsonl: {"kind": "request", "type": "resume", "nodes", "resume_file",
        # ...} then {"kind": "op", "node", "op": "resume", "request": <its id>}
        recs = journal_records(os.path.join(edir, "state"))
        reqs = [r for r in recs if r.get("kind") == "request" and r.get("type") == "resume"
                and r.get("nodes") == node]
        ops = [r for r in recs if r.get("kind") == "op" and r.get("node") == node
               and r.get("op") == "resume" and r.get("request") in [q.get("id") for q in reqs]]
        t.ok(len(reqs) == 1 and len(ops) == 1 and reqs[0].get("client") == "elastic-resume",
             "the journal holds one resume request from elastic-resume and its operation "
             "for %s" % node, "\n".join(json.dumps(r) for r in recs[-10:]))
        if n and ops:
            t.ok(n.get("operation_id") == ops[0].get("id"),
                 "elasticctl nodes shows the journalled operation (%s)" % ops[0].get("id"),
                 json.dumps(n))
        jobs = reqs[0].get("resume_file", {}).get("jobs", []) if reqs else []
        t.ok({"job_id": jid, "nodes": node} in jobs,
             "the hook forwarded SLURM_RESUME_FILE's job mapping (job %d -> %s)" % (jid, node),
             json.dumps(reqs))
        st = c.node_state(node)
        t.ok("POWERING_UP" in st or "NOT_RESPONDING" in st,
             "Slurm waits for %s to come up (%s)" % (node, st))
        rc = c.stop_process(daemon)
        t.ok(rc == 0, "elasticd stops cleanly on SIGTERM", "exit %s\n%s" % (
            rc, daemon_log_tail(c)))
    except Exception:
        t.crashed("end-to-end resume")
    finally:
        c.stop()
    left = [str(p) for p in ([daemon.pid] if daemon else []) if nsutil.alive(p)]
    left += [n for n in c.our_netns()]
    if os.path.exists(c.base) and not c.keep:
        left.append(c.base)
    t.ok(not left, "nothing left behind", " ".join(left))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
