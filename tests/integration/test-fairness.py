#!/usr/bin/env python3
"""Socket fairness against the real elasticd: another uid in the socket's
group holding idle and slow (one byte a second) connections, or flooding with
connect/close, cannot keep a hook from root out: the reserved slots, the
per-uid cap, the frame deadline and the idle timeout. Prints TAP."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from elasticd_test import (ELASTICCTL, ELASTICD, TAP, Daemon, check, cleanup, config_text, connect,
                           make_tmp, read_reply, req, request)

NOBODY = 65534

# Run as nobody: keep IDLE idle and SLOW slow (one byte of a frame a second)
# connections open, reconnecting whatever the daemon closes, until killed.
# Prints "ready" once every connection has been tried once.
HOG = r"""
import selectors, socket, sys, time
path, n_idle, n_slow = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
frame = b"\x00\x00\x00\x20" + b'{"version":1,"type":"ping"}     '
sel = selectors.DefaultSelector()
conns = {}
def opened(kind):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(path)
    except OSError:
        s.close()
        return
    conns[s] = [kind, 0]
    sel.register(s, selectors.EVENT_READ)
# Interleaved, so that under a per-uid cap both kinds hold slots.
for i in range(max(n_idle, n_slow)):
    if i < n_slow:
        opened("slow")
    if i < n_idle:
        opened("idle")
print("ready", flush=True)
last = time.monotonic()
while True:
    for key, _ in sel.select(0.2):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            kind = conns.pop(s)[0]
            sel.unregister(s)
            s.close()
            opened(kind)
    if time.monotonic() - last >= 1:
        last = time.monotonic()
        for s, st in list(conns.items()):
            if st[0] == "slow":
                try:
                    s.send(frame[st[1] % len(frame):st[1] % len(frame) + 1])
                    st[1] += 1
                except OSError:
                    pass
    have = {"idle": 0, "slow": 0}
    for st in conns.values():
        have[st[0]] += 1
    for kind, want in (("idle", n_idle), ("slow", n_slow)):
        for _ in range(want - have[kind]):
            opened(kind)
"""

# Run as nobody: N connect/close pairs as fast as they go.
FLOOD = r"""
import socket, sys
path, n = sys.argv[1], int(sys.argv[2])
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError:
        pass
    s.close()
print("done", flush=True)
"""

PY = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def as_nobody(code, *args):
    return subprocess.Popen([PY, "-c", code] + [str(a) for a in args], user=NOBODY, group=NOBODY,
                            extra_groups=[], stdout=subprocess.PIPE, text=True)


def hook_with_1s(d, nodes):
    """elastic-resume with a 1 s timeout (connect + reply): must succeed."""
    env = {"ELASTICD_SOCKET": d.socket, "ELASTICD_TIMEOUT": "1", "PATH": "/usr/bin:/bin"}
    link = os.path.join(d.tmp, "elastic-resume")
    if not os.path.exists(link):
        os.symlink(ELASTICCTL, link)
    p = subprocess.run([link, nodes], env=env, capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, "elastic-resume %s under load: rc %d: %s" % (nodes, p.returncode, p.stderr))


def stop(p):
    p.send_signal(signal.SIGKILL)
    p.wait()


def test_hog(d):
    # 64 idle and 64 slow connections of nobody (in the socket's group).
    hog = as_nobody(HOG, d.socket, 64, 64)
    try:
        check(hog.stdout.readline().strip() == "ready", "hog did not start")
        time.sleep(0.5)
        for i in range(1, 9):
            hook_with_1s(d, "cl%d" % i)
            time.sleep(1)
        # Nobody got busy (reserved slots, per-uid cap) and lost its slow and
        # idle connections to the deadlines (here 2 s and 4 s).
        log = d.log()
        check("max_clients_per_uid" in log, "no refusal by the per-uid cap")
        check("frame_timeout" in log, "no slow client dropped by frame_timeout")
        check("idle for" in log, "no idle client dropped")
        check(hog.poll() is None, "hog died")
        # Another uid still gets its own connections at all.
        r = request(d.socket, req("ping"))
        check(r.get("result") is not None, r)
    finally:
        stop(hog)


def test_hog_all_slots(d):
    # The per-uid cap as high as max_clients: nobody fills every slot it may;
    # the reserved ones keep the hooks going.
    d.write_config(config_text(d.tmp, socket_group="nogroup", max_clients=64,
                               extra_limits={"max_clients_per_uid": 64, "frame_timeout": "2s",
                                             "client_idle_timeout": "4s"}))
    check(request(d.socket, req("reload")).get("result") is not None, "reload failed")
    hog = as_nobody(HOG, d.socket, 64, 64)
    try:
        check(hog.stdout.readline().strip() == "ready", "hog did not start")
        time.sleep(0.5)
        for i in range(9, 13):
            hook_with_1s(d, "cl%d" % i)
        check("reserved for root and SlurmUser" in d.log(), "no refusal for the reserved slots")
    finally:
        stop(hog)


def test_flood(d):
    # 10,000 connect/close pairs from nobody (4 x 2,500) while hooks run.
    floods = [as_nobody(FLOOD, d.socket, 2500) for _ in range(4)]
    try:
        n = 0
        while any(p.poll() is None for p in floods) and n < 20:
            hook_with_1s(d, "cl%d" % (13 + n % 4))
            n += 1
        for p in floods:
            check(p.wait(timeout=120) == 0, "flood client failed")
        check(n >= 1, "no hook ran during the flood")
        print("# %d hooks during 10,000 connect/close" % n)
        hook_with_1s(d, "cl16")
    finally:
        for p in floods:
            if p.poll() is None:
                stop(p)


def main():
    t = TAP()
    if not ELASTICD or not ELASTICCTL:
        print("1..0 # SKIP ELASTICD or ELASTICCTL not set")
        return 0
    if os.geteuid() != 0:
        print("1..0 # SKIP needs root (clients of another uid)")
        return 0
    tmp = make_tmp("fair")
    d = Daemon(tmp, config_text(tmp, socket_group="nogroup", max_clients=64,
                                extra_limits={"frame_timeout": "2s", "client_idle_timeout": "4s"}))
    try:
        d.start()
        t.run(test_hog, d)
        t.run(test_hog_all_slots, d)
        t.run(test_flood, d)
    finally:
        d.stop(signal.SIGKILL)
        cleanup(tmp)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
