#!/usr/bin/env python3
"""test-elasticctl.py BUILD_DAEMON_DIR - elasticctl and the hooks against a fake elasticd.

A fake server on a private socket (in a temp dir of this run) records each
request frame and answers from a script. Checks: argv[0] dispatch, the
request each command sends, environment forwarding, exit codes, messages,
and hooks run as slurmctld runs them (empty environment, fds closed).
Prints TAP."""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/daemon")
TMP = tempfile.mkdtemp(prefix="elasticctl-test-%d-" % os.getpid())


def ok_reply(result=None, rid="r-1a2b-1"):
    return {"version": 1, "id": rid, "ok": True, "result": result if result is not None else {}}


def error_reply(code, message, rid="r-1a2b-2"):
    return {"version": 1, "id": rid, "ok": False, "error": {"code": code, "message": message}}


def frame(obj):
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class FakeDaemon:
    """Accepts connections one at a time; answers the k-th request with
    replies[k] (a dict, raw bytes, or None = never answer)."""

    def __init__(self, replies, path=None):
        self.path = path or os.path.join(TMP, "d%d.sock" % id(self))
        self.replies = list(replies)
        self.requests = []
        self.trailing = []  # bytes a client sent after its request
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.sock.settimeout(20)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        for reply in self.replies:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(20)
                head = recv_exact(conn, 4)
                if head is None:
                    continue
                if isinstance(reply, tuple):
                    # ("early", reply): refuse on the header alone, as elasticd
                    # does with an oversize frame, and close unread.
                    self.requests.append({"length": struct.unpack(">I", head)[0]})
                    conn.sendall(frame(reply[1]))
                    continue
                body = recv_exact(conn, struct.unpack(">I", head)[0])
                self.requests.append(json.loads(body))
                if reply is None:
                    # Hang: wait for the client to give up.
                    conn.recv(1)
                    continue
                conn.sendall(reply if isinstance(reply, bytes) else frame(reply))
                conn.shutdown(socket.SHUT_WR)
                rest = b""
                try:
                    while True:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        rest += chunk
                except OSError:
                    pass
                self.trailing.append(rest)

    def close(self):
        self.sock.close()
        self.thread.join(5)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def run(prog, args, env=None, sock=None, shell_redirect="", timeout=30):
    """Run BIN/prog with an environment holding only ENV (and
    ELASTICD_SOCKET=sock); SHELL_REDIRECT closes fds the way slurmctld does."""
    e = dict(env or {})
    if sock:
        e["ELASTICD_SOCKET"] = sock
    argv = [os.path.join(BIN, prog)] + list(args)
    if shell_redirect:
        quoted = " ".join("'%s'" % a.replace("'", "'\\''") for a in argv)
        cmd = ["/bin/sh", "-c", "exec %s %s" % (quoted, shell_redirect)]
        # sh needs no PATH for an absolute exec; the hook gets only E.
        cmd = ["/usr/bin/env", "-i"] + ["%s=%s" % kv for kv in e.items()] + cmd
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    else:
        p = subprocess.run(argv, env=e, capture_output=True, text=True, timeout=timeout)
    return p


tests = []


def test(fn):
    tests.append(fn)
    return fn


def check(cond, what):
    if not cond:
        raise AssertionError(what)


@test
def hook_dispatch_types():
    for prog, rtype in [("elastic-resume", "resume"), ("elastic-suspend", "suspend"),
                        ("elastic-resume-fail", "resume_fail")]:
        d = FakeDaemon([ok_reply({"accepted": 3})])
        p = run(prog, ["cn-[3-4,8]"], sock=d.path)
        d.close()
        check(p.returncode == 0, "%s exit %d: %s" % (prog, p.returncode, p.stderr))
        r = d.requests[0]
        check(r == {"version": 1, "type": rtype, "client": prog, "nodes": "cn-[3-4,8]"},
              "%s sent %r" % (prog, r))


@test
def hook_reboot_features():
    d = FakeDaemon([ok_reply()])
    p = run("elastic-reboot", ["cn-3,cn-4", "gpu,bigmem"], sock=d.path)
    d.close()
    check(p.returncode == 0, p.stderr)
    r = d.requests[0]
    check(r["type"] == "reboot" and r["nodes"] == "cn-3,cn-4" and r["features"] == "gpu,bigmem",
          repr(r))
    check("reason" not in r, "the hook has no reason to send")


@test
def hook_forwards_job_and_resume_file():
    rf = os.path.join(TMP, "resume.json")
    content = {"all_nodes": "cn-[3-4]", "jobs": [{"job_id": 42, "nodes": "cn-[3-4]"}]}
    with open(rf, "w") as f:
        json.dump(content, f)
    d = FakeDaemon([ok_reply()])
    p = run("elastic-resume", ["cn-[3-4]"], sock=d.path,
            env={"SLURM_JOB_ID": "42", "SLURM_RESUME_FILE": rf, "SLURM_CONF": "/etc/slurm/slurm.conf"})
    d.close()
    check(p.returncode == 0, p.stderr)
    r = d.requests[0]
    check(r.get("job_id") == "42", repr(r))
    check(r.get("resume_file") == content, repr(r))
    check("resume_file_error" not in r, repr(r))


@test
def hook_bad_resume_file_still_sent():
    bad = os.path.join(TMP, "bad.json")
    with open(bad, "w") as f:
        f.write("{not json\x01")
    cases = [(bad, "not valid JSON"), (os.path.join(TMP, "missing.json"), "cannot open"),
             ("/proc/self/fd/987", "cannot open")]
    big = os.path.join(TMP, "big.json")
    with open(big, "w") as f:
        f.write('{"x":"' + "a" * (600 * 1024) + '"}')
    cases.append((big, "more than the limit of"))
    fifo = os.path.join(TMP, "fifo.json")
    os.mkfifo(fifo)
    cases.append((fifo, "is a FIFO, not a regular file"))
    arr = os.path.join(TMP, "arr.json")
    with open(arr, "w") as f:
        f.write("[1]")
    cases.append((arr, "does not hold a JSON object"))
    for path, msg in cases:
        d = FakeDaemon([ok_reply()])
        p = run("elastic-resume", ["cn-1"], sock=d.path, env={"SLURM_RESUME_FILE": path})
        d.close()
        check(p.returncode == 0, "%s: exit %d %s" % (path, p.returncode, p.stderr))
        r = d.requests[0]
        check("resume_file" not in r and msg in r.get("resume_file_error", ""),
              "%s: sent %r" % (path, r))


@test
def hook_empty_environment_and_closed_fds():
    # As slurmctld runs it: env -i (no PATH), every fd closed.
    d = FakeDaemon([ok_reply({"accepted": 1})] * 3)
    for redirect in ["<&- >&- 2>&-", ">&-", "<&- >&-"]:
        p = run("elastic-suspend", ["cn-9"], sock=d.path, shell_redirect=redirect,
                env={"SLURM_CONF": "/etc/slurm/slurm.conf"})
        check(p.returncode == 0, "%s: exit %d: %s" % (redirect, p.returncode, p.stderr))
    d.close()
    check(len(d.requests) == 3, "requests: %r" % d.requests)
    check(all(r["nodes"] == "cn-9" for r in d.requests), repr(d.requests))
    # With stdout closed, the socket must not have become fd 1 (output would reach the daemon).
    check(all(t == b"" for t in d.trailing), "bytes after the request: %r" % d.trailing)


@test
def hook_error_reply_exit_1():
    d = FakeDaemon([error_reply("unknown_node", "cn-99 is in no node group", "r-9-9")])
    p = run("elastic-resume", ["cn-99"], sock=d.path)
    d.close()
    check(p.returncode == 1, "exit %d" % p.returncode)
    check("unknown_node: cn-99 is in no node group (request r-9-9)" in p.stderr, p.stderr)
    check(d.path in p.stderr and p.stderr.rstrip().endswith("; resume of 1 node: cn-99"), p.stderr)


@test
def hook_error_names_many_nodes_cut():
    # What went wrong first; the nodes last, with their count, cut between
    # nodes ("and N more") so that the line stays short.
    many = ",".join("cn%d" % i for i in range(1, 4000, 2))
    d = FakeDaemon([error_reply("internal", "journal full", "r-9-8")])
    p = run("elastic-suspend", [many], sock=d.path)
    d.close()
    check(p.returncode == 1, "exit %d" % p.returncode)
    line = [l for l in p.stderr.splitlines() if "refused it" in l]
    check(len(line) == 1, p.stderr)
    line = line[0] if line else ""
    check("refused it: internal: journal full (request r-9-8); suspend of 2000 nodes: cn[1,3,5," in line, line)
    check(line.endswith(" more") and len(line) < 800, line)
    listed, rest = line.split("suspend of 2000 nodes: ", 1)[1].rsplit(" and ", 1)
    check(listed.endswith("]") and int(rest.split()[0]) + listed.count(",") + 1 == 2000, line)


@test
def hook_retries_busy():
    d = FakeDaemon([error_reply("busy", "queue full"), error_reply("busy", "queue full"), ok_reply()])
    p = run("elastic-resume", ["cn-1"], sock=d.path)
    d.close()
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
    check(len(d.requests) == 3, "requests: %d" % len(d.requests))


@test
def hook_drops_resume_file_on_bad_frame():
    rf = os.path.join(TMP, "resume2.json")
    with open(rf, "w") as f:
        f.write('{"all_nodes":"cn-1","jobs":[]}')
    d = FakeDaemon([error_reply("bad_frame", "a frame of 9999 bytes; the limit is 4096 bytes"), ok_reply()])
    p = run("elastic-resume", ["cn-1"], sock=d.path, env={"SLURM_RESUME_FILE": rf})
    d.close()
    check(p.returncode == 0, p.stderr)
    check("resume_file" in d.requests[0] and "resume_file" not in d.requests[1], repr(d.requests))
    check("dropped" in d.requests[1].get("resume_file_error", ""), repr(d.requests[1]))


@test
def hook_resume_file_too_big_for_daemon():
    # The daemon refuses the frame from its header and closes without reading
    # the body: the hook's write fails, it still reads the reply, and resends
    # without the resume file.
    rf = os.path.join(TMP, "resume3.json")
    with open(rf, "w") as f:
        json.dump({"all_nodes": "cn-1", "jobs": [{"job_id": 1, "nodes": "cn-1", "pad": "x" * 400000}]}, f)
    d = FakeDaemon([("early", error_reply("bad_frame", "a frame of 400100 bytes; the limit is 65536 bytes")),
                    ok_reply()])
    p = run("elastic-resume", ["cn-1"], sock=d.path, env={"SLURM_RESUME_FILE": rf})
    d.close()
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
    check(d.requests[0]["length"] > 400000, repr(d.requests[0]))
    check("resume_file" not in d.requests[1] and d.requests[1]["nodes"] == "cn-1", repr(d.requests[1]))


@test
def hook_no_daemon_exit_2():
    path = os.path.join(TMP, "nobody.sock")
    p = run("elastic-resume-fail", ["cn-[1-2]"], sock=path, shell_redirect="<&-",
            env={"ELASTICD_TIMEOUT": "0.5"})
    check(p.returncode == 2, "exit %d" % p.returncode)
    check(path in p.stderr and "No such file or directory (kept trying" in p.stderr, p.stderr)
    check("resume_fail of 2 nodes: cn-[1-2]" in p.stderr, p.stderr)


@test
def hook_waits_for_daemon_restart():
    # The daemon's socket appears only after the hook started (a restart).
    path = os.path.join(TMP, "late.sock")
    e = {"ELASTICD_SOCKET": path, "ELASTICD_TIMEOUT": "20"}
    proc = subprocess.Popen([os.path.join(BIN, "elastic-resume"), "cn-5"], env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    threading.Event().wait(0.4)
    d = FakeDaemon([ok_reply()], path=path)
    out, err = proc.communicate(timeout=30)
    d.close()
    check(proc.returncode == 0, "exit %d: %s" % (proc.returncode, err))
    check(d.requests and d.requests[0]["nodes"] == "cn-5", repr(d.requests))


@test
def hook_without_arguments():
    p = run("elastic-resume", [], sock=os.path.join(TMP, "x.sock"))
    check(p.returncode == 64, "exit %d" % p.returncode)
    check("no hostlist" in p.stderr, p.stderr)


@test
def cli_no_daemon_exit_2():
    path = os.path.join(TMP, "none.sock")
    p = run("elasticctl", ["-s", path, "status"])
    check(p.returncode == 2, "exit %d" % p.returncode)
    check(p.stderr.startswith("elasticctl: cannot connect to elasticd at %s: " % path), p.stderr)
    # Not a socket at all.
    notsock = os.path.join(TMP, "plain")
    open(notsock, "w").close()
    p = run("elasticctl", ["-s", notsock, "ping"])
    check(p.returncode == 2 and "Connection refused" in p.stderr, p.stderr)


@test
def cli_does_not_wait_for_a_daemon():
    # A person gets an answer at once; only hooks keep trying.
    p = run("elasticctl", ["-s", os.path.join(TMP, "none2.sock"), "-t", "20", "ping"], timeout=5)
    check(p.returncode == 2 and "kept trying" not in p.stderr, p.stderr)


@test
def cli_timeout_from_environment():
    d = FakeDaemon([None, None])
    p = run("elasticctl", ["-s", d.path, "status"], env={"ELASTICD_TIMEOUT": "0.2"})
    check(p.returncode == 2 and "within 0.2 s" in p.stderr, p.stderr)
    # -t wins over the environment.
    p = run("elasticctl", ["-s", d.path, "-t", "0.3", "status"], env={"ELASTICD_TIMEOUT": "0.2"})
    check(p.returncode == 2 and "within 0.3 s" in p.stderr, p.stderr)
    d.close()
    p = run("elasticctl", ["status"], env={"ELASTICD_TIMEOUT": "soon"})
    check(p.returncode == 64 and "ELASTICD_TIMEOUT" in p.stderr, p.stderr)


@test
def cli_socket_precedence():
    d1 = FakeDaemon([ok_reply()])
    d2 = FakeDaemon([ok_reply()])
    p = run("elasticctl", ["ping"], sock=d1.path)
    check(p.returncode == 0, p.stderr)
    p = run("elasticctl", ["-s", d2.path, "ping"], sock=os.path.join(TMP, "wrong.sock"))
    check(p.returncode == 0, p.stderr)
    d1.close()
    d2.close()
    check(len(d1.requests) == 1 and len(d2.requests) == 1, "%r %r" % (d1.requests, d2.requests))
    check(d1.requests[0] == {"version": 1, "type": "ping", "client": "elasticctl"}, repr(d1.requests[0]))


@test
def cli_requests():
    cases = [
        (["status"], {"type": "status"}),
        (["nodes"], {"type": "nodes", "table": True}),
        (["--json", "nodes"], {"type": "nodes"}),
        (["reload"], {"type": "reload"}),
        (["resume", "cn-[1-2]"], {"type": "resume", "nodes": "cn-[1-2]"}),
        (["suspend", "cn-3"], {"type": "suspend", "nodes": "cn-3"}),
        (["resume-fail", "cn-3"], {"type": "resume_fail", "nodes": "cn-3"}),
        (["reboot", "--reason", "reimage now", "cn-1,cn-2"],
         {"type": "reboot", "nodes": "cn-1,cn-2", "reason": "reimage now"}),
        (["resize", "--min", "4", "--group", "gpu", "--wait"],
         {"type": "resize", "min": 4, "group": "gpu", "wait": True}),
        (["resize", "--min", "0"], {"type": "resize", "min": 0, "wait": False}),
    ]
    for args, want in cases:
        d = FakeDaemon([ok_reply({"nodes": []} if args[-1] == "nodes" else {"accepted": 2})])
        p = run("elasticctl", ["-s", d.path] + args)
        d.close()
        check(p.returncode == 0, "%r: exit %d %s" % (args, p.returncode, p.stderr))
        want = dict(want, version=1, client="elasticctl")
        check(d.requests[0] == want, "%r sent %r" % (args, d.requests[0]))


@test
def cli_usage_errors():
    for args, msg in [([], "no command"), (["frob"], "unknown command"), (["status", "x"], "no arguments"),
                      (["resume"], "exactly one"), (["resize"], "--min"), (["resize", "--min", "-1"], "node count"),
                      (["resize", "--min", "4x"], "node count"), (["-t", "abc", "status"], "seconds"),
                      (["resume", "cn-1\ncn-2"], "control character"), (["reboot"], "exactly one")]:
        p = run("elasticctl", ["-s", os.path.join(TMP, "u.sock")] + args)
        check(p.returncode == 64, "%r: exit %d" % (args, p.returncode))
        check(msg in p.stderr, "%r: %s" % (args, p.stderr))


@test
def cli_error_reply_exit_1():
    d = FakeDaemon([error_reply("permission_denied", "uid 1000 may not send resize", "r-5-5")])
    p = run("elasticctl", ["-s", d.path, "resize", "--min", "2"])
    d.close()
    check(p.returncode == 1, "exit %d" % p.returncode)
    check(p.stderr == "elasticctl: permission_denied: uid 1000 may not send resize (request r-5-5)\n",
          repr(p.stderr))


@test
def cli_bad_replies_exit_2():
    cases = [
        (b"\x00\x00\x00\x02[]", "bad reply"),
        (b"\x00\x00\x00\x00", "length 0"),
        (frame({"version": 2, "id": "r", "ok": True, "result": {}}), "version 2"),
        (frame({"version": 1, "id": "r", "ok": True}), "no \"result\""),
        (b"\x00\x00\x00\x10{}", "closed the connection"),
    ]
    for raw, msg in cases:
        d = FakeDaemon([raw])
        p = run("elasticctl", ["-s", d.path, "status"])
        d.close()
        check(p.returncode == 2, "%r: exit %d" % (raw, p.returncode))
        check(msg in p.stderr and d.path in p.stderr, "%r: %s" % (raw, p.stderr))


@test
def cli_timeout_exit_2():
    d = FakeDaemon([None])
    p = run("elasticctl", ["-s", d.path, "-t", "0.3", "status"])
    d.close()
    check(p.returncode == 2, "exit %d" % p.returncode)
    check("no reply from elasticd at %s within 0.3 s" % d.path in p.stderr, p.stderr)


@test
def cli_status_text():
    result = {"version": "0.1.0", "uptime_seconds": 12, "healthy": True,
              "nodes": {"idle": 3, "powered_down": 10}, "groups": ["cpu", "gpu"],
              "config": {"path": "/etc/elasticd/elasticd.yaml", "limits": {"max_clients": 64}}}
    d = FakeDaemon([ok_reply(result)])
    p = run("elasticctl", ["-s", d.path, "status"])
    d.close()
    check(p.returncode == 0, p.stderr)
    want = ("version: 0.1.0\nuptime_seconds: 12\nhealthy: true\nnodes:\n  idle: 3\n  powered_down: 10\n"
            "groups: cpu, gpu\nconfig:\n  path: /etc/elasticd/elasticd.yaml\n  limits:\n    max_clients: 64\n")
    check(p.stdout == want, repr(p.stdout))


@test
def cli_nodes_table():
    result = {"nodes": [
        {"name": "cn-1", "slurm_state": "IDLE", "group": "cpu", "instance_id": "8a3f", "instance_status": "ACTIVE",
         "address": "10.0.0.5", "operation": None, "operation_age_seconds": None},
        {"name": "cn-10", "slurm_state": "POWERING_UP", "group": "cpu", "instance_id": "77aa",
         "instance_status": "BUILD", "operation": "resume", "operation_age_seconds": 754},
        {"name": "cn-2"},
    ]}
    d = FakeDaemon([ok_reply(result)])
    p = run("elasticctl", ["-s", d.path, "nodes"])
    d.close()
    check(p.returncode == 0, p.stderr)
    lines = p.stdout.splitlines()
    check(lines[0].split() == ["NODE", "STATE", "GROUP", "INSTANCE", "STATUS", "ADDRESS", "OPERATION", "AGE"],
          lines[0])
    check(lines[1].split() == ["cn-1", "IDLE", "cpu", "8a3f", "ACTIVE", "10.0.0.5", "-", "-"], lines[1])
    check(lines[2].split() == ["cn-10", "POWERING_UP", "cpu", "77aa", "BUILD", "-", "resume", "12m"], lines[2])
    check(lines[3].split() == ["cn-2", "-", "-", "-", "-", "-", "-", "-"], lines[3])
    # Columns line up.
    check(lines[0].index("STATE") == lines[2].index("POWERING_UP"), p.stdout)
    # The same table from the row form elasticctl asks for: columns in any
    # order, unknown ones ignored, missing ones "-".
    cols = ["operation_age_seconds", "name", "group", "slurm_state", "instance_id", "instance_status",
            "address", "operation", "note"]
    rows = {"columns": cols, "rows": [[n.get(c) for c in cols] for n in result["nodes"]]}
    d = FakeDaemon([ok_reply(rows), ok_reply({"columns": ["name"], "rows": [["cn-1"]]})])
    p2 = run("elasticctl", ["-s", d.path, "nodes"])
    p3 = run("elasticctl", ["-s", d.path, "nodes"])
    d.close()
    check(p2.returncode == 0 and p2.stdout == p.stdout, repr(p2.stdout))
    check(p3.returncode == 0 and p3.stdout.splitlines()[1].split() == ["cn-1"] + ["-"] * 7, repr(p3.stdout))
    # And from the table form it asks for now: a line per node, tab-separated
    # in the order of columns, empty for none, short lines, a last line
    # without its newline.
    def line(n):
        v = ["" if n.get(c) is None else str(n.get(c)) for c in cols]
        while v and v[-1] == "":
            v.pop()
        return "\t".join(v)
    table = {"columns": cols, "table": "\n".join(line(n) for n in result["nodes"])}
    d = FakeDaemon([ok_reply(table), ok_reply({"columns": ["name", "group"], "table": "cn-1\n\tcpu\n"})])
    p4 = run("elasticctl", ["-s", d.path, "nodes"])
    p5 = run("elasticctl", ["-s", d.path, "nodes"])
    d.close()
    check(p4.returncode == 0 and p4.stdout == p.stdout, repr(p4.stdout))
    check(p5.returncode == 0 and [x.split() for x in p5.stdout.splitlines()[1:]] ==
          [["cn-1"] + ["-"] * 7, ["-", "-", "cpu"] + ["-"] * 5], repr(p5.stdout))


@test
def cli_json_output():
    result = {"nodes": [{"name": "cn-1", "x": [1, 2]}], "extra": {"a": None}}
    d = FakeDaemon([ok_reply(result)] * 2)
    p = run("elasticctl", ["-s", d.path, "--json", "nodes"])
    check(p.returncode == 0, p.stderr)
    check(json.loads(p.stdout) == result, p.stdout)
    p = run("elasticctl", ["-s", d.path, "-j", "resume", "cn-1"])
    d.close()
    check(json.loads(p.stdout) == result, p.stdout)


@test
def cli_check():
    d = FakeDaemon([ok_reply({"version": "0.1.0"}),
                    ok_reply({"healthy": False, "problems": ["cloud unreachable"]}),
                    error_reply("internal", "oops")])
    p = run("elasticctl", ["-s", d.path, "check"])
    check(p.returncode == 0 and "is healthy (version 0.1.0)" in p.stdout, p.stdout + p.stderr)
    p = run("elasticctl", ["-s", d.path, "check"])
    check(p.returncode == 1 and "unhealthy" in p.stdout and "cloud unreachable" in p.stdout, p.stdout)
    p = run("elasticctl", ["-s", d.path, "check"])
    check(p.returncode == 1 and "internal: oops" in p.stderr, p.stderr)
    d.close()
    check(all(r["type"] == "status" for r in d.requests), repr(d.requests))
    p = run("elasticctl", ["-s", os.path.join(TMP, "gone.sock"), "check"])
    check(p.returncode == 1 and "gone.sock" in p.stderr, p.stderr)


@test
def cli_unknown_error_code_from_newer_daemon():
    d = FakeDaemon([error_reply("quota_exceeded", "project over quota")])
    p = run("elasticctl", ["-s", d.path, "resume", "cn-1"])
    d.close()
    check(p.returncode == 1 and "quota_exceeded: project over quota" in p.stderr, p.stderr)


def main():
    failed = 0
    for i, t in enumerate(tests, 1):
        try:
            t()
            print("ok %d - %s" % (i, t.__name__))
        except Exception:
            failed += 1
            print("not ok %d - %s" % (i, t.__name__))
            for line in traceback.format_exc().splitlines():
                print("# " + line)
        sys.stdout.flush()
    print("1..%d" % len(tests))
    shutil.rmtree(TMP, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
