#!/usr/bin/env python3
"""OpenStack API emulator for elasticd's tests: Keystone v3, Nova v2.1 and
Glance v2 (the subset elasticd uses), shaped like the real Zed responses in
tests/fixtures/openstack/, with faults injected on demand through
/_emulator/. See README.md next to this file for the contract."""

import argparse
import base64
import binascii
import json
import os
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import state  # noqa: E402
from state import Cloud, ConfigError, Server, iso, iso_usec, iso_token  # noqa: E402

MIN_MV = (2, 1)
MAX_MV = (2, 93)
MAX_BODY = 114688          # Nova's max_request_body_size
MAX_LIMIT = 1000           # Nova's [api] max_limit
GLANCE_LIMIT_DEFAULT = 25
GLANCE_LIMIT_MAX = 1000
UUID_RX = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                     r"[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
UNAUTHORIZED = "The request you have made requires authentication."
GLANCE_401 = ("This server could not verify that you are authorized to access "
              "the document you requested. Either you supplied the wrong "
              "credentials (e.g., bad password), or your browser does not "
              "understand how to supply the credentials required.<br /><br />\n\n\n")
NOVA_FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden",
                    404: "itemNotFound", 405: "badMethod",
                    409: "conflictingRequest", 413: "overLimit",
                    415: "badMediaType", 429: "overLimit",
                    501: "notImplemented", 503: "serviceUnavailable"}
PROXY_BODIES = {
    502: "<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete response.\n</body></html>\n",
    503: "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n",
    504: "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n",
}
REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
           300: "Multiple Choices", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           406: "Not Acceptable", 409: "Conflict", 413: "Request Entity Too Large",
           429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
SERVER_KEYS = {
    # key -> minimum microversion that accepts it in POST /servers
    "name": MIN_MV, "imageRef": MIN_MV, "flavorRef": MIN_MV,
    "adminPass": MIN_MV, "metadata": MIN_MV, "networks": MIN_MV,
    "OS-DCF:diskConfig": MIN_MV, "accessIPv4": MIN_MV, "accessIPv6": MIN_MV,
    "key_name": MIN_MV, "user_data": MIN_MV, "security_groups": MIN_MV,
    "availability_zone": MIN_MV, "config_drive": MIN_MV,
    "block_device_mapping": MIN_MV, "block_device_mapping_v2": MIN_MV,
    "min_count": MIN_MV, "max_count": MIN_MV, "return_reservation_id": MIN_MV,
    "description": (2, 19), "tags": (2, 52),
    "trusted_image_certificates": (2, 63), "host": (2, 74),
    "hypervisor_hostname": (2, 74), "hostname": (2, 90),
}
TAG_RX = re.compile(r"^[^,/]{1,60}$")


class Reply(Exception):
    """A complete answer: raised anywhere below a handler to end it."""

    def __init__(self, status, body=None, headers=None, raw=None, ctype=None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = list(headers or [])
        self.raw = raw
        self.ctype = ctype


def nova_fault(status, message, extra=None):
    name = NOVA_FAULT_NAMES.get(status, "computeFault")
    body = {name: {"code": status, "message": message}}
    if extra:
        body[name].update(extra)
    return Reply(status, body, ctype="application/json; charset=UTF-8")


def keystone_error(status, message, title):
    return Reply(status, {"error": {"code": status, "message": message,
                                    "title": title}})


def glance_error(status, message, req):
    title = REASONS.get(status, "Error")
    if "json" in (req.headers.get("Accept") or ""):
        return Reply(status, {"message": message + "<br /><br />\n\n\n",
                              "code": "%d %s" % (status, title), "title": title})
    html = ("<html>\n <head>\n  <title>%d %s</title>\n </head>\n <body>\n"
            "  <h1>%d %s</h1>\n  %s<br /><br />\n\n\n\n </body>\n</html>"
            % (status, title, status, title, message))
    return Reply(status, raw=html.encode(), ctype="text/html; charset=UTF-8")


def neutron_error(status, typ, message):
    return Reply(status, {"NeutronError": {"type": typ, "message": message, "detail": ""}})


def schema_error(field, value, why):
    # Nova formats the value with %s (so a bare string prints unquoted) and
    # jsonschema's reason with repr.
    return nova_fault(400, "Invalid input for field/attribute %s. Value: %s. %s"
                      % (field, value, why))


def pyrepr(v):
    """Python's repr of a decoded JSON value, as Nova's schema errors print it."""
    return repr(v)


def mv_ge(mv, want):
    return mv >= want


def mv_str(mv):
    return "%d.%d" % mv


class Request:
    def __init__(self, method, path, query, headers, body, rid):
        self.method = method
        self.path = path
        self.query = query                  # list of (key, value)
        self.headers = headers
        self.body = body
        self.rid = rid
        self.mv = MIN_MV
        self.token = None

    def param(self, key, default=None):
        vals = [v for k, v in self.query if k == key]
        return vals[-1] if vals else default

    def params(self, key):
        return [v for k, v in self.query if k == key]

    def json(self, fault):
        if not self.body:
            raise fault("Malformed request body")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise fault("Malformed request body")


class Api:
    """The three services; `base` is the URL clients reach us at."""

    def __init__(self, cloud, base):
        self.cloud = cloud
        self.base = base.rstrip("/")
        self.compute = self.base + "/compute/v2.1"
        self.compute_root = self.base + "/compute"
        self.image_url = self.base + "/image"
        self.network_url = self.base + "/network"
        self.identity = self.base + "/v3/"
        n = uuid.NAMESPACE_URL
        self.routes = []
        R = self._route
        # Keystone
        R("GET", r"/", self.ks_versions, "identity")
        R("GET", r"/v3/?", self.ks_version, "identity")
        R("POST", r"/v3/auth/tokens", self.ks_auth, "identity")
        R("GET", r"/v3/auth/tokens", self.ks_validate, "identity")
        R("HEAD", r"/v3/auth/tokens", self.ks_validate, "identity")
        # Nova
        R("GET", r"/compute/?", self.nova_versions, "compute")
        R("GET", r"/compute/v2\.1/?", self.nova_version, "compute")
        R("GET", r"/compute/v2\.1/servers", self.nova_list, "compute", True)
        R("GET", r"/compute/v2\.1/servers/detail", self.nova_list_detail, "compute", True)
        R("POST", r"/compute/v2\.1/servers", self.nova_create, "compute", True)
        R("GET", r"/compute/v2\.1/servers/(?P<sid>[^/]+)", self.nova_show, "compute", True)
        R("DELETE", r"/compute/v2\.1/servers/(?P<sid>[^/]+)", self.nova_delete, "compute", True)
        R("POST", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/action", self.nova_action, "compute", True)
        R("GET", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/metadata", self.nova_meta_list, "compute", True)
        R("PUT", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/metadata", self.nova_meta_replace, "compute", True)
        R("POST", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/metadata", self.nova_meta_merge, "compute", True)
        R("GET", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/metadata/(?P<key>[^/]+)", self.nova_meta_show, "compute", True)
        R("PUT", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/metadata/(?P<key>[^/]+)", self.nova_meta_set, "compute", True)
        R("DELETE", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/metadata/(?P<key>[^/]+)", self.nova_meta_delete, "compute", True)
        R("GET", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/tags", self.nova_tags_list, "compute", True)
        R("PUT", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/tags", self.nova_tags_replace, "compute", True)
        R("DELETE", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/tags", self.nova_tags_clear, "compute", True)
        R("GET", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/tags/(?P<tag>[^/]+)", self.nova_tag_check, "compute", True)
        R("PUT", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/tags/(?P<tag>[^/]+)", self.nova_tag_add, "compute", True)
        R("DELETE", r"/compute/v2\.1/servers/(?P<sid>[^/]+)/tags/(?P<tag>[^/]+)", self.nova_tag_delete, "compute", True)
        R("GET", r"/compute/v2\.1/flavors", self.nova_flavors, "compute", True)
        R("GET", r"/compute/v2\.1/flavors/detail", self.nova_flavors_detail, "compute", True)
        R("GET", r"/compute/v2\.1/flavors/(?P<fid>[^/]+)", self.nova_flavor, "compute", True)
        R("POST", r"/compute/v2\.1/flavors", self.nova_flavor_create, "compute", True)
        R("GET", r"/compute/v2\.1/limits", self.nova_limits, "compute", True)
        # Glance
        R("GET", r"/image/?", self.glance_versions, "image")
        R("GET", r"/image/v2/images", self.glance_list, "image", True)
        R("GET", r"/image/v2/images/(?P<iid>[^/]+)", self.glance_show, "image", True)
        # Neutron: the one network, read-only
        R("GET", r"/network/?", self.neutron_versions, "network")
        R("GET", r"/network/v2\.0/networks", self.neutron_networks, "network", True)
        R("GET", r"/network/v2\.0/networks/(?P<nid>[^/]+)", self.neutron_network, "network", True)
        self.catalog_ids = {s: uuid.uuid5(n, "svc:" + s).hex
                            for s in ("identity", "compute", "image", "network")}

    def _route(self, method, rx, fn, service, auth=False):
        # The route's name in stats: /compute/v2.1/servers/{sid}/action
        name = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", rx).replace("\\", "")
        name = name[:-2] if name.endswith("/?") and len(name) > 2 else name
        self.routes.append((method, re.compile(rx + r"\Z"), fn, service, auth, name))

    def match(self, method, path):
        """(fn, kwargs, service, auth, route-template); fn None if no route."""
        service = ("compute" if path.startswith("/compute") else
                   "image" if path.startswith("/image") else
                   "network" if path.startswith("/network") else "identity")
        allowed = False
        for m, rx, fn, svc, auth, name in self.routes:
            mo = rx.match(path)
            if mo:
                if m == method:
                    return fn, mo.groupdict(), svc, auth, name
                allowed = True
        return None, {"_allowed": allowed}, service, False, "unmatched"

    # ---- common ------------------------------------------------------
    def authenticate(self, req, service):
        tok = req.headers.get("X-Auth-Token")
        rec = self.cloud.check_token(tok)
        if rec is None:
            hdr = [("Www-Authenticate", 'Keystone uri="%s"' % self.identity.rstrip("/"))]
            if service == "image":
                raise Reply(401, {"message": GLANCE_401, "code": "401 Unauthorized",
                                  "title": "Unauthorized"}, headers=hdr)
            if service == "identity":
                raise Reply(401, {"error": {"code": 401, "message": UNAUTHORIZED,
                                            "title": "Unauthorized"}}, headers=hdr)
            raise Reply(401, {"error": {"code": 401, "title": "Unauthorized",
                                        "message": UNAUTHORIZED}}, headers=hdr)
        req.token = rec
        return rec

    @staticmethod
    def parse_mv(req):
        """The compute microversion asked for; Reply 400/406 if bad."""
        v = None
        h = req.headers.get("OpenStack-API-Version")
        if h:
            for part in h.split(","):
                p = part.split()
                if len(p) == 2 and p[0].lower() == "compute":
                    v = p[1]
        if v is None:
            v = req.headers.get("X-OpenStack-Nova-API-Version")
        if v is None:
            return MIN_MV
        v = v.strip()
        if v.lower() == "latest":
            return MAX_MV
        m = re.fullmatch(r"([1-9][0-9]*)\.([1-9][0-9]*|0)", v)
        if not m:
            raise nova_fault(400, "API Version String %s is of invalid format. "
                             "Must be of format MajorNum.MinorNum." % v)
        mv = (int(m.group(1)), int(m.group(2)))
        if not (MIN_MV <= mv <= MAX_MV):
            r = Reply(406, {"computeFault": {"code": 406, "message":
                      "Version %s is not supported by the API. Minimum is %s "
                      "and maximum is %s." % (v, mv_str(MIN_MV), mv_str(MAX_MV))}},
                      ctype="application/json; charset=UTF-8")
            r.headers += [("Openstack-Api-Version", "compute " + v),
                          ("X-Openstack-Nova-Api-Version", v),
                          ("Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version")]
            raise r
        return mv

    def handle(self, req):
        """Route, authenticate, run: a Reply (never raises)."""
        fn, kw, service, auth, route = self.match(req.method, req.path)
        req.route = route
        req.service = service
        try:
            try:
                if fn is None and req.path.startswith(("/compute/v2.1/", "/image/v2/", "/network/v2.0/")):
                    # The auth middleware runs before routing, as in Nova/Glance.
                    self.authenticate(req, service)
                if fn is None:
                    if service == "compute":
                        if kw["_allowed"]:
                            raise nova_fault(405, "The method specified is not "
                                             "allowed for this resource.")
                        raise nova_fault(404, "The resource could not be found.")
                    if service == "image":
                        raise glance_error(404 if not kw["_allowed"] else 405,
                                           "The resource could not be found.", req)
                    if service == "network":
                        raise neutron_error(404 if not kw["_allowed"] else 405, "HTTPNotFound"
                                            if not kw["_allowed"] else "HTTPMethodNotAllowed",
                                            "The resource could not be found." if not kw["_allowed"]
                                            else "The method is not allowed for this resource.")
                    raise keystone_error(404, "The resource could not be found.",
                                         "Not Found")
                if auth:
                    self.authenticate(req, service)
                if service == "compute" and req.path.startswith("/compute/v2.1"):
                    req.mv = self.parse_mv(req)
                r = fn(req, **kw)
            except Reply as e:
                r = e
            if service == "compute" and req.path.startswith("/compute/v2.1") and r.status != 401:
                if not any(h[0] == "Openstack-Api-Version" for h in r.headers):
                    r.headers += [("Openstack-Api-Version", "compute " + mv_str(req.mv)),
                                  ("X-Openstack-Nova-Api-Version", mv_str(req.mv)),
                                  ("Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version")]
            return r
        except Exception as e:  # a bug in the emulator: answer like Nova does
            import traceback
            traceback.print_exc()
            return nova_fault(500, "Unexpected API Error. Please report this at "
                              "http://bugs.launchpad.net/nova/ and attach the Nova "
                              "API log if possible.\n%s" % type(e))

    # ---- Keystone ---------------------------------------------------
    def _ks_version_doc(self):
        return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": self.identity}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}

    def ks_versions(self, req):
        return Reply(300, {"versions": {"values": [self._ks_version_doc()]}})

    def ks_version(self, req):
        return Reply(200, {"version": self._ks_version_doc()})

    @staticmethod
    def _ks_bad(msg):
        return keystone_error(400, msg + " The server could not comply with the "
                              "request since it is either malformed or otherwise "
                              "incorrect. The client is assumed to be in error.",
                              "Bad Request")

    def _ks_unauth(self):
        return Reply(401, {"error": {"code": 401, "message": UNAUTHORIZED,
                                     "title": "Unauthorized"}},
                     headers=[("WWW-Authenticate",
                               'Keystone uri="%s"' % self.identity.rstrip("/"))])

    @staticmethod
    def _need(obj, key, where, kind=dict):
        if not isinstance(obj, dict) or key not in obj:
            raise Api._ks_bad("Expecting to find %s in %s." % (key, where))
        v = obj[key]
        if kind is not None and not isinstance(v, kind):
            raise Api._ks_bad("Invalid input for field '%s': %r is not of type %s."
                              % (key, v, kind.__name__))
        return v

    def _ks_user(self, u, where):
        """The user an identity block names, or None."""
        if "id" in u:
            return self.cloud.find_user(uid=u["id"])
        name = u.get("name")
        if not name:
            raise self._ks_bad("Expecting to find id or name in %s." % where)
        dom = u.get("domain")
        if not isinstance(dom, dict) or not (dom.get("id") or dom.get("name")):
            raise self._ks_bad("Expecting to find domain in user.")
        if dom.get("id", "default") != "default" or dom.get("name", "Default") != "Default":
            return None
        return self.cloud.find_user(name=name)

    def ks_auth(self, req):
        body = req.json(lambda m: keystone_error(400, "Expecting to find valid JSON "
                                                 "in request body.", "Bad Request"))
        auth = self._need(body, "auth", "request body")
        ident = self._need(auth, "identity", "auth")
        methods = self._need(ident, "methods", "identity", list)
        cloud = self.cloud
        appcred = None
        if "application_credential" in methods:
            ac = self._need(ident, "application_credential", "identity")
            secret = self._need(ac, "secret", "application_credential", str)
            found = None
            for a in cloud.appcreds:
                if "id" in ac:
                    if a["id"] == ac["id"]:
                        found = a
                else:
                    if "name" not in ac:
                        raise self._ks_bad("Expecting to find id or name in application_credential.")
                    u = self._ks_user(self._need(ac, "user", "application_credential"), "user")
                    if u and a["name"] == ac["name"] and a["user"] == u["name"]:
                        found = a
            if not found or not secrets_equal(found["secret"], secret):
                raise self._ks_unauth()
            appcred = found
            user = cloud.users[found["user"]]
            project = cloud.projects[found["project"]]
            methods = ["application_credential"]
        elif "password" in methods:
            pw = self._need(ident, "password", "identity")
            u = self._need(pw, "user", "password")
            password = self._need(u, "password", "user", str)
            user = self._ks_user(u, "user")
            if not user or not secrets_equal(user["password"], password):
                raise self._ks_unauth()
            project = cloud.projects[user["project"]]
            scope = auth.get("scope")
            if scope is not None:
                p = self._need(scope, "project", "scope")
                if "id" in p:
                    want = cloud.find_project(pid=p["id"])
                else:
                    if "name" not in p:
                        raise self._ks_bad("Expecting to find id or name in project.")
                    dom = p.get("domain")
                    if not isinstance(dom, dict) or not (dom.get("id") or dom.get("name")):
                        raise self._ks_bad("Expecting to find domain in project.")
                    want = cloud.find_project(name=p["name"])
                if want is None or want["name"] != user["project"]:
                    raise self._ks_unauth()
            methods = ["password"]
        else:
            raise self._ks_unauth()
        tok, rec = cloud.issue_token(user, project, methods, appcred)
        return Reply(201, {"token": self._token_body(rec)},
                     headers=[("X-Subject-Token", tok), ("Vary", "X-Auth-Token")])

    def _token_body(self, rec):
        u, p = rec["user"], rec["project"]
        body = {
            "methods": rec["methods"],
            "user": {"domain": dict(state.DOMAIN), "id": u["id"], "name": u["name"],
                     "password_expires_at": None},
            "audit_ids": [rec["audit_id"]],
            "expires_at": iso_token(rec["expires"]),
            "issued_at": iso_token(rec["issued"]),
            "project": {"domain": dict(state.DOMAIN), "id": p["id"], "name": p["name"]},
            "is_domain": False,
            "roles": [{"id": state.ROLE_IDS.get(r, uuid.uuid5(uuid.NAMESPACE_URL, "role:" + r).hex),
                       "name": r} for r in rec["roles"]],
            "catalog": self._catalog(),
        }
        if rec["appcred"]:
            a = rec["appcred"]
            body["application_credential"] = {"id": a["id"], "name": a["name"],
                                              "restricted": True}
        return body

    def _catalog(self):
        out = []
        for typ, name, url in (("image", "glance", self.image_url),
                               ("network", "neutron", self.network_url),
                               ("compute", "nova", self.compute),
                               ("identity", "keystone", self.identity)):
            eps = []
            for iface in ("public", "internal", "admin"):
                eps.append({"id": uuid.uuid5(uuid.NAMESPACE_URL, typ + iface).hex,
                            "interface": iface, "region_id": "RegionOne",
                            "url": url, "region": "RegionOne"})
            out.append({"endpoints": eps, "id": self.catalog_ids[typ],
                        "type": typ, "name": name})
        return out

    def ks_validate(self, req):
        self.authenticate(req, "identity")
        sub = req.headers.get("X-Subject-Token")
        rec = self.cloud.check_token(sub)
        if rec is None:
            raise keystone_error(404, "Could not recognize Fernet token", "Not Found")
        return Reply(200, {"token": self._token_body(rec)},
                     headers=[("X-Subject-Token", sub), ("Vary", "X-Auth-Token")])

    # ---- Nova: versions, flavors, limits ----------------------------
    def _nova_v21_doc(self):
        return {"id": "v2.1", "status": "CURRENT", "version": mv_str(MAX_MV),
                "min_version": mv_str(MIN_MV), "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": self.compute + "/"}]}

    def nova_versions(self, req):
        return Reply(200, {"versions": [
            {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
             "updated": "2011-01-21T11:33:21Z",
             "links": [{"rel": "self", "href": self.compute_root + "/v2/"}]},
            self._nova_v21_doc()]})

    def nova_version(self, req):
        doc = self._nova_v21_doc()
        doc["links"].append({"rel": "describedby", "type": "text/html",
                             "href": "http://docs.openstack.org/"})
        doc["media-types"] = [{"base": "application/json",
                               "type": "application/vnd.openstack.compute+json;version=2.1"}]
        return Reply(200, {"version": doc})

    def _flavor_links(self, fid):
        return [{"rel": "self", "href": "%s/flavors/%s" % (self.compute, fid)},
                {"rel": "bookmark", "href": "%s/flavors/%s" % (self.compute_root, fid)}]

    def _flavor_view(self, f, mv, detail=True):
        if not detail:
            d = {"id": f["id"], "links": self._flavor_links(f["id"]), "name": f["name"]}
            if mv_ge(mv, (2, 55)):
                d["description"] = f["description"]
            return d
        d = {"id": f["id"], "name": f["name"], "ram": f["ram"], "disk": f["disk"],
             "swap": f["swap"] or "", "OS-FLV-EXT-DATA:ephemeral": f["ephemeral"],
             "OS-FLV-DISABLED:disabled": False, "vcpus": f["vcpus"],
             "os-flavor-access:is_public": True, "rxtx_factor": 1.0,
             "links": self._flavor_links(f["id"])}
        if mv_ge(mv, (2, 55)):
            d["description"] = f["description"]
        if mv_ge(mv, (2, 61)):
            d["extra_specs"] = dict(f["extra_specs"])
        return d

    def nova_flavors(self, req):
        return self._flavor_list(req, False)

    def nova_flavors_detail(self, req):
        return self._flavor_list(req, True)

    def _flavor_list(self, req, detail):
        limit, eff = self._limit(req)
        # Nova's default order: flavorid ascending (a string).
        flavors = sorted(self.cloud.visible_flavors(), key=lambda f: f["id"])
        marker = req.param("marker")
        if marker is not None:
            if not any(f["id"] == marker for f in flavors):
                raise nova_fault(400, "marker [%s] not found" % marker)
            flavors = [f for f in flavors if f["id"] > marker]
        page = flavors[:eff]
        body = {"flavors": [self._flavor_view(f, req.mv, detail) for f in page]}
        if eff and len(page) == eff:
            body["flavors_links"] = [{"rel": "next", "href": self._next_href(
                req, "flavors/detail" if detail else "flavors", page[-1]["id"])}]
        return Reply(200, body)

    @staticmethod
    def _limit(req):
        """(limit asked or None, the page size Nova uses: capped at 1000)."""
        limit = req.param("limit")
        if limit is not None:
            try:
                limit = int(limit)
            except ValueError:
                raise nova_fault(400, "limit param must be an integer")
            if limit < 0:
                raise nova_fault(400, "limit param must be positive")
        return limit, MAX_LIMIT if limit is None else min(limit, MAX_LIMIT)

    def _next_href(self, req, collection, marker):
        """Nova's next link: the request's params, sorted, marker replaced."""
        params = sorted((k, v) for k, v in dict(req.query).items() if k != "marker")
        params.append(("marker", marker))
        params.sort(key=lambda kv: kv[0])
        return "%s/%s?%s" % (self.compute, collection, urllib.parse.urlencode(params))

    def nova_flavor(self, req, fid):
        f = self.cloud.flavor(fid)
        if f is None or fid != f["id"]:
            raise nova_fault(404, "Flavor %s could not be found." % fid)
        return Reply(200, {"flavor": self._flavor_view(f, req.mv)})

    def nova_flavor_create(self, req):
        raise nova_fault(403, "Policy doesn't allow os_compute_api:os-flavor-manage:"
                         "create to be performed.")

    def nova_limits(self, req):
        c = self.cloud
        with c.lock:
            used = c.quota_usage(req.token["project"]["id"])
            q = lambda k: -1 if c.cfg[k] is None else c.cfg[k]  # noqa: E731
            ab = {"maxImageMeta": 128, "maxPersonality": 5,
                  "maxPersonalitySize": 10240, "maxSecurityGroupRules": 20,
                  "maxSecurityGroups": 10, "maxServerMeta": 128,
                  "maxTotalCores": q("quota_cores"), "maxTotalFloatingIps": 10,
                  "maxTotalInstances": q("quota_instances"),
                  "maxTotalKeypairs": 100, "maxTotalRAMSize": q("quota_ram"),
                  "maxServerGroups": 10, "maxServerGroupMembers": 10,
                  "totalCoresUsed": used["cores"], "totalInstancesUsed": used["instances"],
                  "totalRAMUsed": used["ram"], "totalSecurityGroupsUsed": 0,
                  "totalFloatingIpsUsed": 0, "totalServerGroupsUsed": 0}
        if mv_ge(req.mv, (2, 36)):
            for k in ("maxSecurityGroupRules", "maxSecurityGroups", "maxTotalFloatingIps",
                      "totalSecurityGroupsUsed", "totalFloatingIpsUsed"):
                del ab[k]
        if mv_ge(req.mv, (2, 57)):
            for k in ("maxPersonality", "maxPersonalitySize"):
                del ab[k]
        return Reply(200, {"limits": {"rate": [], "absolute": ab}})

    # ---- Nova: server views -----------------------------------------
    def _server_links(self, sid):
        return [{"rel": "self", "href": "%s/servers/%s" % (self.compute, sid)},
                {"rel": "bookmark", "href": "%s/servers/%s" % (self.compute_root, sid)}]

    def _addresses(self, s):
        if not s.show_addresses or not s.fixed_ips:
            return {}
        return {self.cloud.network["name"]: [
            {"version": 4, "addr": a, "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": mac}
            for a, mac in zip(s.fixed_ips, s.macs)]}

    def server_view(self, s, mv, rebuild=False):
        status = s.status
        f = s.flavor
        if mv_ge(mv, (2, 47)):
            flavor = {"vcpus": f["vcpus"], "ram": f["ram"], "disk": f["disk"],
                      "ephemeral": f["ephemeral"], "swap": f["swap"],
                      "original_name": f["name"], "extra_specs": dict(f["extra_specs"])}
        else:
            flavor = {"id": f["id"], "links": [
                {"rel": "bookmark", "href": "%s/flavors/%s" % (self.compute_root, f["id"])}]}
        # Nova's instance_destroy soft-deletes the metadata and fault rows
        # and removes the tags: a DELETED server in a changes-since list has
        # none of them (and no tag filter matches it).
        gone = s.deleted
        d = {"id": s.id, "name": s.name, "status": status,
             "tenant_id": s.project_id, "user_id": s.user_id,
             "metadata": {} if gone else dict(s.metadata),
             "hostId": state.host_id(s.project_id, s.host),
             "image": {"id": s.image_id, "links": [
                 {"rel": "bookmark", "href": "%s/images/%s" % (self.compute_root, s.image_id)}]},
             "flavor": flavor,
             "created": iso(s.created), "updated": iso(s.updated),
             "addresses": self._addresses(s),
             "accessIPv4": "", "accessIPv6": "",
             "links": self._server_links(s.id),
             "OS-DCF:diskConfig": "MANUAL"}
        if status in ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"):
            d["progress"] = 0
        if status == "ERROR" and s.fault:
            d["fault"] = dict(s.fault)
        if not rebuild or mv_ge(mv, (2, 75)):
            d["OS-EXT-AZ:availability_zone"] = (
                s.az or "nova") if s.host else (s.az or "")
            d["config_drive"] = "True" if s.config_drive else ""
            d["key_name"] = s.key_name
            d["OS-SRV-USG:launched_at"] = iso_usec(s.launched_at)
            d["OS-SRV-USG:terminated_at"] = iso_usec(s.terminated_at)
            d["OS-EXT-STS:task_state"] = s.task_state
            d["OS-EXT-STS:vm_state"] = s.vm_state
            d["OS-EXT-STS:power_state"] = s.power_state
            d["os-extended-volumes:volumes_attached"] = []
        if mv_ge(mv, (2, 9)):
            d["locked"] = s.locked
        if mv_ge(mv, (2, 73)):
            d["locked_reason"] = s.locked_reason
        if mv_ge(mv, (2, 19)):
            d["description"] = s.description
        if mv_ge(mv, (2, 26)):
            d["tags"] = [] if gone else list(s.tags)
        if mv_ge(mv, (2, 63)):
            d["trusted_image_certificates"] = None
        if mv_ge(mv, (2, 90)):
            d["OS-EXT-SRV-ATTR:hostname"] = s.hostname or s.name
        if mv_ge(mv, (2, 71)):
            d["server_groups"] = []
        if s.show_addresses and s.fixed_ips:
            # Nova reads these from the instance's Neutron ports: none, no key.
            d["security_groups"] = [{"name": g} for g in s.security_groups]
        return d

    def _get_server(self, req, sid):
        """The caller's live server sid (lock held by the caller)."""
        s = self.cloud.servers.get(sid)
        if (s is None or s.deleted or
                (s.project_id != req.token["project"]["id"] and not req.token["admin"])):
            raise nova_fault(404, "Instance %s could not be found." % sid)
        return s

    # ---- Nova: list -------------------------------------------------
    def nova_list(self, req):
        return self._list(req, detail=False)

    def nova_list_detail(self, req):
        return self._list(req, detail=True)

    @staticmethod
    def _states_for(statuses):
        """Nova's task_and_vm_state_from_status: (vm_states, task_states)."""
        vms, tasks = set(), set()
        for want in statuses:
            for vm, m in state.STATE_MAP.items():
                for task, st in m.items():
                    if st == want.upper():
                        vms.add(vm)
                        tasks.add(task)
        return vms, tasks

    def _list(self, req, detail):
        c = self.cloud
        admin = req.token["admin"]
        mv = req.mv
        limit, eff = self._limit(req)
        if admin and req.param("metadata") is not None:
            raise nova_fault(400, "Invalid filter field: metadata.")
        if req.param("all_tenants") is not None and not admin:
            raise nova_fault(403, "Policy doesn't allow os_compute_api:servers:"
                             "%s:get_all_tenants to be performed."
                             % ("detail" if detail else "index"))
        statuses = req.params("status")
        vms = tasks = None
        if statuses:
            vms, tasks = self._states_for(statuses)
            if not vms:
                if mv_ge(mv, (2, 38)):
                    raise nova_fault(400, "Invalid status value")
                return Reply(200, {"servers": []})
            if "deleted" in vms and not admin:
                raise nova_fault(403, "Only administrators may list deleted instances")
        since = req.param("changes-since")
        if since is not None:
            try:
                since = state.parse_isotime(since)
            except ValueError:
                raise nova_fault(400, "Invalid filter field: changes-since.")
        # changes-before (2.66): updated at or before it; like changes-since
        # it brings deleted servers too. Ignored before 2.66 (not in the schema).
        before = req.param("changes-before") if mv_ge(mv, (2, 66)) else None
        if before is not None:
            try:
                before = state.parse_isotime(before)
            except ValueError:
                raise nova_fault(400, "Invalid filter field: changes-before.")
            if since is not None and before < since:
                raise nova_fault(400, "The value of changes-since must be less than or "
                                 "equal to changes-before.")
        name_rx = req.param("name")
        if name_rx is not None:
            # MySQL's REGEXP under Nova's default collation ignores case.
            try:
                name_rx = re.compile(name_rx, re.IGNORECASE)
            except re.error:
                name_rx = re.compile(re.escape(name_rx), re.IGNORECASE)
        ip_rx = req.param("ip")
        if ip_rx is not None:
            try:
                ip_rx = re.compile(ip_rx)
            except re.error:
                ip_rx = re.compile(re.escape(ip_rx))
        tag_filters = {}
        if mv_ge(mv, (2, 26)):
            for k in ("tags", "tags-any", "not-tags", "not-tags-any"):
                v = req.param(k)
                if v is not None:
                    tag_filters[k] = set(t for t in v.split(",") if t)
        image, flavor = req.param("image"), req.param("flavor")
        marker = req.param("marker")
        with c.lock:
            project = req.token["project"]["id"]
            all_t = admin and req.param("all_tenants") is not None
            items = []
            c.purge_deleted()
            for s in c.servers.values():
                if not all_t and s.project_id != project:
                    continue
                if s.deleted and since is None and before is None and not (vms and "deleted" in vms):
                    continue
                if since is not None and s.updated < since:
                    continue
                if before is not None and s.updated > before:
                    continue
                if vms is not None:
                    if s.vm_state not in vms:
                        continue
                    if "default" not in tasks and s.task_state not in tasks:
                        continue
                if name_rx is not None and not name_rx.search(s.name):
                    continue
                if ip_rx is not None and not (s.show_addresses and any(
                        ip_rx.search(a) for a in s.fixed_ips)):
                    continue
                if image is not None and s.image_id != image:
                    continue
                if flavor is not None and s.flavor["id"] != flavor:
                    continue
                tags = set() if s.deleted else set(s.tags)
                if "tags" in tag_filters and not tag_filters["tags"] <= tags:
                    continue
                if "tags-any" in tag_filters and not tag_filters["tags-any"] & tags:
                    continue
                if "not-tags" in tag_filters and tag_filters["not-tags"] and \
                        tag_filters["not-tags"] <= tags:
                    continue
                if "not-tags-any" in tag_filters and tag_filters["not-tags-any"] & tags:
                    continue
                items.append(s)
            # Nova's default order: created_at desc, id desc.
            items.sort(key=lambda s: (s.created, s.id), reverse=True)
            if marker is not None:
                # Like Nova: the marker may be any instance, even a deleted one.
                m = c.servers.get(marker)
                if m is None:
                    raise nova_fault(400, "marker [%s] not found" % marker)
                mkey = (m.created, m.id)
                items = [s for s in items if (s.created, s.id) < mkey]
            page = items[:eff]
            if detail:
                out = [self.server_view(s, mv) for s in page]
            else:
                out = [{"id": s.id, "name": s.name, "links": self._server_links(s.id)}
                       for s in page]
        body = {"servers": out}
        if eff and len(page) == eff:
            body["servers_links"] = [{"rel": "next", "href": self._next_href(
                req, "servers/detail" if detail else "servers", page[-1].id)}]
        return Reply(200, body)

    # ---- Nova: create -----------------------------------------------
    def nova_create(self, req):
        mv = req.mv
        body = req.json(lambda m: nova_fault(400, m))
        if not isinstance(body, dict) or "server" not in body:
            raise schema_error("root", body, "'server' is a required property")
        srv = body["server"]
        if not isinstance(srv, dict):
            raise schema_error("server", srv, "%s is not of type 'object'" % pyrepr(srv))
        for k in ("name", "flavorRef") + (("networks",) if mv_ge(mv, (2, 37)) else ()):
            if k not in srv:
                raise schema_error("server", srv, "%r is a required property" % k)
        extra = [k for k in srv if k not in SERVER_KEYS or not mv_ge(mv, SERVER_KEYS[k])]
        if extra:
            raise schema_error("server", srv, "Additional properties are not allowed "
                               "(%s %s unexpected)" % (", ".join(repr(k) for k in extra),
                                                       "was" if len(extra) == 1 else "were"))
        name = srv["name"]
        if not isinstance(name, str):
            raise schema_error("name", name, "%s is not of type 'string'" % pyrepr(name))
        if not (1 <= len(name) <= 255) or name.strip() != name:
            raise schema_error("name", name, "%s does not match the name pattern" % pyrepr(name)
                               if name else "%r is too short" % name)
        meta = srv.get("metadata", {})
        self._check_metadata("metadata", meta)
        nets = self._check_networks(srv, mv)
        tags = srv.get("tags", [])
        if not isinstance(tags, list) or len(tags) > 50 or any(
                not isinstance(t, str) or not TAG_RX.match(t) for t in tags):
            raise schema_error("tags", tags, "Invalid tags")
        user_data = srv.get("user_data")
        if user_data is not None:
            if not isinstance(user_data, str) or len(user_data) > 65535:
                raise schema_error("user_data", user_data, "user_data is too long or not a string")
            try:
                base64.b64decode(user_data, validate=True)
            except (binascii.Error, ValueError):
                raise schema_error("user_data", user_data,
                                   "%s is not a 'base64'" % pyrepr(user_data))
        sgs = srv.get("security_groups", [{"name": "default"}])
        if not isinstance(sgs, list) or any(not isinstance(g, dict) or
                                            not isinstance(g.get("name"), str) for g in sgs):
            raise schema_error("security_groups", sgs, "Invalid security groups")
        cd = srv.get("config_drive", False)
        if cd not in (True, False, "True", "False", "true", "false", ""):
            raise schema_error("config_drive", cd, "%s is not valid under any of the given schemas" % pyrepr(cd))
        count = srv.get("max_count", srv.get("min_count", 1))
        mincount = srv.get("min_count", 1)
        if not isinstance(count, int) or count < 1 or not isinstance(mincount, int) \
                or mincount < 1 or mincount > count:
            raise schema_error("max_count", count, "Invalid count")
        desc = srv.get("description")
        c = self.cloud
        if not srv.get("imageRef"):
            raise nova_fault(400, "Missing imageRef attribute")
        image_id = self._image_uuid(srv["imageRef"])
        with c.lock:
            fref = str(srv["flavorRef"]).rstrip("/").rsplit("/", 1)[-1]
            flavor = c.flavor(fref)
            if flavor is None:
                raise nova_fault(400, "Flavor %s could not be found." % fref)
            image = c.image(image_id)
            if image is None:
                raise nova_fault(400, "Can not find requested image")
            az = srv.get("availability_zone")
            if az is not None and az not in c.zones:
                raise nova_fault(400, "The requested availability zone is not available")
            kn = srv.get("key_name")
            if kn is not None and c.keypairs is not None and kn not in c.keypairs:
                raise nova_fault(400, "Invalid key_name provided.")
            for r in (nets if isinstance(nets, list) else []):
                if r.get("uuid") and r["uuid"] != c.network["id"]:
                    raise nova_fault(400, "Network %s could not be found." % r["uuid"])
                if r.get("port"):
                    raise nova_fault(400, "Port %s could not be found." % r["port"])
            self._check_quota(req, flavor, count)
            if (c.cfg["flavor_faults"].get(flavor["name"]) or
                    c.cfg["flavor_faults"].get(flavor["id"])) == "quota":
                self._quota_fault("Quota exceeded for cores: Requested %d, but already used "
                                  "0 of 0 cores" % (flavor["vcpus"] * count))
            made = []
            for i in range(count):
                sname = name if count == 1 else "%s-%d" % (name, i + 1)
                s = Server(name=sname, project_id=req.token["project"]["id"],
                           user_id=req.token["user"]["id"], flavor=dict(flavor),
                           image_id=image["id"], metadata=dict(meta), tags=list(tags),
                           key_name=kn, user_data=user_data,
                           config_drive=cd in (True, "True", "true"), az=az,
                           security_groups=[g["name"] for g in sgs], networks=nets,
                           description=desc,
                           hostname=srv.get("hostname") or "")
                if srv.get("adminPass"):
                    s.admin_pass = srv["adminPass"]
                c.start_build(s)
                made.append(s)
        s = made[0]
        if srv.get("return_reservation_id"):
            return Reply(202, {"reservation_id": "r-" + uuid.uuid4().hex[:8]})
        return Reply(202, {"server": {
            "id": s.id, "links": self._server_links(s.id), "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": g} for g in s.security_groups],
            "adminPass": s.admin_pass}},
            headers=[("Location", "%s/servers/%s" % (self.compute, s.id))])

    @staticmethod
    def _image_uuid(ref):
        """The id in an imageRef (an id or a URL), 400 unless a UUID."""
        iid = str(ref).rsplit("/", 1)[-1]
        if not UUID_RX.fullmatch(iid):
            raise nova_fault(400, "Invalid imageRef provided.")
        return iid

    @staticmethod
    def _check_metadata(field, meta):
        if not isinstance(meta, dict):
            raise schema_error(field, meta, "%s is not of type 'object'" % pyrepr(meta))
        for k, v in meta.items():
            if not (1 <= len(k) <= 255):
                raise schema_error(field, meta, "%r does not match any of the regexes: "
                                   "'^[a-zA-Z0-9-_:. ]{1,255}$'" % k)
            if not isinstance(v, str):
                raise schema_error(field, meta, "%s is not of type 'string'" % pyrepr(v))
            if len(v) > 255:
                raise schema_error(field, meta, "%r is too long" % v)
        if len(meta) > 128:
            raise nova_fault(403, "Quota exceeded for metadata_items: Requested %d, "
                             "but already used 0 of 128 metadata_items" % len(meta))

    @staticmethod
    def _check_networks(srv, mv):
        if "networks" not in srv:
            return "auto"
        nets = srv["networks"]
        if isinstance(nets, str):
            if not mv_ge(mv, (2, 37)):
                raise schema_error("networks", nets, "%s is not of type 'array'" % pyrepr(nets))
            if nets not in ("auto", "none"):
                raise schema_error("networks", nets,
                                   "%s is not one of ['none', 'auto']" % pyrepr(nets))
            return nets
        if not isinstance(nets, list):
            raise schema_error("networks", nets, "%s is not of type 'array'" % pyrepr(nets))
        for r in nets:
            if not isinstance(r, dict) or not (set(r) <= {"uuid", "port", "fixed_ip", "tag"}):
                raise schema_error("networks", nets, "Invalid network request")
            if "fixed_ip" in r:
                try:
                    import ipaddress
                    ipaddress.ip_address(r["fixed_ip"])
                except (ValueError, TypeError):
                    raise schema_error("fixed_ip", r["fixed_ip"],
                                       "%s is not a 'ip-address'" % pyrepr(r["fixed_ip"]))
        return nets or "auto"

    def _check_quota(self, req, flavor, count):
        c = self.cloud
        used = c.quota_usage(req.token["project"]["id"])
        for res, key, need in (("instances", "quota_instances", count),
                               ("cores", "quota_cores", flavor["vcpus"] * count),
                               ("ram", "quota_ram", flavor["ram"] * count)):
            allowed = c.cfg[key]
            if allowed is not None and used[res] + need > allowed:
                self._quota_fault("Quota exceeded for %s: Requested %d, but already used %d "
                                  "of %d %s" % (res, need, used[res], allowed, res))

    def _quota_fault(self, msg):
        if self.cloud.cfg["quota_status"] == 413:
            r = nova_fault(413, msg, {"retryAfter": "0"})
            r.headers.append(("Retry-After", "0"))
            raise r
        raise nova_fault(403, msg)

    # ---- Nova: show, delete, actions --------------------------------
    def nova_show(self, req, sid):
        with self.cloud.lock:
            s = self._get_server(req, sid)
            return Reply(200, {"server": self.server_view(s, req.mv)})

    def nova_delete(self, req, sid):
        with self.cloud.lock:
            s = self._get_server(req, sid)
            if s.locked and not req.token["admin"]:
                raise nova_fault(409, "Instance %s is locked" % sid)
            self.cloud.start_delete(s)
        return Reply(204, raw=b"")

    @staticmethod
    def _conflict(s, action, attr):
        raise nova_fault(409, "Cannot '%s' instance %s while it is in %s %s"
                         % (action, s.id, attr, getattr(s, attr)))

    def _check_state(self, s, action, vm_states, task_states=(None,)):
        if s.vm_state not in vm_states:
            self._conflict(s, action, "vm_state")
        if task_states is not None and s.task_state not in task_states:
            self._conflict(s, action, "task_state")

    def nova_action(self, req, sid):
        body = req.json(lambda m: nova_fault(400, m))
        if not isinstance(body, dict) or len(body) != 1:
            raise nova_fault(400, "There is no such action: %s" % (
                ",".join(body) if isinstance(body, dict) else body))
        action, arg = next(iter(body.items()))
        c = self.cloud
        with c.lock:
            s = self._get_server(req, sid)
            if action == "reboot":
                return self._reboot(req, s, arg)
            if action == "rebuild":
                return self._rebuild(req, s, arg)
            if action == "lock":
                s.locked = True
                if isinstance(arg, dict) and mv_ge(req.mv, (2, 73)):
                    s.locked_reason = arg.get("locked_reason")
                return Reply(202, raw=b"")
            if action == "unlock":
                s.locked = False
                s.locked_reason = None
                return Reply(202, raw=b"")
            if action == "os-getConsoleOutput":
                return self._console(req, s, arg)
        raise nova_fault(400, "There is no such action: %s" % action)

    def _reboot(self, req, s, arg):
        if not isinstance(arg, dict) or arg.get("type") not in (
                "HARD", "SOFT", "hard", "soft", "Hard", "Soft"):
            raise schema_error("type" if isinstance(arg, dict) else "reboot",
                               arg.get("type") if isinstance(arg, dict) else arg,
                               "%s is not one of ['HARD', 'Hard', 'hard', 'SOFT', "
                               "'Soft', 'soft']" % pyrepr(arg.get("type") if isinstance(arg, dict) else arg))
        kind = arg["type"].upper()
        if s.locked and not req.token["admin"]:
            raise nova_fault(409, "Instance %s is locked" % s.id)
        reboot_tasks = [None] + state.REBOOT_TASKS["SOFT"] + state.REBOOT_TASKS["HARD"]
        self._check_state(s, "reboot", ("active", "error", "stopped"), reboot_tasks)
        if kind == "SOFT":
            self._check_state(s, "reboot", ("active",), (None,))
        if not s.host:
            raise nova_fault(409, "Instance %s is not ready" % s.id)
        self.cloud.start_reboot(s, kind)
        return Reply(202, raw=b"")

    def _rebuild(self, req, s, arg):
        mv = req.mv
        if not isinstance(arg, dict) or "imageRef" not in arg:
            raise schema_error("rebuild", arg, "'imageRef' is a required property")
        allowed = {"imageRef", "name", "metadata", "adminPass", "OS-DCF:diskConfig",
                   "accessIPv4", "accessIPv6", "preserve_ephemeral", "personality"}
        if mv_ge(mv, (2, 19)):
            allowed.add("description")
        if mv_ge(mv, (2, 54)):
            allowed.add("key_name")
        if mv_ge(mv, (2, 57)):
            allowed |= {"user_data"}
            allowed.discard("personality")
        if mv_ge(mv, (2, 63)):
            allowed.add("trusted_image_certificates")
        if mv_ge(mv, (2, 90)):
            allowed.add("hostname")
        extra = [k for k in arg if k not in allowed]
        if extra:
            raise schema_error("rebuild", arg, "Additional properties are not allowed "
                               "(%s %s unexpected)" % (", ".join(repr(k) for k in extra),
                                                       "was" if len(extra) == 1 else "were"))
        if s.locked and not req.token["admin"]:
            raise nova_fault(409, "Instance %s is locked" % s.id)
        self._check_state(s, "rebuild", ("active", "stopped", "error"), (None,))
        image = self.cloud.image(self._image_uuid(arg["imageRef"]))
        if image is None:
            raise nova_fault(400, "Cannot find image for rebuild")
        if not s.host:
            raise nova_fault(409, "Instance %s is not ready" % s.id)
        changes = {}
        if "metadata" in arg:
            self._check_metadata("metadata", arg["metadata"])
            changes["metadata"] = dict(arg["metadata"])
        if "name" in arg:
            if not isinstance(arg["name"], str) or not arg["name"]:
                raise schema_error("name", arg["name"], "Invalid name")
            changes["name"] = arg["name"]
        for k in ("description", "key_name", "user_data"):
            if k in arg:
                changes[k] = arg[k]
        if arg.get("adminPass"):
            changes["admin_pass"] = arg["adminPass"]
        self.cloud.start_rebuild(s, image, changes)
        body = self.server_view(s, mv, rebuild=True)
        body["adminPass"] = s.admin_pass
        return Reply(202, {"server": body},
                     headers=[("Location", "%s/servers/%s" % (self.compute, s.id))])

    def _console(self, req, s, arg):
        length = None
        if isinstance(arg, dict) and arg.get("length") is not None:
            length = arg["length"]
            if isinstance(length, str) and re.fullmatch(r"-?[0-9]+", length):
                length = int(length)
            if not isinstance(length, int) or isinstance(length, bool) or length < -1:
                raise schema_error("length", arg["length"], "Invalid length")
            if length == -1:
                length = None
        if not s.host or s.vm_state not in ("active", "error"):
            raise nova_fault(409, "Instance %s is not ready" % s.id)
        lines = list(s.console)
        if length is not None:
            lines = lines[-length:] if length else []
        return Reply(200, {"output": "".join(line + "\n" for line in lines)})

    # ---- Nova: metadata ---------------------------------------------
    def _meta_state(self, s, req, action):
        if s.locked and not req.token["admin"]:
            raise nova_fault(409, "Instance %s is locked" % s.id)
        self._check_state(s, action, ("active", "stopped"), (None,))

    def nova_meta_list(self, req, sid):
        with self.cloud.lock:
            s = self._get_server(req, sid)
            return Reply(200, {"metadata": dict(s.metadata)})

    def nova_meta_replace(self, req, sid):
        return self._meta_update(req, sid, replace=True)

    def nova_meta_merge(self, req, sid):
        return self._meta_update(req, sid, replace=False)

    def _meta_update(self, req, sid, replace):
        body = req.json(lambda m: nova_fault(400, m))
        if not isinstance(body, dict) or "metadata" not in body:
            raise schema_error("root", body, "'metadata' is a required property")
        self._check_metadata("metadata", body["metadata"])
        with self.cloud.lock:
            s = self._get_server(req, sid)
            self._meta_state(s, req, "update metadata")
            if replace:
                s.metadata = dict(body["metadata"])
            else:
                s.metadata.update(body["metadata"])
            s.touch()
            return Reply(200, {"metadata": dict(s.metadata)})

    def nova_meta_show(self, req, sid, key):
        key = urllib.parse.unquote(key)
        with self.cloud.lock:
            s = self._get_server(req, sid)
            if key not in s.metadata:
                raise nova_fault(404, "Metadata item was not found")
            return Reply(200, {"meta": {key: s.metadata[key]}})

    def nova_meta_set(self, req, sid, key):
        key = urllib.parse.unquote(key)
        body = req.json(lambda m: nova_fault(400, m))
        if not isinstance(body, dict) or "meta" not in body:
            raise schema_error("root", body, "'meta' is a required property")
        meta = body["meta"]
        self._check_metadata("meta", meta)
        if len(meta) != 1:
            raise schema_error("meta", meta, "Request body contains too many items")
        if key not in meta:
            raise nova_fault(400, "Request body and URI mismatch")
        with self.cloud.lock:
            s = self._get_server(req, sid)
            self._meta_state(s, req, "update metadata")
            s.metadata[key] = meta[key]
            s.touch()
            return Reply(200, {"meta": {key: meta[key]}})

    def nova_meta_delete(self, req, sid, key):
        key = urllib.parse.unquote(key)
        with self.cloud.lock:
            s = self._get_server(req, sid)
            if key not in s.metadata:
                raise nova_fault(404, "Metadata item was not found")
            self._meta_state(s, req, "delete metadata")
            del s.metadata[key]
            s.touch()
        return Reply(204, raw=b"")

    # ---- Nova: tags (2.26+) -----------------------------------------
    def _tags_server(self, req, sid, write):
        if not mv_ge(req.mv, (2, 26)):
            raise nova_fault(404, "The resource could not be found.")
        s = self._get_server(req, sid)
        if write:
            if s.vm_state not in ("active", "building", "stopped", "paused",
                                  "suspended", "rescued", "resized",
                                  "shelved", "shelved_offloaded"):
                self._conflict(s, "update tag", "vm_state")
        return s

    def nova_tags_list(self, req, sid):
        with self.cloud.lock:
            s = self._tags_server(req, sid, False)
            return Reply(200, {"tags": list(s.tags)})

    def nova_tags_replace(self, req, sid):
        body = req.json(lambda m: nova_fault(400, m))
        tags = body.get("tags") if isinstance(body, dict) else None
        if not isinstance(tags, list) or any(not isinstance(t, str) or not TAG_RX.match(t)
                                             for t in tags):
            raise schema_error("tags", tags, "Invalid tags")
        if len(tags) > 50:
            raise nova_fault(400, "The number of tags exceeded the per-server limit 50")
        with self.cloud.lock:
            s = self._tags_server(req, sid, True)
            s.tags = list(dict.fromkeys(tags))
            s.touch()
            return Reply(200, {"tags": list(s.tags)})

    def nova_tags_clear(self, req, sid):
        with self.cloud.lock:
            s = self._tags_server(req, sid, True)
            s.tags = []
            s.touch()
        return Reply(204, raw=b"")

    def nova_tag_check(self, req, sid, tag):
        tag = urllib.parse.unquote(tag)
        with self.cloud.lock:
            s = self._tags_server(req, sid, False)
            if tag not in s.tags:
                raise nova_fault(404, "Tag %s could not be found." % tag)
        return Reply(204, raw=b"")

    def nova_tag_add(self, req, sid, tag):
        tag = urllib.parse.unquote(tag)
        if not TAG_RX.match(tag):
            raise schema_error("tag", tag, "Invalid tag")
        with self.cloud.lock:
            s = self._tags_server(req, sid, True)
            if tag in s.tags:
                return Reply(204, raw=b"")
            if len(s.tags) >= 50:
                raise nova_fault(400, "The number of tags exceeded the per-server limit 50")
            s.tags.append(tag)
            s.touch()
        return Reply(201, raw=b"", headers=[
            ("Location", "%s/servers/%s/tags/%s" % (self.compute, sid,
                                                   urllib.parse.quote(tag)))])

    def nova_tag_delete(self, req, sid, tag):
        tag = urllib.parse.unquote(tag)
        with self.cloud.lock:
            s = self._tags_server(req, sid, True)
            if tag not in s.tags:
                raise nova_fault(404, "Tag %s could not be found." % tag)
            s.tags.remove(tag)
            s.touch()
        return Reply(204, raw=b"")

    # ---- Glance -----------------------------------------------------
    def glance_versions(self, req):
        v = [{"id": "v2.%d" % n, "status": "CURRENT" if n == 15 else "SUPPORTED",
              "links": [{"rel": "self", "href": self.image_url + "/v2/"}]}
             for n in range(15, -1, -1)]
        return Reply(300, {"versions": v})

    def _image_view(self, i):
        d = {"owner_specified.openstack.md5": "",
             "owner_specified.openstack.sha256": "",
             "owner_specified.openstack.object": "images/" + i["name"],
             "name": i["name"], "disk_format": i["disk_format"],
             "container_format": i["container_format"], "visibility": i["visibility"],
             "size": i["size"], "virtual_size": i["size"], "status": i["status"],
             "checksum": uuid.uuid5(uuid.NAMESPACE_URL, "md5:" + i["id"]).hex,
             "protected": False, "min_ram": i["min_ram"], "min_disk": i["min_disk"],
             "owner": i["owner"], "os_hidden": False, "os_hash_algo": "sha512",
             "os_hash_value": (uuid.uuid5(uuid.NAMESPACE_URL, "sha:" + i["id"]).hex * 4),
             "id": i["id"], "created_at": iso(i["created"]), "updated_at": iso(i["created"]),
             "tags": list(i["tags"]), "self": "/v2/images/" + i["id"],
             "file": "/v2/images/%s/file" % i["id"], "schema": "/v2/schemas/image",
             "stores": "file"}
        for k, v in i.items():
            if k not in ("created",) and k not in d:
                d[k] = v
        return d

    def glance_list(self, req):
        limit = req.param("limit")
        try:
            limit = GLANCE_LIMIT_DEFAULT if limit is None else int(limit)
        except ValueError:
            raise glance_error(400, "limit param must be an integer", req)
        if limit < 0:
            raise glance_error(400, "limit param must be positive", req)
        limit = min(limit, GLANCE_LIMIT_MAX)
        name, status = req.param("name"), req.param("status")
        vis = req.param("visibility")
        imgs = [i for i in sorted(self.cloud.images, key=lambda i: (i["created"], i["id"]),
                                  reverse=True)
                if (name is None or i["name"] == name) and
                (status is None or i["status"] == status) and
                (vis is None or vis == "all" or i["visibility"] == vis)]
        marker = req.param("marker")
        if marker is not None:
            idx = next((n for n, i in enumerate(imgs) if i["id"] == marker), None)
            if idx is None:
                raise glance_error(400, "Invalid marker. Image %s could not be found." % marker, req)
            imgs = imgs[idx + 1:]
        page = imgs[:limit]
        q = [(k, v) for k, v in req.query if k != "marker"]
        first = "/v2/images" + ("?" + urllib.parse.urlencode(q) if q else "")
        body = {"images": [self._image_view(i) for i in page], "first": first,
                "schema": "/v2/schemas/images"}
        if limit and len(page) == limit:
            body["next"] = "/v2/images?" + urllib.parse.urlencode(q + [("marker", page[-1]["id"])])
        return Reply(200, body)

    def glance_show(self, req, iid):
        i = self.cloud.image(iid)
        if i is None or i["id"] != iid:
            raise glance_error(404, "No image found with ID %s" % iid, req)
        return Reply(200, self._image_view(i))


    # ---- Neutron ----------------------------------------------------
    def neutron_versions(self, req):
        return Reply(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
            {"rel": "self", "href": self.network_url + "/v2.0/"}]}]})

    def _network_view(self, req):
        net = self.cloud.network
        pid = req.token["project"]["id"] if getattr(req, "token", None) else ""
        subnet = str(uuid.uuid5(uuid.NAMESPACE_URL, "subnet:" + net["id"]))
        return {"id": net["id"], "name": net["name"], "tenant_id": pid, "project_id": pid,
                "admin_state_up": True, "mtu": 1450, "status": "ACTIVE", "subnets": [subnet],
                "shared": False, "availability_zone_hints": [], "availability_zones": ["nova"],
                "ipv4_address_scope": None, "ipv6_address_scope": None, "router:external": False,
                "description": "", "port_security_enabled": True, "dns_domain": None,
                "l2_adjacency": True, "qos_policy_id": None, "tags": [],
                "created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-01T00:00:00Z",
                "revision_number": 2}

    def neutron_networks(self, req):
        """GET /v2.0/networks: filters are exact matches on any field, repeats OR'ed."""
        view = self._network_view(req)
        for key in {k for k, _ in req.query}:
            if key in ("fields", "limit", "marker", "page_reverse", "sort_key", "sort_dir"):
                continue
            vals = req.params(key)
            have = view.get(key)
            if isinstance(have, bool):
                have = "true" if have else "false"
                vals = [v.lower() for v in vals]
            if key not in view or str(have) not in vals:
                return Reply(200, {"networks": []})
        return Reply(200, {"networks": [view]})

    def neutron_network(self, req, nid):
        view = self._network_view(req)
        if nid != view["id"]:
            raise neutron_error(404, "NetworkNotFound", "Network %s could not be found." % nid)
        return Reply(200, {"network": view})


def secrets_equal(a, b):
    import hmac
    return hmac.compare_digest(a.encode(), b.encode())


def redact(v):
    """Copy of a request body with passwords and secrets masked."""
    if isinstance(v, dict):
        return {k: ("***" if k in ("password", "secret", "adminPass") and
                    isinstance(x, str) else redact(x))
                for k, x in v.items()}
    if isinstance(v, list):
        return [redact(x) for x in v]
    return v


# ---- the control endpoint -------------------------------------------------

class Control:
    def __init__(self, cloud, api):
        self.cloud = cloud
        self.api = api

    def handle(self, method, path, query, body):
        try:
            return self._handle(method, path, query, body)
        except (ValueError, TypeError, re.error) as e:
            return 400, {"error": "bad request: %s" % e}

    def _handle(self, method, path, query, body):
        c = self.cloud
        q = dict(query)
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return 400, {"error": "body is not JSON"}
        if path == "/_emulator/config":
            if method == "GET":
                with c.lock:
                    return 200, dict(c.cfg)
            if method == "POST":
                try:
                    return 200, c.set_config(data)
                except ConfigError as e:
                    return 400, {"error": str(e)}
        elif path == "/_emulator/reset" and method == "POST":
            c.reset_state()
            return 200, {"reset": True}
        elif path == "/_emulator/tokens/expire" and method == "POST":
            return 200, {"expired": c.expire_tokens()}
        elif path == "/_emulator/requests" and method == "GET":
            since = int(q.get("since", 0) or 0)
            with c.lock:
                out = [dict(e) for e in c.log if e["seq"] > since and
                       (not q.get("method") or e["method"] == q["method"].upper()) and
                       (not q.get("path") or re.search(q["path"], e["path"]))]
            return 200, {"requests": out}
        elif path == "/_emulator/stats":
            with c.lock:
                if method == "GET":
                    return 200, json.loads(json.dumps(c.stats))
                if method == "DELETE":
                    for k in ("total", "max_in_flight"):
                        c.stats[k] = 0 if k == "total" else c.stats["in_flight"]
                    for k in ("by_method", "by_route", "bytes_by_route", "by_status", "faults"):
                        c.stats[k] = {}
                    c.stats["max_in_flight_by_method"] = dict(c.stats["in_flight_by_method"])
                    return 200, {"cleared": True}
        elif path == "/_emulator/servers" and method == "GET":
            with c.lock:
                servers = [c.server_summary(s) for s in
                           sorted(c.servers.values(), key=lambda s: s.created)]
                live = [s for s in servers if s["vm_state"] != "deleted"]
                return 200, {"servers": servers, "count": len(live),
                             "deleted": len(servers) - len(live),
                             "addresses_in_use": sorted(c.used_addresses)}
        else:
            m = re.fullmatch(r"/_emulator/servers/([^/]+)", path)
            if m:
                return self.server(method, m.group(1), data)
        return 404, {"error": "no such control endpoint: %s %s" % (method, path)}

    def server(self, method, sid, data):
        c = self.cloud
        with c.lock:
            s = c.servers.get(sid)
            if s is None:
                return 404, {"error": "no server %s" % sid}
            if method == "GET":
                out = c.server_summary(s)
                out["console"] = list(s.console)
                return 200, out
            if method == "DELETE":
                # Vanish out of band (as if an operator deleted it): no hook.
                s.wake.set()
                c._release(s)
                s.vm_state, s.task_state = "deleted", None
                s.terminated_at = state.now()
                s.touch()
                return 200, {"deleted": sid}
            if method == "POST":
                if not isinstance(data, dict):
                    return 400, {"error": "body must be an object"}
                for k in data:
                    if k not in ("status", "fault", "locked", "task_state"):
                        return 400, {"error": "unknown field %r" % k}
                if "status" in data:
                    st = data["status"]
                    if st == "ERROR":
                        s.wake.set()
                        s.set_error(data.get("fault", "emulator: forced ERROR"))
                    elif st == "ACTIVE":
                        s.wake.set()
                        s.vm_state, s.task_state, s.power_state = "active", None, 1
                        s.host = s.host or c.host
                        s.fault = None
                        s.touch()
                    else:
                        return 400, {"error": "status must be ERROR or ACTIVE"}
                if "task_state" in data:
                    s.task_state = data["task_state"]
                    s.touch()
                if "locked" in data:
                    s.locked = bool(data["locked"])
                return 200, c.server_summary(s)
        return 405, {"error": "method not allowed"}


# ---- HTTP ---------------------------------------------------------------

class Gate:
    """At most cloud.cfg['workers'] API calls at once (0 = unlimited), like
    a single nova-api worker that makes everyone queue."""

    def __init__(self, cloud):
        self.cloud = cloud
        self.busy = 0
        self.cond = threading.Condition()

    def __enter__(self):
        with self.cond:
            while True:
                n = self.cloud.cfg["workers"]
                if not n or self.busy < n:
                    break
                self.cond.wait(0.5)
            self.busy += 1

    def __exit__(self, *exc):
        with self.cond:
            self.busy -= 1
            self.cond.notify_all()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "emulator"
    timeout = 60

    def setup(self):
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError) as e:
                if self.server.ctx.verbose:
                    sys.stderr.write("emulator: TLS handshake failed: %s\n" % e)
                self.close_connection = True
                raise ConnectionAbortedError from e

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, socket.timeout):
            pass

    def log_message(self, fmt, *args):
        if self.server.ctx.verbose:
            sys.stderr.write("emulator: %s %s\n" % (self.address_string(), fmt % args))

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = b""
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline(3)
                if len(out) > MAX_BODY:
                    raise Reply(413, raw=b"")
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise Reply(413, raw=b"")
        return self.rfile.read(n) if n > 0 else b""

    def _dispatch(self):
        ctx = self.server.ctx
        cloud = ctx.cloud
        url = urllib.parse.urlsplit(self.path)
        path = url.path or "/"
        query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        try:
            body = self._read_body()
        except Reply:
            self.send_error(413)
            self.close_connection = True
            return
        except ValueError:
            self.send_error(400)
            self.close_connection = True
            return
        if path.startswith("/_emulator/"):
            status, out = ctx.control.handle(self.command, path, query, body)
            self._send(status, [], json.dumps(out).encode(), "application/json")
            return
        rid = "req-" + str(uuid.uuid4())
        t0 = time.time()
        cloud.enter(self.command)
        self._entered = cloud
        entry = {"time": round(t0, 6), "method": self.command, "path": self.path,
                 "request_id": rid, "status": None, "fault": None, "route": "unmatched"}
        self._entry = entry
        if self.command in ("POST", "PUT", "PATCH") and body:
            try:
                entry["body"] = redact(json.loads(body))
            except ValueError:
                entry["body"] = None
        mv = self.headers.get("OpenStack-API-Version") or \
            self.headers.get("X-OpenStack-Nova-API-Version")
        if mv:
            entry["microversion"] = mv
        try:
            with ctx.gate:
                self._serve(ctx, cloud, path, query, body, rid, entry)
        finally:
            self._leave()

    def _serve(self, ctx, cloud, path, query, body, rid, entry):
        with cloud.lock:
            delay = (cloud.cfg["latency"] + cloud.cfg["latency_by_method"].get(self.command, 0.0) +
                     cloud.path_latency(self.command, path))
            fault = None
            fm, fp = cloud.cfg["fault_method"], cloud.cfg["fault_path"]
            if cloud.in_outage(path):
                fault = str(cloud.cfg["outage_status"])
            elif (not fm or fm == self.command) and (not fp or re.search(fp, path)):
                if cloud.roll("drop_rate", "drop_next"):
                    fault = "drop-after" if cloud.cfg["drop_after"] else "drop"
                elif cloud.roll("ratelimit_rate", "ratelimit_next"):
                    fault = "429"
                elif cloud.roll("error_rate", "error_next"):
                    fault = str(cloud.rng.choice(cloud.cfg["error_codes"]))
            mode = "reset" if cloud.cfg["drop_reset"] else cloud.cfg["drop_mode"]
            retry_after = cloud.cfg["retry_after"]
        entry["route"] = ctx.api.match(self.command, path)[4]
        if delay > 0:
            time.sleep(delay)
        entry["fault"] = fault
        if fault == "drop":
            entry["status"] = "dropped"
            self._drop(mode, None)
            return
        req = Request(self.command, path, query, self.headers, body, rid)
        if fault in ("429",):
            ra = int(retry_after)
            r = Reply(429, {"overLimit": {"code": 429, "message": "This request was rate-limited.",
                                          "retryAfter": str(ra)}},
                      headers=[("Retry-After", str(ra))],
                      ctype="application/json; charset=UTF-8")
        elif fault and fault.isdigit():
            code = int(fault)
            if code == 500:
                r = self._service_500(ctx.api.match(self.command, path)[2])
            else:
                r = Reply(code, raw=PROXY_BODIES[code].encode(), ctype="text/html")
        else:
            r = ctx.api.handle(req)
        entry["route"] = getattr(req, "route", entry["route"])
        hdrs = list(r.headers)
        if r.status not in (502, 503, 504, 429) or fault is None:
            if path.startswith("/compute"):
                hdrs += [("X-Openstack-Request-Id", rid), ("X-Compute-Request-Id", rid)]
            elif path.startswith("/image"):
                if r.status != 401:     # Glance's 401 comes without one
                    hdrs += [("X-Openstack-Request-Id", rid)]
            elif path.startswith("/network"):
                hdrs += [("X-Openstack-Request-Id", rid)]
            else:
                hdrs += [("x-openstack-request-id", rid)]
                if not any(h[0] == "Vary" for h in hdrs):
                    hdrs.append(("Vary", "X-Auth-Token"))
        if r.raw is not None:
            data = r.raw
        else:
            data = json.dumps(r.body).encode()
        if fault == "drop-after":
            entry["status"] = "dropped"
            self._drop(mode, (r.status, hdrs, data, r.ctype or "application/json"))
            return
        entry["status"] = r.status
        self._send(r.status, hdrs, data, r.ctype or "application/json")

    @staticmethod
    def _service_500(service):
        if service == "compute":
            return nova_fault(500, "Unexpected API Error. Please report this at "
                              "http://bugs.launchpad.net/nova/ and attach the Nova "
                              "API log if possible.\n<class 'oslo_db.exception."
                              "DBConnectionError'>")
        if service == "network":
            return neutron_error(500, "HTTPInternalServerError", "Request Failed: internal server "
                                 "error while processing your request.")
        if service == "image":
            return Reply(500, {"message": "The server has either erred or is "
                               "incapable of performing the requested operation."
                               "<br /><br />\n\n\n", "code": "500 Internal Server Error",
                               "title": "Internal Server Error"})
        return keystone_error(500, "An unexpected error prevented the server from "
                              "fulfilling your request.", "Internal Server Error")

    def _leave(self):
        """Stop counting this request as in flight and log it. Called just
        before the first byte of the answer (or the drop) goes out: the
        client may start its next request as soon as it has the answer, and
        max_in_flight must never count a request the client already considers
        done (tests check a client's concurrency cap with it); the request log
        and stats must already show what the client has seen."""
        entered, self._entered = getattr(self, "_entered", None), None
        if entered is not None:
            entered.leave(self.command)
            entry = self._entry
            entry["duration"] = round(time.time() - entry["time"], 6)
            entered.log_request(entry)

    def _drop(self, mode, answer):
        """Lose the answer: close (FIN), reset (RST) or partial (the status
        line, headers and part of the body, then FIN). An unprocessed request
        gets a partial 200 of its own."""
        self._leave()
        self.close_connection = True
        if mode == "partial" and answer is not None and len(answer[2]) < 2:
            mode = "close"              # nothing to cut (e.g. a 204): plain close
        try:
            if mode == "partial":
                if answer is None:
                    answer = (200, [], b'{"server": {"id": "' + b"0" * 64 + b'"}}',
                              "application/json")
                status, hdrs, data, ctype = answer
                self._send(status, hdrs, data, ctype, cut=len(data) // 2)
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            elif mode == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, status, headers, data, ctype, cut=None):
        if getattr(self, "_entered", None) is not None:
            self._entry["bytes"] = len(data)     # the body, for stats' bytes_by_route
        self._leave()
        self.send_response(status, REASONS.get(status))
        names = {h[0].lower() for h in headers}
        if status != 204 or data:
            self.send_header("Content-Type", ctype)
        elif "content-type" not in names:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data if cut is None else data[:cut])

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, ctx, tls=None):
        self.ctx = ctx
        self.tls = tls
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls is not None:
            # The handshake happens in the handler's thread, not here.
            sock = self.tls.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False)
        sock.settimeout(Handler.timeout)
        return sock, addr


class Context:
    pass


def load_json_file(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit("emulator: cannot read %s file %s: %s" % (what, path, e))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the bound port here (atomically)")
    ap.add_argument("--public-url", help="base URL in the catalog and links "
                    "(default: http(s)://HOST:PORT)")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--build-delay", type=float)
    ap.add_argument("--delete-delay", type=float)
    ap.add_argument("--reboot-delay", type=float)
    ap.add_argument("--rebuild-delay", type=float)
    ap.add_argument("--address-pool", default="10.80.0.0/24",
                    help="CIDR (hosts from .2) or comma-separated addresses")
    ap.add_argument("--network-name", default="private")
    ap.add_argument("--network-id", default=state.DEFAULT_NETWORK["id"],
                    help="uuid accepted in networks[].uuid")
    ap.add_argument("--flavors", help="JSON file: list of flavors")
    ap.add_argument("--images", help="JSON file: list of images")
    ap.add_argument("--users", help="JSON file: projects, users, application_credentials")
    ap.add_argument("--keypairs", help="comma-separated key names accepted (default: any)")
    ap.add_argument("--zones", default="nova", help="comma-separated availability zones")
    ap.add_argument("--console-line")
    ap.add_argument("--token-ttl", type=float)
    ap.add_argument("--config", help="JSON file of initial knobs (as /_emulator/config)")
    ap.add_argument("--boot-hook")
    ap.add_argument("--delete-hook")
    ap.add_argument("--reboot-hook")
    ap.add_argument("--hook-timeout", type=float, default=60.0)
    ap.add_argument("--no-cleanup-on-exit", action="store_true",
                    help="do not run the delete hook of live servers at exit")
    ap.add_argument("--verbose", "-v", action="store_true")
    a = ap.parse_args(argv)
    if bool(a.tls_cert) != bool(a.tls_key):
        ap.error("--tls-cert and --tls-key go together")

    knobs = {}
    if a.config:
        knobs.update(load_json_file(a.config, "config"))
    for k in ("build_delay", "delete_delay", "reboot_delay", "rebuild_delay",
              "console_line", "token_ttl"):
        v = getattr(a, k)
        if v is not None:
            knobs[k] = v
    try:
        for k, v in knobs.items():
            if k not in state.DEFAULT_CONFIG:
                raise ConfigError("unknown knob %r" % k)
            knobs[k] = Cloud._check_knob(k, v)
        cloud = Cloud(
            identities=load_json_file(a.users, "users") if a.users else None,
            flavors=load_json_file(a.flavors, "flavors") if a.flavors else None,
            images=load_json_file(a.images, "images") if a.images else None,
            address_pool=a.address_pool, network_name=a.network_name,
            network_id=a.network_id,
            hooks={"boot": a.boot_hook, "delete": a.delete_hook, "reboot": a.reboot_hook},
            hook_timeout=a.hook_timeout, zones=a.zones.split(","),
            keypairs=a.keypairs.split(",") if a.keypairs else None,
            verbose=a.verbose, config=knobs)
    except (ConfigError, ValueError) as e:
        sys.exit("emulator: %s" % e)

    tls = None
    if a.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            tls.load_cert_chain(a.tls_cert, a.tls_key)
        except (OSError, ssl.SSLError) as e:
            sys.exit("emulator: cannot load TLS certificate/key: %s" % e)
    ctx = Context()
    ctx.cloud = cloud
    ctx.verbose = a.verbose
    ctx.gate = Gate(cloud)
    httpd = EmulatorHTTPServer((a.host, a.port), Handler, ctx, tls)
    port = httpd.server_address[1]
    host = a.host if ":" not in a.host else "[%s]" % a.host
    base = a.public_url or "%s://%s:%d" % ("https" if tls else "http", host, port)
    ctx.api = Api(cloud, base)
    cloud.base_url = base
    ctx.control = Control(cloud, ctx.api)
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.port_file)
    sys.stderr.write("emulator: listening on %s\n" % base)
    sys.stderr.flush()

    def stop(signum, frame):
        threading.Thread(target=httpd.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
        if not a.no_cleanup_on_exit:
            cloud.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
