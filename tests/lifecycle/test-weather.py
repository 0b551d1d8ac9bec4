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
4. A group with an image that does not exist: its node powered down at
   once (no ResumeTimeout), then DOWN with the cloud's words.
5. A group the cloud has no room for (NoValidHost): its job is requeued
   onto a second group of the same partition, the first is shown short of
   capacity; after a kill -9 and a restart it still is (same until) and its
   failed nodes stay DOWN, until `elasticctl group enable` ends it and they
   are usable again.
6. An instance deleted behind elasticd's back: the node is noticed by the
   reconcile, powered down and DOWN; `scontrol update state=resume` and a
   new job give it a fresh instance."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from stack import ELASTICCTL, HarnessError, Stack, elapsed, ours, preflight  # noqa: E402
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
                                     "    networks: [\"private\"]\n"),
                           ("wc", 2, "    flavor: huge\n    image: tiny\n    networks: [\"private\"]\n", "fo"),
                           ("wd", 2, "    flavor: small\n    image: tiny\n    networks: [\"private\"]\n", "fo")])
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

    def reason(node):
        return s.c.run("sinfo", "-h", "-N", "-n", node, "-o", "%E").stdout.strip()

    def new_servers(before):
        return [x for x in s.servers(live=False) if x["id"] not in before and
                (x.get("metadata") or {}).get("elasticd_node")]

    def duplicates(servers):
        per = {}
        for x in servers:
            per.setdefault(x["name"], []).append(x["id"])
        return {n: ids for n, ids in per.items() if len(ids) > 1}

    # WEATHER_STAGES=4,5 runs only those (development); default all.
    only = {int(x) for x in os.environ.get("WEATHER_STAGES", "").split(",") if x.strip()}

    def stage(n):
        return not only or n in only

    try:
        s.start()
        t.diag("stack up: base %s, emulator port %d" % (s.base, s.port))

        # --- 1. Keystone out for 30 s mid-resume -------------------------------
        if stage(1):
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
        if stage(2):
            before = {x["id"] for x in s.servers(live=False)}
            s.emu("DELETE", "stats")
            s.emu_config(error_rate=0.3, error_codes=[500, 502, 503], ratelimit_rate=0.05, retry_after=1,
                         drop_rate=0.05, drop_after=True, drop_mode="close", token_ttl=10, seed=11)
            t0 = time.monotonic()
            s.c.run("scontrol", "update", "nodename=wa[1-%d]" % N, "state=power_up", check=True)
            # kill -9 in the middle of it: the restarted daemon takes over
            # from the journal, in the same weather.
            try:
                s.wait_for(lambda: len(new_servers(before)) >= N // 3, 120, "a third of the creates")
            except HarnessError:
                pass
            s.kill_daemon(9)
            t.diag("storm: killed elasticd (kill -9) after %s with %d servers created"
                   % (elapsed(t0), len(new_servers(before))))
            s.start_daemon()
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
            t.ok(n_up == N, "storm (30%% 5xx, 5%% 429, 5%% lost replies, 10 s tokens, kill -9 midway): "
                 "all %d nodes up (%d DOWN)"
                 % (N, n_down), str({n: v for n, v in st.items() if not up(v)}) + s.log("elasticd.log")[-4000:])
            t.ok(not dups, "storm: no node got a second instance", str(dups))
            t.ok(not orphans, "storm: no orphan instance", str(orphans))
            power_down("wa[1-%d]" % N, names)

        # --- 3. POSTs answered after 3 x create_timeout --------------------------------
        if stage(3):
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
        if stage(4):
            s.c.run("scontrol", "update", "nodename=wx1", "state=power_up", check=True)
            try:
                s.wait_for(lambda: down(s.state("wx1")) and "elasticd" in reason("wx1") and
                           "POWERED_DOWN" in s.state("wx1").split("+"), 60,
                           "wx1 DOWN with elasticd's reason")
            except HarnessError:
                pass
            t.ok(down(s.state("wx1")) and "no-such-image" in reason("wx1"),
                 "a bad image: the node DOWN with the cloud's words: %s (%s)" % (reason("wx1"), s.state("wx1")),
                 s.log("elasticd.log")[-2000:])
            t.ok(not [x for x in ours(s.servers()) if x["name"] == "wx1"], "... and no instance left for it")
            t.ok("POWERED_DOWN" in s.state("wx1") and "POWERING_UP" not in s.state("wx1"),
                 "... powered down, not left powering up for ResumeTimeout: %s" % s.state("wx1"))

        # --- 5. no capacity for one group: the job goes to the other ------------------
        if stage(5):
            t0 = time.monotonic()
            out = os.path.join(s.base, "fo-%j.out")
            jid = s.c.sbatch("-p", "fo", "-N1", "-o", out, "--wrap", "hostname")
            requeues = 0

            def job_done():
                nonlocal requeues
                # Slurm holds a requeued job for two minutes (EligibleTime): move it to now.
                why = s.c.run("squeue", "-h", "-j", str(jid), "-o", "%T %r").stdout.split()
                if why == ["PENDING", "BeginTime"]:
                    requeues += 1
                    s.c.run("scontrol", "update", "jobid=%d" % jid, "starttime=now")
                return s.c.job_state(jid) in ("COMPLETED", "FAILED", "CANCELLED")
            try:
                s.wait_for(job_done, 120, "the job in partition fo to end")
            except HarnessError:
                pass
            t.diag("the job waited on its BeginTime %d times (moved to now)" % requeues)
            ran = ""
            try:
                with open(out.replace("%j", str(jid))) as f:
                    ran = f.read().strip()
            except OSError:
                pass
            rc, status, _ = s.ctl("status")
            short = (status or {}).get("short_of_capacity", {})
            t.ok(s.c.job_state(jid) == "COMPLETED" and ran.startswith("wd"),
                 "no valid host for group wc: the job is requeued onto group wd and runs on %s (%s, %s)"
                 % (ran or "?", s.c.job_state(jid), elapsed(t0)), s.log("elasticd.log")[-4000:])
            t.ok("wc" in short and short["wc"].get("until"),
                 "... group wc is short of capacity until %s (failovers %s)"
                 % (short.get("wc", {}).get("until"), short.get("wc", {}).get("failovers")), str(status))
            failed = [n for n in ("wc1", "wc2") if "POWER" in s.state(n) or down(s.state(n))]
            t.ok(failed and all("POWERING_UP" not in s.state(n) for n in failed),
                 "... its nodes powered down (DOWN for the cooldown, so jobs go elsewhere): %s"
                 % states(["wc1", "wc2"]))
            metrics = s.c.run(ELASTICCTL, "-s", s.sock, "metrics").stdout
            t.ok('elasticd_group_short_of_capacity_until_seconds{group="wc"}' in metrics,
                 "... and the metrics show it")
            # kill -9 during the cooldown: the restarted elasticd keeps it (same
            # until, from the journal) and keeps the failed nodes DOWN for it.
            until = short.get("wc", {}).get("until")
            marked = [n for n in ("wc1", "wc2") if reason(n).startswith("elasticd")]
            s.kill_daemon(9)
            s.start_daemon()
            after = []

            def answered():
                # busy while it loads the journal
                after[:] = [s.ctl("status")]
                return after[0][0] == 0
            try:
                s.wait_for(answered, 30, "status after the restart")
            except HarnessError:
                pass
            status = after[0][1] if after else None
            short2 = (status or {}).get("short_of_capacity", {})
            t.ok(until and "wc" in short2 and short2["wc"].get("until") == until,
                 "kill -9 and a restart during the cooldown: group wc still short of capacity until %s (was %s)"
                 % (short2.get("wc", {}).get("until"), until), str(status))
            try:
                s.wait_for(lambda: all(down(s.state(n)) for n in marked), 60, "wc's failed nodes DOWN")
            except HarnessError:
                pass
            t.ok(marked and all(down(s.state(n)) for n in marked),
                 "... its failed nodes %s held DOWN for it across the restart: %s" % (marked, states(marked)),
                 s.log("elasticd.log")[-3000:])
            rc, res, err = s.ctl("group", "enable", "wc")
            rc2, status, _ = s.ctl("status")
            t.ok(rc == 0 and res and res.get("was_short") and "wc" not in (status or {}).get("short_of_capacity", {}),
                 "elasticctl group enable wc ends the cooldown", "%s %s %s" % (rc, res, err))
            try:
                s.wait_for(lambda: not any(down(s.state(n)) for n in ("wc1", "wc2")), 60, "wc's nodes usable again")
            except HarnessError:
                pass
            t.ok(not any(down(s.state(n)) for n in ("wc1", "wc2")),
                 "... and its nodes are usable again: %s" % states(["wc1", "wc2"]))

        # --- 6. an instance deleted behind elasticd's back -------------------------------
        if stage(6):
            s.c.run("scontrol", "update", "nodename=wa1", "state=power_up", check=True)
            st = wait_up(["wa1"], 90, "wa1 up")
            first = [x for x in ours(s.servers()) if x["name"] == "wa1"]
            t0 = time.monotonic()
            if first:
                # gone with its machine: the emulator forgets it, its namespace stops
                s.emu("DELETE", "servers/" + first[0]["id"])
                s.c.instance_down("wa1")
            try:
                s.wait_for(lambda: down(s.state("wa1")) and "POWERED_DOWN" in s.state("wa1"), 90,
                           "wa1 noticed, powered down and DOWN")
            except HarnessError:
                pass
            t.ok(first and down(s.state("wa1")) and "vanished" in reason("wa1"),
                 "an instance deleted behind elasticd's back: noticed in %s, node %s: %s"
                 % (elapsed(t0), s.state("wa1"), reason("wa1")), s.log("elasticd.log")[-3000:])
            s.c.run("scontrol", "update", "nodename=wa1", "state=resume")
            out = os.path.join(s.base, "h-%j.out")
            jid = s.c.sbatch("-w", "wa1", "-N1", "-o", out, "--wrap", "hostname")
            try:
                s.wait_for(lambda: s.c.job_state(jid) in ("COMPLETED", "FAILED", "CANCELLED"), 120,
                           "the job on wa1 to end")
            except HarnessError:
                pass
            now = [x for x in ours(s.servers()) if x["name"] == "wa1"]
            t.ok(s.c.job_state(jid) == "COMPLETED" and now and first and now[0]["id"] != first[0]["id"],
                 "after scontrol update state=resume a new job runs on a fresh instance (%s)"
                 % s.c.job_state(jid), "%s %s\n" % (s.state("wa1"), s.c.run("squeue", "-h", "-o", "%i %T %r %N").stdout)
                 + s.log("elasticd.log")[-3000:])
    except Exception as e:  # noqa: BLE001
        t.ok(False, "unexpected error: %s" % e, s.log("elasticd.log")[-3000:] if s.daemon else "")
    finally:
        s.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
