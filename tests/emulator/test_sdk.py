#!/usr/bin/python3
"""The real client library (Debian's python3-openstacksdk, the version the
captures in tests/fixtures/openstack were taken with) against the emulator:
discovery, microversion negotiation, paging, waits and error bodies must all
work as they do against the real cloud. Prints TAP; skips without the SDK."""

import logging
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

try:
    import openstack
    import openstack.exceptions
except ImportError:
    print("1..0 # SKIP python3-openstacksdk is not installed for %s" % sys.executable)
    sys.exit(0)

logging.getLogger("openstack").setLevel(logging.CRITICAL)
TESTS = []
EMU = None


def test(fn):
    TESTS.append(fn)
    return fn


def eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def connect(emu, auth="password", **extra):
    if auth == "password":
        a = {"auth_url": emu.auth_url, "username": "demo", "password": "demo",
             "project_name": "demo", "user_domain_name": "Default",
             "project_domain_name": "Default"}
        auth_type = "password"
    else:
        a = {"auth_url": emu.auth_url,
             "application_credential_id": harness.APPCRED["id"],
             "application_credential_secret": harness.APPCRED["secret"]}
        auth_type = "v3applicationcredential"
    kw = dict(auth=a, auth_type=auth_type, region_name="RegionOne", interface="public",
              identity_api_version="3", load_yaml_config=False, load_envvars=False)
    if emu.ca:
        kw["cacert"] = emu.ca
    kw.update(extra)
    return openstack.connect(**kw)


@test
def sdk_discovers_and_lists():
    conn = connect(EMU)
    flavors = sorted(f.name for f in conn.compute.flavors())
    eq(flavors, ["huge", "small"], "flavors")
    eq(conn.compute.find_flavor("small").id, "1", "find_flavor by name")
    img = conn.image.find_image("tiny")
    eq(img.id, harness.IMAGE_ID, "find_image by name")
    eq([i.name for i in conn.image.images(name="tiny-v2")], ["tiny-v2"], "images filter")
    conn2 = connect(EMU, auth="appcred")
    eq(conn2.compute.find_flavor("1").name, "small", "appcred session")


@test
def sdk_server_lifecycle():
    conn = connect(EMU)
    s = conn.compute.create_server(name="sdk-1", image_id=harness.IMAGE_ID, flavor_id="1",
                                   networks="auto", metadata={"slurm_node": "sdk-1"})
    s = conn.compute.wait_for_server(s, status="ACTIVE", interval=0.1, wait=30)
    eq(s.status, "ACTIVE", "status")
    addr = s.addresses["private"][0]["addr"]
    assert addr.startswith("10.80.0."), s.addresses
    eq(conn.compute.get_server_metadata(s).metadata["slurm_node"], "sdk-1", "metadata")
    conn.compute.set_server_metadata(s, slurm_state="idle")
    eq(conn.compute.get_server(s.id).metadata.get("slurm_state"), "idle", "set metadata")
    conn.compute.reboot_server(s, "HARD")
    s = conn.compute.wait_for_server(conn.compute.get_server(s.id), status="ACTIVE",
                                     interval=0.1, wait=30)
    conn.compute.rebuild_server(s, image=harness.IMAGE2_ID)
    wait_until(lambda: conn.compute.get_server(s.id).image["id"] == harness.IMAGE2_ID and
               conn.compute.get_server(s.id).status == "ACTIVE", "rebuild")
    out = conn.compute.get_server_console_output(s, length=1)["output"]
    assert out.startswith("sdk-1 login"), out
    conn.compute.delete_server(s)
    conn.compute.wait_for_delete(s, interval=0.1, wait=30)
    eq(conn.compute.find_server("sdk-1"), None, "gone")


@test
def sdk_pages_through_servers():
    conn = connect(EMU)
    ids = [conn.compute.create_server(name="page-%d" % i, image_id=harness.IMAGE_ID,
                                      flavor_id="1", networks="none").id for i in range(5)]
    got = [s.id for s in conn.compute.servers(details=True, limit=2)]
    eq(sorted(got), sorted(ids), "all pages")
    eq(len(got), 5, "no duplicates")
    reqs = EMU.requests(path="servers/detail")
    assert len(reqs) >= 3 and any("marker=" in r["path"] for r in reqs), reqs


@test
def sdk_sees_nova_errors():
    conn = connect(EMU)
    try:
        conn.compute.create_server(name="x", image_id=harness.IMAGE_ID, flavor_id="nope",
                                   networks="none")
        raise AssertionError("bad flavor accepted")
    except openstack.exceptions.BadRequestException as e:
        assert "Flavor nope could not be found." in str(e), str(e)
    s = conn.compute.create_server(name="too-big", image_id=harness.IMAGE_ID,
                                   flavor_id="99", networks="none")
    try:
        conn.compute.wait_for_server(s, status="ACTIVE", interval=0.1, wait=30)
        raise AssertionError("NoValidHost server went ACTIVE")
    except openstack.exceptions.ResourceFailure as e:
        assert "ERROR" in str(e), str(e)
    body = conn.compute.get("/servers/" + s.id, microversion="2.37").json()
    eq(body["server"]["fault"]["message"], "No valid host was found. ", "fault")
    EMU.config(quota_instances=1)
    try:
        conn.compute.create_server(name="q", image_id=harness.IMAGE_ID, flavor_id="1",
                                   networks="none")
        raise AssertionError("over quota accepted")
    except openstack.exceptions.HttpException as e:
        eq(e.status_code, 403, "over quota")
        assert "Quota exceeded for instances" in str(e), str(e)


@test
def sdk_reauthenticates_after_expiry():
    conn = connect(EMU)
    conn.compute.find_flavor("small")
    EMU.expire_tokens()
    # keystoneauth does not know the token died early: the call gets a 401,
    # the session re-authenticates and retries.
    eq(conn.compute.find_flavor("small").id, "1", "after expiry")
    statuses = [r["status"] for r in EMU.requests(path="flavors")]
    assert 401 in statuses, statuses


def wait_until(fn, what, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if fn():
            return
        time.sleep(0.1)
    raise AssertionError("timed out: " + what)


def main():
    global EMU
    print("1..%d" % (len(TESTS) + 1), flush=True)
    failed = 0
    n = 0
    for tls in (False, True):
        EMU = harness.EmulatorProcess(tls=tls, build_delay=0.2, delete_delay=0.1,
                                      reboot_delay=0.1, rebuild_delay=0.1)
        try:
            todo = TESTS if not tls else [sdk_discovers_and_lists]
            for fn in todo:
                n += 1
                name = fn.__name__ + (" (https)" if tls else "")
                try:
                    EMU.reset()
                    fn()
                    print("ok %d - %s" % (n, name), flush=True)
                except Exception:
                    failed += 1
                    print("not ok %d - %s" % (n, name))
                    for line in traceback.format_exc().splitlines():
                        print("# " + line)
                    sys.stdout.flush()
        finally:
            EMU.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
