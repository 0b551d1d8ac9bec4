#!/usr/bin/env python3
"""Tests of the OpenStack API emulator: each test talks HTTP to a real
emulator process and compares against the captured real responses in
tests/fixtures/openstack/. Prints TAP."""

import http.client
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

FIXTURES = os.path.join(HERE, "..", "fixtures", "openstack")
IMAGE = "012ff1c6-dc8d-4e82-8f73-8a2a63093040"
IMAGE2 = "7c1f2f0e-3a4b-4d2c-9e8f-5a6b7c8d9e0f"
NETWORK_ID = harness.NETWORK_ID
REAL_COMPUTE = "http://127.0.0.1:8774"
MV = "compute 2.37"


def fixture(name):
    with open(os.path.join(FIXTURES, name + ".json")) as f:
        return json.load(f)


OPAQUE = ("metadata", "meta", "addresses")


def shape(v):
    """The key structure of a JSON value (dict keys recursively, first list
    item); user data (metadata, addresses) counts as one opaque value."""
    if isinstance(v, dict):
        return {k: "..." if k in OPAQUE else shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return None


def same_keys(got, want, what):
    if shape(got) != shape(want):
        raise AssertionError("%s: keys differ from the real response:\n got  %s\n want %s"
                             % (what, json.dumps(shape(got), sort_keys=True),
                                json.dumps(shape(want), sort_keys=True)))


def eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def wait_for(fn, timeout=10.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class Emulator(harness.EmulatorProcess):
    """The harness's emulator with short delays and Nova-call helpers."""

    def __init__(self, *args, tls=False):
        super().__init__(*args, tls=tls, build_delay=0.2, delete_delay=0.1,
                         reboot_delay=0.1, rebuild_delay=0.1)

    def conn(self, ctx=None):
        return self.connection(context=ctx)

    def call(self, method, path, body=None, token=None, mv=MV, headers=None):
        """(status, headers dict (lower-case names), parsed JSON or raw text)."""
        h = {}
        if token:
            h["X-Auth-Token"] = token
        if mv and path.startswith("/compute/v2.1"):
            h["OpenStack-API-Version"] = mv
        h.update(headers or {})
        return self.request(method, path, body, h)

    def create(self, token, name, mv=MV, **extra):
        srv = {"name": name, "imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}
        srv.update(extra)
        st, h, out = self.call("POST", "/compute/v2.1/servers", {"server": srv},
                               token=token, mv=mv)
        if st != 202:
            raise AssertionError("create %s: %d %r" % (name, st, out))
        return out["server"]["id"]

    def show(self, token, sid, mv=MV):
        st, _, out = self.call("GET", "/compute/v2.1/servers/" + sid, token=token, mv=mv)
        return st, out

    def wait_status(self, token, sid, status, timeout=10.0):
        def check():
            st, out = self.show(token, sid)
            if status == 404:
                return st == 404
            return st == 200 and out["server"]["status"] == status and \
                out["server"]["OS-EXT-STS:task_state"] is None and out
        return wait_for(check, timeout, "%s to be %s" % (sid, status))


def password_auth(user, password, scope=True):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": password}}}}}
    if scope:
        body["auth"]["scope"] = {"project": {"name": user, "domain": {"name": "Default"}}}
    return body


def real_to_emu(v, emu):
    """A fixture body with the real cloud's URLs rewritten to the emulator's."""
    s = json.dumps(v).replace(REAL_COMPUTE + "/", emu.base + "/compute/")
    return json.loads(s)


# ---------------------------------------------------------------------------
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


E = None      # the shared emulator (reset before each test)
TOKEN = None


@test
def versions_match_fixtures():
    st, h, out = E.call("GET", "/v3")
    eq(st, 200, "GET /v3")
    same_keys(out, fixture("keystone-versions-v3")["response"]["body"], "keystone v3")
    st, _, out = E.call("GET", "/")
    eq(st, 300, "GET /")
    st, _, out = E.call("GET", "/compute/")
    eq(st, 200, "nova root")
    eq(out, real_to_emu(fixture("nova-versions-root")["response"]["body"], E), "nova versions")
    st, h, out = E.call("GET", "/compute/v2.1/", token=TOKEN, mv=None)
    want = fixture("nova-version-v2.1")["response"]
    eq(out, real_to_emu(want["body"], E), "v2.1 document")
    eq(h["openstack-api-version"], "compute 2.1", "version header")
    eq(h["x-openstack-nova-api-version"], "2.1", "legacy version header")


@test
def auth_password_by_name_and_id():
    want = fixture("keystone-auth-password")
    st, h, out = E.call("POST", "/v3/auth/tokens", want["request"]["body"])
    eq(st, 201, "status")
    assert h["x-subject-token"].startswith("gAAAAA"), h
    assert h["x-openstack-request-id"].startswith("req-"), h
    same_keys(out, want["response"]["body"], "password token")
    tok = out["token"]
    eq(tok["project"]["name"], "demo", "project")
    eq([r["name"] for r in tok["roles"]], ["reader", "member"], "roles")
    types = {c["type"]: c for c in tok["catalog"]}
    eq(sorted(types), ["compute", "identity", "image", "network"], "catalog")
    eq(sorted(e["interface"] for e in types["compute"]["endpoints"]),
       ["admin", "internal", "public"], "interfaces")
    eq(types["compute"]["endpoints"][0]["url"], E.base + "/compute/v2.1", "compute url")
    eq(types["identity"]["endpoints"][0]["url"], E.base + "/v3/", "identity url")
    # by ids, unscoped (scoped to the user's project)
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "id": "6a7dacd4b27f4841be76492cc8107742", "password": "demo"}}},
        "scope": {"project": {"id": "e861fe9e79eb4a6b9192e9b891ae0e52"}}}}
    st, h, out = E.call("POST", "/v3/auth/tokens", body)
    eq(st, 201, "by id")
    st, h, out = E.call("POST", "/v3/auth/tokens", password_auth("demo", "demo", scope=False))
    eq((st, out["token"]["project"]["id"]), (201, "e861fe9e79eb4a6b9192e9b891ae0e52"), "unscoped")
    # the token works on nova
    st, _, _ = E.call("GET", "/compute/v2.1/servers", token=h["x-subject-token"])
    eq(st, 200, "token usable")


@test
def auth_application_credential():
    for name in ("keystone-auth-appcred", "keystone-auth-appcred-by-name"):
        want = fixture(name)
        st, h, out = E.call("POST", "/v3/auth/tokens", want["request"]["body"])
        eq(st, 201, name)
        same_keys(out, want["response"]["body"], name)
        eq(out["token"]["application_credential"],
           want["response"]["body"]["token"]["application_credential"], name)
        eq(out["token"]["methods"], ["application_credential"], name)


@test
def auth_bad_credentials():
    for name in ("keystone-auth-401-bad-password", "keystone-auth-401-bad-appcred-secret"):
        want = fixture(name)
        st, h, out = E.call("POST", "/v3/auth/tokens", want["request"]["body"])
        eq((st, out), (401, want["response"]["body"]), name)
        assert "www-authenticate" in h, name
    st, _, out = E.call("POST", "/v3/auth/tokens", password_auth("nobody", "x"))
    eq(st, 401, "unknown user")
    body = password_auth("demo", "demo")
    body["auth"]["scope"]["project"]["name"] = "admin"
    st, _, out = E.call("POST", "/v3/auth/tokens", body)
    eq(st, 401, "foreign project")
    st, _, out = E.call("POST", "/v3/auth/tokens", {"auth": {}})
    eq(st, 400, "malformed")
    assert "identity" in out["error"]["message"], out
    st, _, out = E.call("POST", "/v3/auth/tokens", None, headers={"Content-Length": "0"})
    eq(st, 400, "empty body")


@test
def token_validation_and_expiry():
    want = fixture("keystone-token-validate")
    st, h, out = E.call("GET", "/v3/auth/tokens", token=TOKEN,
                        headers={"X-Subject-Token": TOKEN})
    eq(st, 200, "validate")
    same_keys(out, want["response"]["body"], "validate")
    eq(h["x-subject-token"], TOKEN, "subject echoed")
    st, _, out = E.call("GET", "/v3/auth/tokens", token=TOKEN,
                        headers={"X-Subject-Token": "gAAAAAnotatoken"})
    eq((st, out), (404, fixture("keystone-404-token-invalid")["response"]["body"]), "bad subject")
    for path, fx in (("/compute/v2.1/servers", "nova-401-bad-token"),
                     ("/image/v2/images", "glance-401-no-token")):
        st, h, out = E.call("GET", path, token="gAAAAAbogus")
        eq((st, out), (401, fixture(fx)["response"]["body"]), path)
        assert "openstack-api-version" not in h, h
    tok = E.token()
    eq(E.call("GET", "/compute/v2.1/servers", token=tok)[0], 200, "before expiry")
    E.control("POST", "tokens/expire")
    eq(E.call("GET", "/compute/v2.1/servers", token=tok)[0], 401, "after expiry")
    eq(E.call("GET", "/image/v2/images", token=tok)[0], 401, "glance after expiry")
    E.control("POST", "config", {"token_ttl": 2.0})
    tok = E.token()
    eq(E.call("GET", "/compute/v2.1/flavors", token=tok)[0], 200, "short token fresh")
    wait_for(lambda: E.call("GET", "/compute/v2.1/flavors", token=tok)[0] == 401,
             what="short token to expire")


@test
def microversions():
    want = fixture("nova-406-bad-microversion")["response"]
    st, h, out = E.call("GET", "/compute/v2.1/servers", token=TOKEN, mv="compute 2.999")
    eq((st, out), (406, want["body"]), "406")
    eq(h["openstack-api-version"], "compute 2.999", "406 echo")
    st, h, out = E.call("GET", "/compute/v2.1/servers", token=TOKEN, mv=None,
                        headers={"X-OpenStack-Nova-API-Version": "2.60"})
    eq((st, h["openstack-api-version"], h["x-openstack-nova-api-version"]),
       (200, "compute 2.60", "2.60"), "legacy header")
    st, h, out = E.call("GET", "/compute/v2.1/servers", token=TOKEN, mv="compute latest")
    eq(h["openstack-api-version"], "compute 2.93", "latest")
    st, h, out = E.call("GET", "/compute/v2.1/servers", token=TOKEN, mv="compute 2.x")
    eq((st, list(out)), (400, ["badRequest"]), "garbage version")
    assert h["x-compute-request-id"] == h["x-openstack-request-id"], h


@test
def headers_match_fixtures():
    """Every header a real response carried (but Connection) comes back."""
    sid = E.create(TOKEN, "cn1", metadata={"slurm_node": "cn1", "slurm_cluster": "harness"})
    E.wait_status(TOKEN, sid, "ACTIVE")
    real_id = "fe4fbf7f-0cb0-464b-8d6b-8cd02c7c41c9"
    cases = ["keystone-versions-v3", "keystone-auth-password", "keystone-auth-401-bad-password",
             "keystone-token-validate", "nova-versions-root", "nova-version-v2.1",
             "nova-401-bad-token", "nova-406-bad-microversion", "nova-flavors-detail",
             "nova-server-show-active", "nova-servers-detail", "nova-server-metadata",
             "nova-server-metadata-set-item", "nova-server-404",
             "nova-server-create-400-bad-flavor", "nova-server-reboot-202",
             "nova-server-rebuild-202", "nova-server-create-202", "nova-server-delete-204",
             "glance-image-show", "glance-images-by-name", "glance-image-404",
             "glance-401-no-token"]
    for name in cases:
        fx = fixture(name)
        rq = fx["request"]
        u = urllib.parse.urlsplit(rq["url"])
        port = u.netloc.rsplit(":", 1)[1]
        prefix = {"5000": "", "8774": "/compute", "9292": "/image"}[port]
        path = prefix + u.path + ("?" + u.query if u.query else "")
        path = path.replace(real_id, sid)
        h = dict(rq["headers"])
        if h.get("X-Auth-Token") == "<token>":
            h["X-Auth-Token"] = TOKEN if fx["response"]["status"] != 401 else "gAAAAAbad"
        if "X-Subject-Token" in h and name == "keystone-token-validate":
            h["X-Subject-Token"] = TOKEN
        st, got, _ = E.request(rq["method"], path, rq["body"], h)
        eq(st, fx["response"]["status"], name)
        want = {k.lower() for k in fx["response"]["headers"]} - {"connection"}
        missing = want - set(got)
        assert not missing, "%s: missing headers %s" % (name, sorted(missing))
        if name.startswith("nova-server-delete"):
            E.wait_status(TOKEN, sid, 404)
        elif name in ("nova-server-reboot-202", "nova-server-rebuild-202"):
            E.wait_status(TOKEN, sid, "ACTIVE")


@test
def create_show_active_like_real_nova():
    want = fixture("nova-server-create-202")
    E.control("POST", "config", {"build_hang_regex": "^cn1$"})
    st, h, out = E.call("POST", "/compute/v2.1/servers", want["request"]["body"], token=TOKEN)
    eq(st, 202, "create")
    same_keys(out, want["response"]["body"], "create body")
    sid = out["server"]["id"]
    eq(h["location"], E.base + "/compute/v2.1/servers/" + sid, "Location")
    eq(out["server"]["security_groups"], [{"name": "default"}], "security groups")
    st, first = E.show(TOKEN, sid)
    real = fixture("nova-server-show-active-first")["response"]["body"]["server"]
    for k in ("status", "OS-EXT-STS:task_state", "OS-EXT-STS:vm_state", "hostId",
              "OS-EXT-AZ:availability_zone", "OS-EXT-STS:power_state"):
        eq(first["server"][k], real[k], "BUILD " + k)
    same_keys(first, {"server": real}, "BUILD")
    E.control("POST", "config", {"build_hang_regex": None})
    out = E.wait_status(TOKEN, sid, "ACTIVE")
    real = fixture("nova-server-show-active")["response"]["body"]
    same_keys(out, real, "ACTIVE")
    s = out["server"]
    for k in ("OS-EXT-STS:vm_state", "OS-EXT-STS:power_state", "OS-EXT-AZ:availability_zone",
              "metadata", "addresses", "tenant_id", "user_id", "name", "progress"):
        eq(s[k], real["server"][k], k)
    assert s["OS-SRV-USG:launched_at"] and len(s["hostId"]) == 56, s
    st, out = E.show(TOKEN, sid, mv="compute 2.93")
    same_keys(out, fixture("nova-server-show-active-mv2.93")["response"]["body"], "2.93")
    # the list views
    st, _, lst = E.call("GET", "/compute/v2.1/servers", token=TOKEN)
    same_keys(lst, fixture("nova-servers-list")["response"]["body"], "list")
    st, _, det = E.call("GET", "/compute/v2.1/servers/detail?name=%5Ecn1%24", token=TOKEN)
    same_keys(det, fixture("nova-servers-detail-by-name")["response"]["body"], "detail")


@test
def create_assigns_addresses_from_pool():
    sids = [E.create(TOKEN, "addr-%d" % i) for i in range(3)]
    addrs = []
    for sid in sids:
        s = E.wait_status(TOKEN, sid, "ACTIVE")["server"]
        eq(s["security_groups"], [{"name": "default"}], "ports bring security groups")
        a = s["addresses"]["private"][0]
        eq((a["version"], a["OS-EXT-IPS:type"]), (4, "fixed"), "address kind")
        addrs.append(a["addr"])
    eq(sorted(addrs), ["10.80.0.2", "10.80.0.3", "10.80.0.4"], "pool order")
    st, _, lst = E.call("GET", "/compute/v2.1/servers/detail?ip=10%5C.80%5C.0%5C.3%24",
                        token=TOKEN)
    eq([s["id"] for s in lst["servers"]], [sids[addrs.index("10.80.0.3")]], "ip filter")
    # a fixed_ip request and a per-test pool
    E.control("POST", "config", {"address_pool": "192.168.7.10,192.168.7.11"})
    sid = E.create(TOKEN, "pool-1")
    s = E.wait_status(TOKEN, sid, "ACTIVE")["server"]
    eq(s["addresses"]["private"][0]["addr"], "192.168.7.10", "runtime pool")
    sid = E.create(TOKEN, "fixed", networks=[{"uuid": "4b6b1e2c-2f7e-4c5a-9d3b-8e1f0a2b3c4d",
                                              "fixed_ip": "192.168.9.9"}])
    s = E.wait_status(TOKEN, sid, "ACTIVE")["server"]
    eq(s["addresses"]["private"][0]["addr"], "192.168.9.9", "fixed_ip")
    sid = E.create(TOKEN, "none", networks="none")
    eq(E.wait_status(TOKEN, sid, "ACTIVE")["server"]["addresses"], {}, "networks none")
    st, _, out = E.call("POST", "/compute/v2.1/servers", {"server": {
        "name": "x", "imageRef": IMAGE, "flavorRef": "1",
        "networks": [{"uuid": "00000000-0000-0000-0000-000000000000"}]}}, token=TOKEN)
    eq((st, out["badRequest"]["message"]),
       (400, "Network 00000000-0000-0000-0000-000000000000 could not be found."), "bad net")
    # exhausted pool: ERROR like Nova's network allocation failure
    E.control("POST", "config", {"address_pool": "192.168.7.10,192.168.7.11"})
    E.wait_status(TOKEN, E.create(TOKEN, "pool-2"), "ACTIVE")
    sid = E.create(TOKEN, "pool-3")
    s = E.wait_status(TOKEN, sid, "ERROR")["server"]
    assert "Failed to allocate the network" in s["fault"]["message"], s


@test
def create_errors_like_real_nova():
    for name in ("nova-server-create-400-bad-flavor", "nova-server-create-400-bad-image",
                 "nova-server-create-400-networks-none-mv2.36",
                 "nova-server-create-400-schema"):
        fx = fixture(name)
        mv = fx["request"]["headers"]["OpenStack-API-Version"]
        st, h, out = E.call("POST", "/compute/v2.1/servers", fx["request"]["body"],
                            token=TOKEN, mv=mv)
        eq((st, out), (fx["response"]["status"], fx["response"]["body"]), name)
        eq(h["content-type"], "application/json; charset=UTF-8", name)
        eq(h["openstack-api-version"], mv, name)
    base = {"name": "t", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}
    for extra, mv, frag in (({"tags": ["a"]}, "compute 2.51", "'tags' was unexpected"),
                            ({"bogus": 1}, MV, "'bogus' was unexpected"),
                            ({"user_data": "not base64!"}, MV, "is not a 'base64'"),
                            ({"metadata": {"a": 1}}, MV, "is not of type 'string'"),
                            ({"availability_zone": "mars"}, MV, "availability zone")):
        st, _, out = E.call("POST", "/compute/v2.1/servers",
                            {"server": dict(base, **extra)}, token=TOKEN, mv=mv)
        eq(st, 400, str(extra))
        assert frag in out["badRequest"]["message"], out
    for ref, msg in (("", "Missing imageRef attribute"), ("tiny", "Invalid imageRef provided."),
                     (E.base + "/image/v2/images/" + IMAGE, None)):
        st, _, out = E.call("POST", "/compute/v2.1/servers",
                            {"server": dict(base, imageRef=ref)}, token=TOKEN)
        eq((st, out["badRequest"]["message"] if msg else None), (400 if msg else 202, msg), ref)
    st, _, out = E.call("POST", "/compute/v2.1/servers", {"server": dict(
        base, flavorRef=E.base + "/compute/flavors/7")}, token=TOKEN)
    eq(out["badRequest"]["message"], "Flavor 7 could not be found.", "flavor href")
    body = dict(base)
    del body["networks"]
    st, _, out = E.call("POST", "/compute/v2.1/servers", {"server": body}, token=TOKEN)
    assert "'networks' is a required property" in out["badRequest"]["message"], out
    st, _, out = E.call("POST", "/compute/v2.1/servers", {"server": body}, token=TOKEN,
                        mv="compute 2.36")
    eq(st, 202, "networks optional before 2.37")
    st, _, out = E.call("POST", "/compute/v2.1/servers", headers={"Content-Type": "application/json"},
                        body=None, token=TOKEN)
    eq(st, 400, "no body")
    sid = E.create(TOKEN, "tagged", mv="compute 2.52", tags=["elastic", "g1"],
                   user_data="IyEvYmluL3NoCg==", key_name="k")
    st, out = E.show(TOKEN, sid, mv="compute 2.52")
    eq((out["server"]["tags"], out["server"]["key_name"]), (["elastic", "g1"], "k"), "tags+key")


@test
def list_paging_and_order():
    sids = [E.create(TOKEN, "page-%d" % i, networks="none") for i in range(5)]
    seen, path, pages = [], "/compute/v2.1/servers/detail?limit=2", 0
    while path:
        st, _, out = E.call("GET", path, token=TOKEN)
        eq(st, 200, path)
        pages += 1
        seen += [s["id"] for s in out["servers"]]
        nxt = out.get("servers_links")
        if nxt:
            eq(nxt[0]["rel"], "next", "rel")
            u = urllib.parse.urlsplit(nxt[0]["href"])
            eq(u.scheme + "://" + u.netloc + u.path, E.base + "/compute/v2.1/servers/detail", "href")
            q = dict(urllib.parse.parse_qsl(u.query))
            eq((q["limit"], q["marker"]), ("2", seen[-1]), "next params")
            path = "/compute/v2.1/servers/detail?" + u.query
        else:
            path = None
    eq(seen, list(reversed(sids)), "newest first, all once")
    eq(pages, 3, "pages")
    st, _, out = E.call("GET", "/compute/v2.1/servers?limit=5", token=TOKEN)
    assert "servers_links" in out, "a full page has a next link"
    st, _, out = E.call("GET", "/compute/v2.1/servers?marker=nope", token=TOKEN)
    eq((st, out["badRequest"]["message"]), (400, "marker [nope] not found"), "bad marker")
    st, _, out = E.call("GET", "/compute/v2.1/servers?limit=x", token=TOKEN)
    eq(st, 400, "bad limit")
    st, _, out = E.call("GET", "/compute/v2.1/servers", token=TOKEN)
    assert "servers_links" not in out, "no next link below the limit"


@test
def list_paging_capped_at_1000():
    c = E.control("POST", "config", {"build_delay": 0.0})
    assert c["build_delay"] == 0.0
    body = {"server": {"name": "many", "imageRef": IMAGE, "flavorRef": "1",
                       "networks": "none", "max_count": 1001}}
    st, _, out = E.call("POST", "/compute/v2.1/servers", body, token=TOKEN)
    eq(st, 202, "multi-create")
    st, _, out = E.call("GET", "/compute/v2.1/servers?limit=5000", token=TOKEN)
    eq(len(out["servers"]), 1000, "capped page")
    assert "limit=5000" in out["servers_links"][0]["href"], out["servers_links"]
    st, _, out2 = E.call("GET", out["servers_links"][0]["href"][len(E.base):], token=TOKEN)
    eq(len(out2["servers"]), 1, "rest")
    names = {s["name"] for s in out["servers"] + out2["servers"]}
    eq(len(names), 1001, "multi-create names")
    assert "many-1" in names and "many-1001" in names


@test
def list_filters():
    a = E.create(TOKEN, "cn1", mv="compute 2.52", tags=["elastic", "g1"],
                 metadata={"slurm_node": "cn1"})
    b = E.create(TOKEN, "cn10", mv="compute 2.52", tags=["elastic"],
                 metadata={"slurm_node": "cn10"})
    c = E.create(TOKEN, "other", mv="compute 2.52", flavorRef="99")
    E.wait_status(TOKEN, a, "ACTIVE")
    E.wait_status(TOKEN, b, "ACTIVE")
    E.wait_status(TOKEN, c, "ERROR")

    def ids(q, mv=MV, token=TOKEN):
        st, _, out = E.call("GET", "/compute/v2.1/servers/detail" + q, token=token, mv=mv)
        eq(st, 200, q)
        return sorted(s["id"] for s in out["servers"])
    eq(ids("?name=%5Ecn1%24"), [a], "anchored regex")
    eq(ids("?name=%5ECN1%24"), [a], "case-insensitive like MySQL REGEXP")
    eq(ids("?name=cn1"), sorted([a, b]), "regex search")
    eq(ids("?status=ERROR"), [c], "status")
    eq(ids("?status=ACTIVE&status=ERROR"), sorted([a, b, c]), "statuses")
    eq(ids("?status=BOGUS"), [], "unknown status before 2.38")
    st, _, out = E.call("GET", "/compute/v2.1/servers?status=BOGUS", token=TOKEN,
                        mv="compute 2.38")
    eq(st, 400, "unknown status 2.38")
    eq(ids("?tags=elastic,g1", mv="compute 2.26"), [a], "tags")
    eq(ids("?tags-any=g1,zzz", mv="compute 2.26"), [a], "tags-any")
    eq(ids("?not-tags-any=g1", mv="compute 2.26"), sorted([b, c]), "not-tags-any")
    eq(ids("?flavor=99"), [c], "flavor")
    # metadata: ignored for non-admin (like the captured real Nova), 400 for admin
    meta = "?metadata=%7B%22slurm_node%22%3A%22cn1%22%7D"
    eq(ids(meta), sorted([a, b, c]), "metadata ignored")
    adm = E.token("admin", "admin")
    st, _, out = E.call("GET", "/compute/v2.1/servers/detail" + meta + "&all_tenants=1",
                        token=adm)
    eq((st, out), (400, fixture("nova-servers-detail-metadata-filter-admin")["response"]["body"]),
       "admin metadata")
    st, _, out = E.call("GET", "/compute/v2.1/servers/detail?all_tenants=1", token=TOKEN)
    eq(st, 403, "all_tenants non-admin")
    eq(ids("", token=adm), [], "other project's servers are invisible")
    # changes-since returns deleted servers too
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    E.call("DELETE", "/compute/v2.1/servers/" + b, token=TOKEN)
    E.wait_status(TOKEN, b, 404)
    eq(ids(""), sorted([a, c]), "deleted hidden")
    st, _, out = E.call("GET", "/compute/v2.1/servers/detail?changes-since=" + since,
                        token=TOKEN)
    st_by_id = {s["id"]: s["status"] for s in out["servers"]}
    eq(st_by_id.get(b), "DELETED", "changes-since shows DELETED")
    # Like Nova's instance_destroy: the deleted server's tags are gone and its
    # metadata soft-deleted, so a tag filter no longer finds it.
    dead = [s for s in out["servers"] if s["id"] == b][0]
    eq((dead["metadata"], "fault" in dead), ({}, False), "deleted: no metadata, no fault")
    st, _, out = E.call("GET", "/compute/v2.1/servers/detail?tags=elastic&changes-since=" + since,
                        token=TOKEN, mv="compute 2.52")
    eq(sorted(s["id"] for s in out["servers"]), [a], "tagged changes-since: no deleted server")
    st, _, out = E.call("GET", "/compute/v2.1/servers/detail?changes-since=" + since,
                        token=TOKEN, mv="compute 2.52")
    eq([s["tags"] for s in out["servers"] if s["id"] == b], [[]], "deleted: no tags")
    # only what changed at or after changes-since
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    eq(ids("?changes-since=" + later), [], "nothing changed since")
    # changes-before (2.66): ignored before, at or before it from 2.66
    eq(ids("?changes-before=" + since), sorted([a, c]), "changes-before ignored before 2.66")
    eq(ids("?changes-before=" + since, mv="compute 2.66"), [], "changes-before")
    eq(ids("?changes-before=" + later, mv="compute 2.66"), sorted([a, b, c]),
       "changes-before brings deleted servers too")
    st, _, out = E.call("GET", "/compute/v2.1/servers/detail?changes-since=%s&changes-before=%s"
                        % (later, since), token=TOKEN, mv="compute 2.66")
    eq(st, 400, "changes-before earlier than changes-since")
    st, _, out = E.call("GET", "/compute/v2.1/servers?changes-since=garbage", token=TOKEN)
    eq(st, 400, "bad changes-since")
    # deleted_keep: deleted rows archived after that long
    E.control("POST", "config", {"deleted_keep": 0})
    eq(ids("?changes-since=" + since), sorted([a, c]), "deleted server archived")
    E.control("POST", "config", {"deleted_keep": None})
    st, _, out = E.call("GET", "/compute/v2.1/servers?status=DELETED", token=TOKEN)
    eq(st, 403, "DELETED non-admin")


@test
def delete_flow():
    sid = E.create(TOKEN, "cn1", networks="none")
    E.wait_status(TOKEN, sid, "ACTIVE")
    E.control("POST", "config", {"delete_hang_regex": "^cn1$"})
    want = fixture("nova-server-delete-204")["response"]
    st, h, out = E.call("DELETE", "/compute/v2.1/servers/" + sid, token=TOKEN)
    eq((st, out, h["content-length"]), (204, None, "0"), "delete")
    st, out = E.show(TOKEN, sid)
    real = fixture("nova-server-show-deleting")["response"]["body"]
    same_keys(out, real, "deleting")
    eq((out["server"]["status"], out["server"]["OS-EXT-STS:task_state"]),
       ("ACTIVE", "deleting"), "deleting state")
    st, _, _ = E.call("DELETE", "/compute/v2.1/servers/" + sid, token=TOKEN)
    eq(st, 204, "delete while deleting")
    E.control("POST", "config", {"delete_hang_regex": None})
    E.wait_status(TOKEN, sid, 404)
    st, out = E.show(TOKEN, sid)
    want = fixture("nova-server-show-404-after-delete")["response"]["body"]
    eq(out, json.loads(json.dumps(want).replace("fe4fbf7f-0cb0-464b-8d6b-8cd02c7c41c9", sid)), "404")
    st, _, out = E.call("DELETE", "/compute/v2.1/servers/" + sid, token=TOKEN)
    eq(st, 404, "delete again")
    srv = E.control("GET", "servers")
    eq((srv["count"], srv["deleted"]), (0, 1), "control counts")
    # deleting during BUILD cancels the build
    E.control("POST", "config", {"build_delay": 5.0, "delete_delay": 0.0})
    sid = E.create(TOKEN, "early")
    E.call("DELETE", "/compute/v2.1/servers/" + sid, token=TOKEN)
    E.wait_status(TOKEN, sid, 404)


@test
def reboot_and_rebuild_flows():
    sid = E.create(TOKEN, "cn1", metadata={"slurm_node": "cn1"}, networks="none")
    E.wait_status(TOKEN, sid, "ACTIVE")
    E.control("POST", "config", {"reboot_hang_regex": "^cn1$", "rebuild_hang_regex": "^cn1$"})
    fx = fixture("nova-server-reboot-202")
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid, fx["request"]["body"],
                        token=TOKEN)
    eq((st, out), (202, None), "reboot")
    st, out = E.show(TOKEN, sid)
    same_keys(out, fixture("nova-server-show-after-reboot-first")["response"]["body"], "REBOOT")
    eq(out["server"]["status"], "REBOOT", "REBOOT")
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid,
                        {"reboot": {"type": "SOFT"}}, token=TOKEN)
    eq(st, 409, "soft reboot while rebooting")
    assert "task_state reboot" in out["conflictingRequest"]["message"], out
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid,
                        {"reboot": {"type": "HARD"}}, token=TOKEN)
    eq(st, 202, "hard reboot during soft")
    st, out = E.show(TOKEN, sid)
    eq(out["server"]["status"], "HARD_REBOOT", "HARD_REBOOT")
    E.control("POST", "config", {"reboot_hang_regex": None})
    out = E.wait_status(TOKEN, sid, "ACTIVE")
    same_keys(out, fixture("nova-server-show-after-reboot")["response"]["body"], "after reboot")
    # rebuild
    fx = fixture("nova-server-rebuild-202")
    body = {"rebuild": {"imageRef": IMAGE2, "metadata": {"slurm_node": "cn1", "rebuilt": "yes"}}}
    st, h, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid, body, token=TOKEN)
    eq(st, 202, "rebuild")
    same_keys(out, fx["response"]["body"], "rebuild body")
    eq(h["location"], E.base + "/compute/v2.1/servers/" + sid, "rebuild Location")
    eq((out["server"]["status"], out["server"]["image"]["id"], out["server"]["metadata"]),
       ("REBUILD", IMAGE2, {"slurm_node": "cn1", "rebuilt": "yes"}), "rebuild state")
    st, out = E.show(TOKEN, sid)
    same_keys(out, fixture("nova-server-show-after-rebuild-first")["response"]["body"], "REBUILD")
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid,
                        {"rebuild": {"imageRef": IMAGE}}, token=TOKEN)
    eq(st, 409, "rebuild while rebuilding")
    E.control("POST", "config", {"rebuild_hang_regex": None})
    out = E.wait_status(TOKEN, sid, "ACTIVE")
    same_keys(out, fixture("nova-server-show-after-rebuild")["response"]["body"], "after rebuild")
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid,
                        {"rebuild": {"imageRef": "abf6ab3b-b32c-4472-ade5-588c9633aa0b"}},
                        token=TOKEN)
    eq((st, out["badRequest"]["message"]), (400, "Cannot find image for rebuild"), "bad image")
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid,
                        {"rebuild": {"imageRef": "nope"}}, token=TOKEN)
    eq((st, out["badRequest"]["message"]), (400, "Invalid imageRef provided."), "not a uuid")
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid,
                        {"rebuild": {"imageRef": IMAGE}}, token=TOKEN, mv="compute 2.93")
    same_keys(out["server"], dict(E.show(TOKEN, sid, "compute 2.93")[1]["server"],
                                  adminPass=""), "rebuild 2.75+ body = show body")
    # actions on an ERROR server and a missing one
    err = E.create(TOKEN, "too-big", flavorRef="99")
    E.wait_status(TOKEN, err, "ERROR")
    fx = fixture("nova-server-reboot-409-error-state")
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % err, fx["request"]["body"],
                        token=TOKEN)
    eq((st, out), (409, json.loads(json.dumps(fx["response"]["body"]).replace(
        "3d33be44-d01f-47e1-925e-24cddfcc8812", err))), "reboot ERROR")
    fx = fixture("nova-server-action-404")
    st, _, out = E.call("POST", "/compute/v2.1/servers/564705d8-2422-4c56-8d5f-286a04335343/action",
                        fx["request"]["body"], token=TOKEN)
    eq((st, out), (404, fx["response"]["body"]), "action 404")
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid, {"reboot": {"type": "x"}},
                        token=TOKEN)
    eq(st, 400, "bad reboot type")
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid, {"explode": None},
                        token=TOKEN)
    eq(st, 400, "unknown action")


@test
def error_builds_like_real_nova():
    E.control("POST", "config", {"build_hang_regex": "^too-big$"})
    sid = E.create(TOKEN, "too-big", flavorRef="99")
    st, first = E.show(TOKEN, sid)
    same_keys(first, fixture("nova-server-show-error-novalidhost-first")["response"]["body"],
              "first")
    eq(first["server"]["status"], "BUILD", "first")
    E.control("POST", "config", {"build_hang_regex": None})
    out = E.wait_status(TOKEN, sid, "ERROR")
    real = fixture("nova-server-show-error-novalidhost")["response"]["body"]
    same_keys(out, real, "NoValidHost")
    eq(out["server"]["fault"]["message"], real["server"]["fault"]["message"], "fault message")
    eq((out["server"]["hostId"], out["server"]["OS-EXT-AZ:availability_zone"]), ("", ""), "no host")
    E.control("POST", "config", {"build_error_regex": "^harness-fail", "build_error_kind": "spawn"})
    sid = E.create(TOKEN, "harness-fail-1")
    out = E.wait_status(TOKEN, sid, "ERROR")
    same_keys(out, fixture("nova-server-show-error-spawn")["response"]["body"], "spawn")
    eq(out["server"]["fault"]["message"],
       "Build of instance %s aborted: emulator: injected spawn failure" % sid, "spawn message")
    E.control("POST", "config", {"build_error_regex": None, "build_error_next": 1,
                                 "build_error_kind": "novalidhost"})
    a, b = E.create(TOKEN, "n1"), E.create(TOKEN, "n2")
    E.wait_status(TOKEN, a, "ERROR")
    E.wait_status(TOKEN, b, "ACTIVE")
    E.control("POST", "config", {"build_error_rate": 1.0})
    E.wait_status(TOKEN, E.create(TOKEN, "n3"), "ERROR")
    # ERROR servers can be deleted
    E.call("DELETE", "/compute/v2.1/servers/" + sid, token=TOKEN)
    E.wait_status(TOKEN, sid, 404)


@test
def lock_metadata_tags():
    sid = E.create(TOKEN, "cn1", metadata={"slurm_node": "cn1", "slurm_cluster": "harness"})
    E.wait_status(TOKEN, sid, "ACTIVE")
    st, _, out = E.call("GET", "/compute/v2.1/servers/%s/metadata" % sid, token=TOKEN)
    eq(out, fixture("nova-server-metadata")["response"]["body"], "metadata")
    fx = fixture("nova-server-metadata-set-item")
    st, _, out = E.call("PUT", "/compute/v2.1/servers/%s/metadata/slurm_state" % sid,
                        fx["request"]["body"], token=TOKEN)
    eq((st, out), (200, fx["response"]["body"]), "set item")
    st, _, out = E.call("GET", "/compute/v2.1/servers/%s/metadata/slurm_state" % sid, token=TOKEN)
    eq(out, {"meta": {"slurm_state": "idle"}}, "get item")
    st, _, out = E.call("PUT", "/compute/v2.1/servers/%s/metadata/other" % sid,
                        fx["request"]["body"], token=TOKEN)
    eq(st, 400, "URI mismatch")
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/metadata" % sid,
                        {"metadata": {"x": "1"}}, token=TOKEN)
    eq(len(out["metadata"]), 4, "merge")
    st, _, _ = E.call("DELETE", "/compute/v2.1/servers/%s/metadata/x" % sid, token=TOKEN)
    eq(st, 204, "delete item")
    st, _, _ = E.call("GET", "/compute/v2.1/servers/%s/metadata/x" % sid, token=TOKEN)
    eq(st, 404, "deleted item")
    # lock
    for name in ("nova-server-lock-202",):
        st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid, {"lock": None},
                            token=TOKEN)
        eq((st, out), (202, None), name)
    for method, body, fx in (("DELETE", None, "nova-server-delete-409-locked"),
                             ("POST", {"reboot": {"type": "HARD"}}, "nova-server-reboot-409-locked")):
        path = "/compute/v2.1/servers/" + sid + ("/action" if body else "")
        st, _, out = E.call(method, path, body, token=TOKEN)
        want = json.loads(json.dumps(fixture(fx)["response"]["body"]).replace(
            "fe4fbf7f-0cb0-464b-8d6b-8cd02c7c41c9", sid))
        eq((st, out), (409, want), fx)
    st, _, out = E.call("GET", "/compute/v2.1/servers/" + sid, token=TOKEN)
    eq(out["server"]["locked"], True, "locked shown")
    E.call("POST", "/compute/v2.1/servers/%s/action" % sid, {"unlock": None}, token=TOKEN)
    # tags
    t = "compute 2.26"
    st, h, _ = E.call("PUT", "/compute/v2.1/servers/%s/tags/g1" % sid, token=TOKEN, mv=t)
    eq(st, 201, "add tag")
    assert h["location"].endswith("/servers/%s/tags/g1" % sid), h
    eq(E.call("PUT", "/compute/v2.1/servers/%s/tags/g1" % sid, token=TOKEN, mv=t)[0], 204, "again")
    eq(E.call("GET", "/compute/v2.1/servers/%s/tags/g1" % sid, token=TOKEN, mv=t)[0], 204, "check")
    eq(E.call("GET", "/compute/v2.1/servers/%s/tags/g2" % sid, token=TOKEN, mv=t)[0], 404, "absent")
    st, _, out = E.call("PUT", "/compute/v2.1/servers/%s/tags" % sid, {"tags": ["a", "b"]},
                        token=TOKEN, mv=t)
    eq((st, out), (200, {"tags": ["a", "b"]}), "replace")
    st, _, out = E.call("GET", "/compute/v2.1/servers/%s/tags" % sid, token=TOKEN, mv=t)
    eq(out, {"tags": ["a", "b"]}, "list")
    eq(E.call("DELETE", "/compute/v2.1/servers/%s/tags/a" % sid, token=TOKEN, mv=t)[0], 204, "del")
    eq(E.call("GET", "/compute/v2.1/servers/%s/tags" % sid, token=TOKEN, mv="compute 2.25")[0],
       404, "tags before 2.26")
    st, _, out = E.call("PUT", "/compute/v2.1/servers/%s/tags/a,b" % sid, token=TOKEN, mv=t)
    eq(st, 400, "comma tag")


@test
def flavors_images_limits():
    st, _, out = E.call("GET", "/compute/v2.1/flavors/detail", token=TOKEN)
    eq(out, real_to_emu(fixture("nova-flavors-detail")["response"]["body"], E), "flavors")
    st, _, out = E.call("GET", "/compute/v2.1/flavors/detail?limit=1", token=TOKEN)
    eq(([f["id"] for f in out["flavors"]], out["flavors_links"][0]["href"]),
       (["1"], E.base + "/compute/v2.1/flavors/detail?limit=1&marker=1"), "flavor paging")
    st, _, out = E.call("GET", "/compute/v2.1/flavors?limit=1&marker=1", token=TOKEN)
    eq([f["id"] for f in out["flavors"]], ["99"], "flavor page 2")
    st, _, out = E.call("GET", "/compute/v2.1/flavors/1", token=TOKEN)
    eq(out["flavor"]["name"], "small", "flavor show")
    st, _, out = E.call("GET", "/compute/v2.1/flavors/nope", token=TOKEN)
    eq((st, list(out)), (404, ["itemNotFound"]), "flavor 404")
    fx = fixture("nova-flavor-create-403-nonadmin")
    st, _, out = E.call("POST", "/compute/v2.1/flavors", fx["request"]["body"], token=TOKEN)
    eq((st, out), (403, fx["response"]["body"]), "flavor create")
    fx = fixture("glance-images-by-name")["response"]["body"]
    st, h, out = E.call("GET", "/image/v2/images?name=tiny", token=TOKEN)
    same_keys(out, fx, "images by name")
    eq((out["images"][0]["id"], out["first"]), (IMAGE, fx["first"]), "by name")
    assert h["x-openstack-request-id"].startswith("req-"), h
    st, _, out = E.call("GET", "/image/v2/images/" + IMAGE, token=TOKEN)
    same_keys(out, fixture("glance-image-show")["response"]["body"], "image show")
    fx = fixture("glance-image-404")
    st, _, out = E.call("GET", "/image/v2/images/abf6ab3b-b32c-4472-ade5-588c9633aa0b", token=TOKEN)
    eq((st, out), (404, fx["response"]["body"]), "image 404")
    st, _, out = E.call("GET", "/image/v2/images?limit=1", token=TOKEN)
    assert out["next"].startswith("/v2/images?limit=1&marker="), out
    st, _, out = E.call("GET", "/compute/v2.1/limits", token=TOKEN)
    eq(out["limits"]["absolute"]["maxTotalInstances"], -1, "unlimited")


@test
def neutron_networks():
    st, _, out = E.call("GET", "/v3/auth/tokens", token=TOKEN, headers={"X-Subject-Token": TOKEN})
    net = [c for c in out["token"]["catalog"] if c["type"] == "network"]
    eq(sorted(e["interface"] for e in net[0]["endpoints"]), ["admin", "internal", "public"], "catalog")
    eq({e["url"] for e in net[0]["endpoints"]}, {E.base + "/network"}, "endpoint")
    st, h, out = E.call("GET", "/network/v2.0/networks?name=private", token=TOKEN)
    eq((st, [n["id"] for n in out["networks"]]), (200, [NETWORK_ID]), "by name")
    n = out["networks"][0]
    for k in ("id", "name", "status", "admin_state_up", "subnets", "shared", "project_id",
              "tenant_id", "mtu", "router:external"):
        assert k in n, (k, n)
    eq((n["name"], n["status"], n["admin_state_up"]), ("private", "ACTIVE", True), "fields")
    assert h["x-openstack-request-id"].startswith("req-"), h
    st, _, out = E.call("GET", "/network/v2.0/networks?name=nope", token=TOKEN)
    eq((st, out), (200, {"networks": []}), "unknown name")
    st, _, out = E.call("GET", "/network/v2.0/networks?name=nope&name=private", token=TOKEN)
    eq(len(out["networks"]), 1, "repeated filter ORs")
    st, _, out = E.call("GET", "/network/v2.0/networks?admin_state_up=True", token=TOKEN)
    eq(len(out["networks"]), 1, "bool filter")
    st, _, out = E.call("GET", "/network/v2.0/networks", token=TOKEN)
    eq(len(out["networks"]), 1, "all")
    st, _, out = E.call("GET", "/network/v2.0/networks/" + NETWORK_ID, token=TOKEN)
    eq((st, out["network"]["name"]), (200, "private"), "show")
    st, _, out = E.call("GET", "/network/v2.0/networks/0b6b1e2c-2f7e-4c5a-9d3b-8e1f0a2b3c4d", token=TOKEN)
    eq((st, out["NeutronError"]["type"]), (404, "NetworkNotFound"), "show 404")
    st, h, out = E.call("GET", "/network/v2.0/networks?name=private")
    eq((st, out["error"]["code"]), (401, 401), "no token")
    assert "www-authenticate" in h, h
    st, _, out = E.call("GET", "/network/v2.0/ports", token=TOKEN)
    eq((st, out["NeutronError"]["type"]), (404, "HTTPNotFound"), "unknown resource")
    st, _, out = E.call("GET", "/network/")
    eq(out["versions"][0]["id"], "v2.0", "versions")
    emu = Emulator("--network-name", "hpc-net")
    try:
        tok = emu.token()
        st, _, out = emu.call("GET", "/network/v2.0/networks?name=hpc-net", token=tok)
        eq([n["id"] for n in out["networks"]], [NETWORK_ID], "--network-name")
    finally:
        emu.stop()


@test
def console_output():
    E.control("POST", "config", {"build_hang_regex": "^cn1$"})
    sid = E.create(TOKEN, "cn1")
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid,
                        {"os-getConsoleOutput": {"length": 5}}, token=TOKEN)
    eq((st, out), (409, {"conflictingRequest": {
        "code": 409, "message": "Instance %s is not ready" % sid}}), "console before host")
    E.control("POST", "config", {"build_hang_regex": None})
    E.wait_status(TOKEN, sid, "ACTIVE")
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid,
                        {"os-getConsoleOutput": {"length": 1}}, token=TOKEN)
    eq((st, out), (200, {"output": "cn1 login: emulator ready at 10.80.0.2\n"}), "last line")
    E.control("POST", "config", {"console_line": "ELASTIC-READY {name} {id}"})
    E.call("POST", "/compute/v2.1/servers/%s/action" % sid, {"reboot": {"type": "SOFT"}},
           token=TOKEN)
    E.wait_status(TOKEN, sid, "ACTIVE")
    st, _, out = E.call("POST", "/compute/v2.1/servers/%s/action" % sid,
                        {"os-getConsoleOutput": {}}, token=TOKEN)
    assert out["output"].endswith("ELASTIC-READY cn1 %s\n" % sid), out
    assert out["output"].count("\n") >= 4, out


def _raw(method, path, body=None):
    c = E.conn()
    try:
        h = {"X-Auth-Token": TOKEN, "OpenStack-API-Version": MV}
        c.request(method, path, body=json.dumps(body) if body else None, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


@test
def fault_5xx_and_429():
    E.control("POST", "config", {"error_next": 1, "error_codes": [500]})
    st, h, out = E.call("GET", "/compute/v2.1/servers", token=TOKEN)
    eq((st, list(out)), (500, ["computeFault"]), "500")
    assert h["x-openstack-request-id"].startswith("req-"), h
    eq(E.call("GET", "/compute/v2.1/servers", token=TOKEN)[0], 200, "only next 1")
    E.control("POST", "config", {"error_next": 2, "error_codes": [503]})
    st, h, body = _raw("GET", "/compute/v2.1/servers")
    eq(st, 503, "503")
    assert h["content-type"].startswith("text/html") and b"503" in body, (h, body)
    eq(E.call("POST", "/v3/auth/tokens", password_auth("demo", "demo"))[0], 503, "503 keystone")
    E.control("POST", "config", {"error_next": 1, "error_codes": [500]})
    st, _, out = E.call("POST", "/v3/auth/tokens", password_auth("demo", "demo"))
    eq((st, out["error"]["code"]), (500, 500), "keystone 500 body")
    E.control("POST", "config", {"ratelimit_next": 1, "retry_after": 3})
    st, h, out = E.call("GET", "/compute/v2.1/servers", token=TOKEN)
    eq((st, h["retry-after"], out["overLimit"]["code"]), (429, "3", 429), "429")
    E.control("POST", "config", {"error_rate": 1.0, "fault_method": "POST",
                                 "fault_path": "/servers$", "error_codes": [502]})
    eq(E.call("GET", "/compute/v2.1/servers", token=TOKEN)[0], 200, "GET spared")
    eq(E.call("POST", "/compute/v2.1/servers", {"server": {}}, token=TOKEN)[0], 502, "POST hit")
    eq(E.call("POST", "/v3/auth/tokens", password_auth("demo", "demo"))[0], 201, "path spared")
    stats = E.control("GET", "stats")
    eq(stats["faults"], {"500": 2, "503": 2, "429": 1, "502": 1}, "fault stats")
    E.control("POST", "config", {"error_rate": 0.0})
    reqs = E.control("GET", "requests?method=POST")["requests"]
    eq([r["status"] for r in reqs][-2:], [502, 201], "request log statuses")


@test
def fault_drop_and_latency():
    E.control("POST", "config", {"drop_next": 1})
    try:
        _raw("GET", "/compute/v2.1/servers")
        raise AssertionError("answer was not dropped")
    except (http.client.RemoteDisconnected, ConnectionResetError):
        pass
    eq(E.call("GET", "/compute/v2.1/servers", token=TOKEN)[0], 200, "after drop")
    # a create whose answer is lost still happened
    E.control("POST", "config", {"drop_next": 1, "drop_after": True, "drop_reset": True})
    try:
        _raw("POST", "/compute/v2.1/servers", {"server": {
            "name": "ghost", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}})
        raise AssertionError("answer was not dropped")
    except (http.client.RemoteDisconnected, ConnectionResetError):
        pass
    st, _, out = E.call("GET", "/compute/v2.1/servers?name=ghost", token=TOKEN)
    eq(len(out["servers"]), 1, "ghost created")
    # partial: headers and half the body, which libcurl cannot retry silently
    E.control("POST", "config", {"drop_next": 1, "drop_after": True, "drop_mode": "partial",
                                 "drop_reset": False})
    try:
        _raw("GET", "/compute/v2.1/flavors/detail")
        raise AssertionError("answer was complete")
    except http.client.IncompleteRead:
        pass
    st, _, out = E.call("POST", "/_emulator/config", {"drop_mode": "fin"})
    eq(st, 400, "bad drop_mode")
    log = E.control("GET", "requests?path=servers")["requests"]
    eq([(r["method"], r["status"], r["fault"]) for r in log if r["method"] == "POST"],
       [("POST", "dropped", "drop-after")], "log")
    E.control("POST", "config", {"latency": 0.2, "latency_by_method": {"POST": 0.3}})
    t = time.time()
    E.call("GET", "/compute/v2.1/flavors", token=TOKEN)
    assert time.time() - t >= 0.2, "latency"
    t = time.time()
    E.call("POST", "/v3/auth/tokens", password_auth("demo", "demo"))
    assert time.time() - t >= 0.5, "latency by method"
    # concurrency is observable, and workers=1 serialises calls
    E.control("POST", "config", {"latency": 0.3, "latency_by_method": {}})
    E.control("DELETE", "stats")
    ts = [threading.Thread(target=E.call, args=("GET", "/compute/v2.1/flavors"),
                           kwargs={"token": TOKEN}) for _ in range(4)]
    [x.start() for x in ts]
    [x.join() for x in ts]
    st = E.control("GET", "stats")
    assert st["max_in_flight"] >= 2, st
    eq(st["by_route"], {"GET /compute/v2.1/flavors": 4}, "by_route")
    _, h, _ = E.call("GET", "/compute/v2.1/flavors", token=TOKEN)
    eq(E.control("GET", "stats")["bytes_by_route"], {"GET /compute/v2.1/flavors": 5 * int(h["content-length"])},
       "bytes_by_route: the answers' bodies")
    E.control("POST", "config", {"latency": 0.2, "workers": 1})
    t = time.time()
    ts = [threading.Thread(target=E.call, args=("GET", "/compute/v2.1/flavors"),
                           kwargs={"token": TOKEN}) for _ in range(3)]
    [x.start() for x in ts]
    [x.join() for x in ts]
    assert time.time() - t >= 0.6, "workers=1 serialises"


@test
def fault_flavor_outage_path_latency():
    E.control("POST", "config", {"flavor_faults": {"small": "quota"}})
    st, _, out = E.call("POST", "/compute/v2.1/servers", {"server": {
        "name": "fq", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}}, token=TOKEN)
    eq((st, out["forbidden"]["message"].startswith("Quota exceeded for cores")), (403, True), "quota")
    E.control("POST", "config", {"flavor_faults": {"1": "novalidhost"}})
    st, _, out = E.call("POST", "/compute/v2.1/servers", {"server": {
        "name": "fn", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}}, token=TOKEN)
    eq(st, 202, "novalidhost accepted")
    sid = out["server"]["id"]
    wait_for(lambda: E.server(sid)["status"] == "ERROR", what="novalidhost build")
    assert E.server(sid)["fault"]["message"].startswith("No valid host"), E.server(sid)
    eq(E.call("POST", "/_emulator/config", {"flavor_faults": {"1": "boom"}})[0], 400, "bad kind")
    E.control("POST", "config", {"flavor_faults": {}})
    # an outage of Keystone only, for a window
    E.control("POST", "config", {"outage_path": "^/v3", "outage_seconds": 1.0})
    eq(E.call("POST", "/v3/auth/tokens", password_auth("demo", "demo"))[0], 503, "keystone out")
    eq(E.call("GET", "/compute/v2.1/flavors", token=TOKEN)[0], 200, "nova spared")
    wait_for(lambda: E.call("POST", "/v3/auth/tokens", password_auth("demo", "demo"))[0] == 201,
             what="the outage to end")
    eq(E.control("GET", "stats")["faults"].get("503", 0) >= 1, True, "outage counted")
    E.control("POST", "config", {"latency_by_path": {"^GET /compute/v2.1/flavors$": 0.4}})
    t = time.time()
    E.call("GET", "/compute/v2.1/flavors/detail", token=TOKEN)
    assert time.time() - t < 0.4, "other path spared"
    t = time.time()
    E.call("GET", "/compute/v2.1/flavors", token=TOKEN)
    assert time.time() - t >= 0.4, "path latency"
    eq(E.call("POST", "/_emulator/config", {"latency_by_path": {"(": 1}})[0], 400, "bad regex")
    E.control("POST", "config", {"latency_by_path": {}})


@test
def fault_rates_are_seeded():
    def run():
        E.control("POST", "config", {"seed": 7, "error_rate": 0.5, "error_codes": [500, 503]})
        out = [E.call("GET", "/compute/v2.1/flavors", token=TOKEN)[0] for _ in range(16)]
        E.control("POST", "config", {"error_rate": 0.0})
        return out
    a, b = run(), run()
    eq(a, b, "same seed, same faults")
    assert 200 in a and (500 in a or 503 in a), a
    E.control("POST", "config", {"ratelimit_rate": 1.0, "retry_after": 0})
    st, h, _ = E.call("GET", "/compute/v2.1/flavors", token=TOKEN)
    eq((st, h["retry-after"]), (429, "0"), "ratelimit_rate")
    eq(E.call("POST", "/_emulator/config", {"retry_after": 0.5})[0], 400, "integer seconds")
    E.control("POST", "config", {"ratelimit_rate": 0.0, "drop_rate": 1.0})
    try:
        _raw("GET", "/compute/v2.1/flavors")
        raise AssertionError("drop_rate 1.0 answered")
    except (http.client.RemoteDisconnected, ConnectionResetError):
        pass
    E.control("POST", "config", {"drop_rate": 0.0})
    eq(E.control("GET", "stats")["faults"], {"500": a.count(500) * 2, "503": a.count(503) * 2,
                                            "429": 1, "drop": 1}, "stats")


@test
def quota_exceeded():
    E.control("POST", "config", {"quota_instances": 1})
    E.create(TOKEN, "q1")
    st, _, out = E.call("POST", "/compute/v2.1/servers", {"server": {
        "name": "q2", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}}, token=TOKEN)
    eq((st, out), (403, {"forbidden": {"code": 403, "message":
        "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances"}}), "403")
    E.control("POST", "config", {"quota_status": 413})
    st, h, out = E.call("POST", "/compute/v2.1/servers", {"server": {
        "name": "q2", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}}, token=TOKEN)
    eq((st, out["overLimit"]["code"], h["retry-after"]), (413, 413, "0"), "413")
    E.control("POST", "config", {"quota_instances": None, "quota_cores": 1})
    st, _, out = E.call("POST", "/compute/v2.1/servers", {"server": {
        "name": "q2", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}}, token=TOKEN)
    assert "cores" in out["overLimit"]["message"], out
    st, _, out = E.call("GET", "/compute/v2.1/limits", token=TOKEN)
    eq((out["limits"]["absolute"]["maxTotalCores"], out["limits"]["absolute"]["totalCoresUsed"]),
       (1, 1), "limits")


@test
def hang_and_delete_errors():
    E.control("POST", "config", {"build_hang_regex": "^stuck"})
    sid = E.create(TOKEN, "stuck-1")
    time.sleep(0.5)
    st, out = E.show(TOKEN, sid)
    eq((out["server"]["status"], out["server"]["OS-EXT-STS:task_state"],
        out["server"]["addresses"]), ("BUILD", "scheduling", {}), "hung build")
    stuck = E.create(TOKEN, "stuck-2")
    E.call("DELETE", "/compute/v2.1/servers/" + stuck, token=TOKEN)
    E.wait_status(TOKEN, stuck, 404)
    E.control("POST", "config", {"build_hang_regex": None})
    E.wait_status(TOKEN, sid, "ACTIVE")
    E.control("POST", "config", {"delete_error_next": 1})
    E.call("DELETE", "/compute/v2.1/servers/" + sid, token=TOKEN)
    out = E.wait_status(TOKEN, sid, "ERROR")
    eq(out["server"]["fault"]["message"], "emulator: injected delete failure", "delete fault")
    E.call("DELETE", "/compute/v2.1/servers/" + sid, token=TOKEN)
    E.wait_status(TOKEN, sid, 404)
    E.control("POST", "config", {"delete_hang_regex": "."})
    sid = E.create(TOKEN, "d")
    E.wait_status(TOKEN, sid, "ACTIVE")
    E.call("DELETE", "/compute/v2.1/servers/" + sid, token=TOKEN)
    time.sleep(0.4)
    eq(E.show(TOKEN, sid)[1]["server"]["OS-EXT-STS:task_state"], "deleting", "hung delete")
    E.control("POST", "config", {"delete_hang_regex": None})
    E.wait_status(TOKEN, sid, 404)
    # forced states through the control endpoint
    sid = E.create(TOKEN, "f")
    E.wait_status(TOKEN, sid, "ACTIVE")
    E.control("POST", "servers/" + sid, {"status": "ERROR", "fault": "disk on fire"})
    eq(E.show(TOKEN, sid)[1]["server"]["fault"]["message"], "disk on fire", "forced")
    E.control("DELETE", "servers/" + sid)
    eq(E.show(TOKEN, sid)[0], 404, "vanished")


@test
def control_endpoint():
    st, _, out = E.call("POST", "/_emulator/config", {"no_such_knob": 1})
    eq(st, 400, "unknown knob")
    assert "no_such_knob" in out["error"], out
    for bad in ({"error_rate": 2}, {"build_error_kind": "x"}, {"build_error_regex": "("},
                {"error_codes": [418]}, {"quota_instances": -1}):
        st, _, out = E.call("POST", "/_emulator/config", bad)
        eq(st, 400, str(bad))
    eq(E.call("GET", "/_emulator/nope")[0], 404, "unknown control path")
    eq(E.call("GET", "/compute/v2.1/nope")[0], 401, "auth before routing")
    st, _, out = E.call("GET", "/compute/v2.1/nope", token=TOKEN)
    eq((st, out), (404, {"itemNotFound": {"code": 404, "message":
                                          "The resource could not be found."}}), "nova 404")
    eq(E.call("PATCH", "/compute/v2.1/servers", token=TOKEN)[0], 405, "nova 405")
    E.call("POST", "/v3/auth/tokens", password_auth("demo", "hunter2"))
    log = E.control("GET", "requests")["requests"]
    body = json.dumps(log[-1])
    assert "hunter2" not in body and "***" in body, body
    assert all(not r["path"].startswith("/_emulator") for r in log), "control not logged"
    E.create(TOKEN, "r1")
    E.control("POST", "reset")
    eq(E.control("GET", "servers")["count"], 0, "reset servers")
    eq(E.control("GET", "stats")["total"], 0, "reset stats")
    eq(E.call("GET", "/compute/v2.1/servers", token=TOKEN)[0], 200, "token survives reset")


# ---- tests with their own emulator ----------------------------------------

HOOK = r"""#!/bin/sh
echo "$EMU_EVENT $EMU_SERVER_NAME $EMU_ADDRESS $EMU_IMAGE $EMU_METADATA" >> "$HOOKDIR/events"
echo "$EMU_URL" > "$HOOKDIR/url"
echo "hook says hello to $EMU_SERVER_NAME"
case "$EMU_SERVER_NAME" in
*daemon*) sleep 60 & echo $! > "$HOOKDIR/daemon.pid" ;;   # keeps our stdout open
*gate*) [ "$EMU_EVENT" = create ] && while [ ! -e "$HOOKDIR/go-$EMU_SERVER_NAME" ]; do sleep 0.05; done ;;
esac
case "$EMU_EVENT:$EMU_SERVER_NAME" in
create:*fail*) exit 3 ;;
reboot:*rbbad*) exit 4 ;;
esac
exit 0
"""


@test
def boot_hook_gates_active():
    d = tempfile.mkdtemp(prefix="emu-hook-%d-" % os.getpid())
    hook = os.path.join(d, "hook.sh")
    with open(hook, "w") as f:
        f.write(HOOK)
    os.chmod(hook, 0o755)
    os.environ["HOOKDIR"] = d
    emu = Emulator("--boot-hook", hook, "--delete-hook", hook, "--reboot-hook", hook,
                   "--address-pool", "10.99.0.0/29")
    try:
        tok = emu.token()
        sid = emu.create(tok, "node-gate", metadata={"slurm_node": "cn1"})
        wait_for(lambda: os.path.exists(os.path.join(d, "events")), what="hook to start")
        time.sleep(0.3)
        st, out = emu.show(tok, sid)
        eq((out["server"]["status"], out["server"]["OS-EXT-STS:task_state"]),
           ("BUILD", "spawning"), "BUILD while the hook runs")
        # the API keeps answering while the hook runs
        eq(emu.call("GET", "/compute/v2.1/flavors", token=tok)[0], 200, "not blocked")
        open(os.path.join(d, "go-node-gate"), "w").close()
        emu.wait_status(tok, sid, "ACTIVE")
        lines = open(os.path.join(d, "events")).read().splitlines()
        eq(lines, ['create node-gate 10.99.0.2 %s {"slurm_node": "cn1"}' % IMAGE], "hook env")
        eq(open(os.path.join(d, "url")).read().strip(), emu.base, "EMU_URL")
        # a DELETE while the boot hook runs waits for it, then undoes it
        g2 = emu.create(tok, "gate2")
        wait_for(lambda: "create gate2" in open(os.path.join(d, "events")).read(),
                 what="gate2 hook")
        eq(emu.call("DELETE", "/compute/v2.1/servers/" + g2, token=tok)[0], 204, "delete")
        time.sleep(0.3)
        eq(emu.show(tok, g2)[1]["server"]["OS-EXT-STS:task_state"], "deleting", "waits")
        open(os.path.join(d, "go-gate2"), "w").close()
        emu.wait_status(tok, g2, 404)
        ev = [l.split()[0] for l in open(os.path.join(d, "events")).read().splitlines()
              if l.split()[1] == "gate2"]
        eq(ev, ["create", "delete"], "gate2 events")
        # a daemon left behind by the hook (holding its stdout) does not block it
        dsid = emu.create(tok, "node-daemon")
        try:
            emu.wait_status(tok, dsid, "ACTIVE", timeout=8)
        finally:
            pidfile = os.path.join(d, "daemon.pid")
            if os.path.exists(pidfile):
                os.kill(int(open(pidfile).read()), 15)
        emu.call("DELETE", "/compute/v2.1/servers/" + dsid, token=tok)
        emu.wait_status(tok, dsid, 404)
        bad = emu.create(tok, "node-fail")
        out = emu.wait_status(tok, bad, "ERROR")
        eq(out["server"]["fault"]["message"],
           "Build of instance %s aborted: boot hook failed with exit status 3" % bad, "fault")
        # reboot and rebuild run the reboot hook; a failing one means ERROR
        emu.call("POST", "/compute/v2.1/servers/%s/action" % sid, {"reboot": {"type": "HARD"}},
                 token=tok)
        emu.wait_status(tok, sid, "ACTIVE")
        emu.call("POST", "/compute/v2.1/servers/%s/action" % sid, {"rebuild": {"imageRef": IMAGE2}},
                 token=tok)
        emu.wait_status(tok, sid, "ACTIVE")
        # delete runs the delete hook, for the failed one too
        emu.call("DELETE", "/compute/v2.1/servers/" + sid, token=tok)
        emu.call("DELETE", "/compute/v2.1/servers/" + bad, token=tok)
        emu.wait_status(tok, sid, 404)
        emu.wait_status(tok, bad, 404)
        lines = open(os.path.join(d, "events")).read().splitlines()
        events = sorted(l.split()[0] + " " + l.split()[1] for l in lines)
        eq(events, ["create gate2", "create node-daemon", "create node-fail", "create node-gate",
                    "delete gate2", "delete node-daemon", "delete node-fail", "delete node-gate",
                    "reboot node-gate", "rebuild node-gate"], "events")
        assert any(l.startswith("rebuild node-gate 10.99.0.2 " + IMAGE2) for l in lines), lines
        srv = emu.control("GET", "servers")
        hooks = [h["event"] for s in srv["servers"] if s["id"] == sid for h in s["hooks"]]
        eq(hooks, ["create", "reboot", "rebuild", "delete"], "hook records")
        eq(srv["addresses_in_use"], [], "addresses released")
        rb = emu.create(tok, "node-rbbad")
        emu.wait_status(tok, rb, "ACTIVE")
        st, _, out = emu.call("POST", "/compute/v2.1/servers/%s/action" % rb,
                              {"os-getConsoleOutput": {}}, token=tok)
        assert "hook says hello to node-rbbad" in out["output"], out
        emu.call("POST", "/compute/v2.1/servers/%s/action" % rb, {"reboot": {"type": "SOFT"}},
                 token=tok)
        out = emu.wait_status(tok, rb, "ERROR")
        eq(out["server"]["fault"]["message"], "reboot hook failed with exit status 4", "reboot fail")
        # at exit the emulator runs the delete hook of what is still booted
        emu.stop()
        lines = open(os.path.join(d, "events")).read().splitlines()
        assert lines[-1].startswith("delete node-rbbad"), lines
    finally:
        emu.stop()
        shutil.rmtree(d, ignore_errors=True)


@test
def custom_identities_flavors_images():
    d = tempfile.mkdtemp(prefix="emu-files-%d-" % os.getpid())
    try:
        def write(name, v):
            path = os.path.join(d, name)
            with open(path, "w") as f:
                f.write(v if isinstance(v, str) else json.dumps(v))
            return path
        users = write("users.json", {
            "projects": [{"name": "hpc"}],
            "users": [{"name": "ops", "password": "pw1", "project": "hpc"}],
            "application_credentials": [{"name": "ac", "secret": "s1", "user": "ops"}]})
        flavors = write("flavors.json", [{"id": "c4", "name": "c4.large", "vcpus": 4,
                                          "ram": 8192, "disk": 20}])
        images = write("images.json", [{"name": "rocky9"}])
        config = write("config.json", {"quota_instances": 1, "console_line": "up {name}"})
        emu = Emulator("--users", users, "--flavors", flavors, "--images", images,
                       "--config", config, "--address-pool", "10.5.0.7,10.5.0.9",
                       "--keypairs", "ops-key")
        try:
            tok = emu.token("ops", "pw1")
            st, _, out = emu.call("GET", "/compute/v2.1/flavors/detail", token=tok)
            eq([f["name"] for f in out["flavors"]], ["c4.large"], "flavors")
            st, _, out = emu.call("GET", "/image/v2/images?name=rocky9", token=tok)
            img = out["images"][0]["id"]
            st, _, out = emu.call("POST", "/compute/v2.1/servers", {"server": {
                "name": "n", "imageRef": img, "flavorRef": "c4", "networks": "auto",
                "key_name": "nope"}}, token=tok)
            eq((st, out["badRequest"]["message"]), (400, "Invalid key_name provided."), "keypair")
            sid = emu.create(tok, "n", imageRef=img, flavorRef="c4", key_name="ops-key")
            s = emu.wait_status(tok, sid, "ACTIVE")["server"]
            eq(s["addresses"]["private"][0]["addr"], "10.5.0.7", "pool list")
            st, _, out = emu.call("POST", "/compute/v2.1/servers", {"server": {
                "name": "m", "imageRef": img, "flavorRef": "c4", "networks": "none"}}, token=tok)
            eq(st, 403, "quota from --config")
            emu.control("POST", "reset")
            eq(emu.control("GET", "config")["quota_instances"], 1, "reset keeps --config")
            body = {"auth": {"identity": {"methods": ["application_credential"],
                    "application_credential": {"name": "ac", "secret": "s1",
                                               "user": {"name": "ops", "domain": {"id": "default"}}}}}}
            st, _, out = emu.call("POST", "/v3/auth/tokens", body)
            eq((st, out["token"]["project"]["name"]), (201, "hpc"), "appcred by name")
            eq(emu.call("POST", "/v3/auth/tokens", password_auth("demo", "demo"))[0], 401,
               "defaults replaced")
        finally:
            emu.stop()
        # bad files: the emulator refuses to start and says why
        for args, frag in ((["--users", write("bad.json", "{")], "bad.json"),
                           (["--users", write("u2.json", {"users": [{"name": "x",
                                                                     "project": "nope"}]})],
                            "unknown project"),
                           (["--flavors", write("f2.json", [{"id": 1}])], "lacks"),
                           (["--config", write("c2.json", {"bogus": 1})], "bogus"),
                           (["--address-pool", "10.0.0.300"], "10.0.0.300")):
            try:
                Emulator(*args).stop()
                raise AssertionError("started with %s" % args)
            except harness.EmulatorError as e:
                assert frag in str(e), (frag, str(e))
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def https_right_and_wrong_ca():
    emu = Emulator(tls=True)
    try:
        st, h, out = emu.call("POST", "/v3/auth/tokens", password_auth("demo", "demo"))
        eq(st, 201, "HTTPS auth")
        url = [e["url"] for c in out["token"]["catalog"] if c["type"] == "compute"
               for e in c["endpoints"]][0]
        assert url.startswith("https://127.0.0.1:"), url
        wrong = ssl.create_default_context(cafile=emu.other_ca)
        c = emu.conn(ctx=wrong)
        try:
            c.request("GET", "/v3")
            c.getresponse()
            raise AssertionError("wrong CA accepted")
        except ssl.SSLCertVerificationError:
            pass
        finally:
            c.close()
        # a client that connects and never handshakes does not block others
        s = socket.create_connection(("127.0.0.1", emu.port))
        try:
            eq(emu.call("GET", "/v3")[0], 200, "served despite a silent client")
        finally:
            s.close()
        # clouds.yaml for the C client carries the CA
        d = tempfile.mkdtemp(prefix="emu-clouds-%d-" % os.getpid())
        try:
            path = emu.clouds_yaml(d, auth="appcred")
            text = open(path).read()
            eq(os.stat(path).st_mode & 0o777, 0o600, "clouds.yaml mode")
            for want in ("auth_url: %s/v3" % emu.base, "application_credential_secret: s3cr3t",
                         "cacert: " + emu.ca, "auth_type: v3applicationcredential"):
                assert want in text, (want, text)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    finally:
        emu.stop()


def main():
    global E, TOKEN
    print("1..%d" % len(TESTS), flush=True)
    failed = 0
    E = Emulator()
    try:
        TOKEN = E.token()
        for n, fn in enumerate(TESTS, 1):
            t = time.time()
            try:
                E.control("POST", "reset")
                TOKEN = E.token()
                fn()
                print("ok %d - %s (%.2fs)" % (n, fn.__name__, time.time() - t), flush=True)
            except Exception:
                failed += 1
                print("not ok %d - %s" % (n, fn.__name__))
                for line in traceback.format_exc().splitlines():
                    print("# " + line)
                sys.stdout.flush()
    finally:
        E.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
