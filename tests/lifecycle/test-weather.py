#!/usr/bin/env python3
"""Cloud weather end to end (issue 11), real slurmctld + slurmd, the
emulator, the real elasticd: passing weather never downs a node and never
makes a second instance.

1. Keystone answers 503 for 30 s in the middle of a resume (the token
   revoked first, so every call needs a new one): every node comes up.
2. A storm over 50 nodes: 30% 5xx, 5% 429 with Retry-After, 5% lost replies
   (processed, answer dropped), 10 s tokens: every node up, 0 duplicates,
   0 orphans. Prints nodes up/DOWN and API calls per node.
3. Create POSTs answered after 3 x create_timeout: 0 duplicates.
4. A group with an image that does not exist: its node DOWN with the
   cloud's words, at once."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stack import HarnessError, Stack, elapsed, ours, preflight  # noqa: E402
from tap import Tap  # noqa: E402

N = 50
CREATE_TIMEOUT = 2


def down(state):
    return "DOWN" in state.split("+")


def up(state):
    return (("IDLE" in state or "MIXED" in state or "ALLOC" in state) and "NOT_RESPONDING" not in state
            and "POWER" not in state and not down(state) and "DRAIN" not in state)


def main():
    preflight()
    t = Tap()
    s = Stack(nodes=N, prefix="wa", suspend_time=600, resume_timeout=300, build_delay=0.3,
              reconcile=10, orphan_grace=600, pool=range(100, 250),
              limits_extra="  create_timeout: %ds\n" % CREATE_TIMEOUT,
              more_groups=[("wx", 1, "    flavor: small\n    image: no-such-image\n"
                                     "    networks: [\"private\"]\n")])
    names = s.group.names()

    def states(nodes):
        return {n: s.state(n) for n in nodes}

    def wait_up(nodes, timeout, what):
        def done():
            st = states(nodes)
            return all(up(v) for v in st.values()) or any(down(v) for v in st.values())
        try:
            s.wait_for(done, timeout, what)
        except HarnessError:
            pass
        return states(nodes)

    def power_down(hostlist, nodes):
        s.c.run("scontrol", "update", "nodename=" + hostlist, "state=power_down", check=True)
        try:
            s.wait_for(lambda: not [x for x in ours(s.servers()) if x["name"] in nodes] and
                       all("POWERED_DOWN" in s.state(n) for n in nodes), 120, "the nodes to power down")
        except HarnessError:
            pass

    def new_servers(before):
        return [x for x in s.servers(live=False) if x["id"] not in before and
                (x.get("metadata") or {}).get("elasticd_node")]

    def duplicates(servers):
        per = {}
        for x in servers:
            per.setdefault(x["name"], []).append(x["id"])
        return {n: ids for n, ids in per.items() if len(ids) > 1}

    try:
        s.start()
        t.diag("stack up: base %s, emulator port %d" % (s.base, s.port))

        # --- 1. Keystone out for 30 s mid-resume -------------------------------
        first = names[:4]
        before = {x["id"] for x in s.servers(live=False)}
        s.emu_config(outage_path="^/v3", outage_seconds=30, token_ttl=10)
        s.emu("POST", "tokens/expire", {})
        t0 = time.monotonic()
        s.c.run("scontrol", "update", "nodename=wa[1-4]", "state=power_up", check=True)
        st = wait_up(first, 150, "the nodes up after the Keystone outage")
        t.ok(all(up(v) for v in st.values()),
             "Keystone 503 for 30 s mid-resume: every node comes up (%s): %s" % (elapsed(t0), st),
             s.log("elasticd.log")[-4000:])
        stats = s.emu("GET", "stats")
        t.diag("Keystone outage: %d calls answered 503" % stats.get("faults", {}).get("503", 0))
        t.ok(not duplicates(new_servers(before)) and len(new_servers(before)) == 4,
             "... one instance each", str(duplicates(new_servers(before))))
        s.emu_config(outage_seconds=0)
        power_down("wa[1-4]", first)

        # --- 2. the storm -----------------------------------------------------------
        before = {x["id"] for x in s.servers(live=False)}
        s.emu("DELETE", "stats")
        s.emu_config(error_rate=0.3, error_codes=[500, 502, 503], ratelimit_rate=0.05, retry_after=1,
                     drop_rate=0.05, drop_after=True, drop_mode="close", token_ttl=10, seed=11)
        t0 = time.monotonic()
        s.c.run("scontrol", "update", "nodename=wa[1-%d]" % N, "state=power_up", check=True)
        st = wait_up(names, 280, "every node up in the storm")
        took = elapsed(t0)
        stats = s.emu("GET", "stats")
        s.emu_config(error_rate=0, ratelimit_rate=0, drop_rate=0, drop_after=False)
        n_up = sum(1 for v in st.values() if up(v))
        n_down = sum(1 for v in st.values() if down(v))
        created = new_servers(before)
        dups = duplicates(created)
        nodes = s.nodes()
        claimed = {v.get("instance_id") for v in nodes.values() if v.get("instance_id")}
        orphans = [x["id"] for x in ours(s.servers()) if x["id"] not in claimed]
        per_node = stats.get("total", 0) / float(N)
        t.diag("storm: %d nodes up, %d DOWN, %d other, in %s; %d API calls (%.1f per node; %s); "
               "%d servers created, %d duplicates, %d orphans"
               % (n_up, n_down, N - n_up - n_down, took, stats.get("total", 0), per_node,
                  ", ".join("%s %d" % kv for kv in sorted(stats.get("faults", {}).items())),
                  len(created), len(dups), len(orphans)))
        t.ok(n_up == N, "storm (30%% 5xx, 5%% 429, 5%% lost replies, 10 s tokens): all %d nodes up (%d DOWN)"
             % (N, n_down), str({n: v for n, v in st.items() if not up(v)}) + s.log("elasticd.log")[-4000:])
        t.ok(not dups, "storm: no node got a second instance", str(dups))
        t.ok(not orphans, "storm: no orphan instance", str(orphans))
        power_down("wa[1-%d]" % N, names)

        # --- 3. POSTs answered after 3 x create_timeout --------------------------------
        slow = names[:6]
        before = {x["id"] for x in s.servers(live=False)}
        s.emu_config(token_ttl=3600,
                     latency_by_path={"^POST /compute/v2.1/servers$": 3.0 * CREATE_TIMEOUT})
        t0 = time.monotonic()
        s.c.run("scontrol", "update", "nodename=wa[1-6]", "state=power_up", check=True)
        st = wait_up(slow, 150, "the nodes up with slow POSTs")
        s.emu_config(latency_by_path={})
        created = new_servers(before)
        t.ok(all(up(v) for v in st.values()), "POSTs 3x slower than create_timeout: every node up (%s): %s"
             % (elapsed(t0), st), s.log("elasticd.log")[-3000:])
        t.ok(len(created) == len(slow) and not duplicates(created),
             "... and exactly one instance per node (%d created)" % len(created), str(duplicates(created)))
        power_down("wa[1-6]", slow)

        # --- 4. an image that does not exist -----------------------------------------
        def reason(node):
            return s.c.run("sinfo", "-h", "-N", "-n", node, "-o", "%E").stdout.strip()
        s.c.run("scontrol", "update", "nodename=wx1", "state=power_up", check=True)
        try:
            s.wait_for(lambda: down(s.state("wx1")) and "elasticd" in reason("wx1"), 60,
                       "wx1 DOWN with elasticd's reason")
        except HarnessError:
            pass
        t.ok(down(s.state("wx1")) and "no-such-image" in reason("wx1"),
             "a bad image: the node DOWN with the cloud's words: %s (%s)" % (reason("wx1"), s.state("wx1")),
             s.log("elasticd.log")[-2000:])
        t.ok(not [x for x in ours(s.servers()) if x["name"] == "wx1"], "... and no instance left for it")
    except Exception as e:  # noqa: BLE001
        t.ok(False, "unexpected error: %s" % e, s.log("elasticd.log")[-3000:] if s.daemon else "")
    finally:
        s.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
