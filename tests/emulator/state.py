"""State of the emulated cloud: identities and tokens, flavors, images, the
address pool, servers and their asynchronous lifecycle (with the hooks), the
run-time knobs, and the request log and statistics.

Everything is guarded by Cloud.lock; lifecycle work runs in one thread per
operation and never holds the lock while it sleeps or runs a hook."""

import copy
import datetime
import hashlib
import ipaddress
import json
import os
import random
import re
import secrets
import signal
import subprocess
import tempfile
import threading
import time
import uuid

DOMAIN = {"id": "default", "name": "Default"}
ROLE_IDS = {"reader": "4d09c38f74d2475698b2fd6d82c522ec",
            "member": "7b84bce0a8d34605966289a484eeb98d",
            "admin": "0d4e5ffa3b8e4b4b8a2a4bb47d6c1f1e"}

# Identities of the captured real cloud (fixtures/openstack), plus an admin.
DEFAULT_IDENTITIES = {
    "projects": [
        {"id": "e861fe9e79eb4a6b9192e9b891ae0e52", "name": "demo"},
        {"id": "13b474ad0b084b35875b5131fa0b97b5", "name": "admin"},
    ],
    "users": [
        {"id": "6a7dacd4b27f4841be76492cc8107742", "name": "demo",
         "password": "demo", "project": "demo", "roles": ["reader", "member"]},
        {"id": "b3b5b6b1a6c44a0c9a7e1e5f0c8d2a11", "name": "admin",
         "password": "admin", "project": "admin",
         "roles": ["admin", "member", "reader"]},
    ],
    "application_credentials": [
        {"id": "e37530918dac483b8cd182fe3057d972", "name": "demo-appcred",
         "secret": "s3cr3t-appcred", "user": "demo"},
    ],
}

DEFAULT_FLAVORS = [
    {"id": "1", "name": "small", "vcpus": 1, "ram": 512, "disk": 1},
    {"id": "99", "name": "huge", "vcpus": 4096, "ram": 512, "disk": 1},
]

DEFAULT_IMAGES = [
    {"id": "012ff1c6-dc8d-4e82-8f73-8a2a63093040", "name": "tiny"},
    {"id": "7c1f2f0e-3a4b-4d2c-9e8f-5a6b7c8d9e0f", "name": "tiny-v2"},
]

DEFAULT_NETWORK = {"id": "4b6b1e2c-2f7e-4c5a-9d3b-8e1f0a2b3c4d",
                   "name": "private"}

# Nova's (vm_state, task_state) -> status map (nova/api/openstack/common.py),
# for the states the emulator produces.
STATE_MAP = {
    "building": {"default": "BUILD"},
    "active": {"default": "ACTIVE",
               "rebooting": "REBOOT", "reboot_pending": "REBOOT",
               "reboot_started": "REBOOT",
               "rebooting_hard": "HARD_REBOOT",
               "reboot_pending_hard": "HARD_REBOOT",
               "reboot_started_hard": "HARD_REBOOT",
               "rebuilding": "REBUILD",
               "rebuild_block_device_mapping": "REBUILD",
               "rebuild_spawning": "REBUILD"},
    "error": {"default": "ERROR",
              "rebuilding": "REBUILD",
              "rebuild_block_device_mapping": "REBUILD",
              "rebuild_spawning": "REBUILD"},
    "deleted": {"default": "DELETED"},
}

BUILD_TASKS = ["scheduling", "block_device_mapping", "networking", "spawning"]
REBOOT_TASKS = {"SOFT": ["rebooting", "reboot_pending", "reboot_started"],
                "HARD": ["rebooting_hard", "reboot_pending_hard",
                         "reboot_started_hard"]}
REBUILD_TASKS = ["rebuilding", "rebuild_block_device_mapping",
                 "rebuild_spawning"]

NOVALIDHOST = "No valid host was found. "

# Run-time knobs (POST /_emulator/config); values are type-checked against
# these defaults. None means "off" / "unlimited".
DEFAULT_CONFIG = {
    "build_delay": 0.5,         # seconds from create to ACTIVE (plus hook)
    "delete_delay": 0.2,        # seconds in task_state deleting
    "deleted_keep": None,       # seconds a deleted server stays listable by changes-since
                                # (null: until reset, as Nova keeps it until its rows are archived)
    "reboot_delay": 0.3,
    "rebuild_delay": 0.3,
    "build_hang_regex": None,   # matching names stay BUILD/scheduling
    "delete_hang_regex": None,  # matching names stay in deleting
    "reboot_hang_regex": None,  # ... stay REBOOT/HARD_REBOOT
    "rebuild_hang_regex": None,  # ... stay REBUILD
    "build_error_rate": 0.0,    # fraction of builds that end in ERROR
    "build_error_next": 0,      # the next N builds end in ERROR
    "build_error_regex": None,  # names matching end in ERROR
    "build_error_kind": "novalidhost",   # or "spawn"
    "build_error_message": "emulator: injected spawn failure",
    "delete_error_next": 0,     # the next N deletes end in ERROR
    "max_vcpus": 1024,          # flavors above this get NoValidHost
    "latency": 0.0,             # seconds added to every API call
    "latency_by_method": {},    # {"POST": 2.0}
    "latency_by_path": {},      # {"^POST /compute/v2.1/servers$": 30.0}: regex on "METHOD PATH"
    "flavor_faults": {},        # {flavor name or id: "novalidhost" | "spawn" | "quota"}
    "hidden_flavors": [],       # flavor ids that act as deleted (404 on show, 400 on create)
    "outage_seconds": 0.0,      # setting it starts a window: matching calls answer outage_status
    "outage_path": None,        # ... regex on the path (null: every API call), e.g. "^/v3"
    "outage_status": 503,
    "workers": 0,               # >0: API calls served N at a time
    "error_rate": 0.0,          # fraction of API calls answered 5xx
    "error_next": 0,            # the next N API calls answered 5xx
    "error_codes": [500, 502, 503],
    "ratelimit_rate": 0.0,      # fraction answered 429
    "ratelimit_next": 0,
    "retry_after": 1,           # Retry-After of the 429s (integer seconds)
    "drop_rate": 0.0,           # fraction of connections closed unanswered
    "drop_next": 0,
    "drop_after": False,        # True: process the request, drop the answer
    "drop_mode": "close",       # close (FIN), reset (RST) or partial
    "drop_reset": False,        # old spelling of drop_mode "reset"
    "fault_method": None,       # restrict 5xx/429/drop to this method
    "fault_path": None,         # ... and to paths matching this regex
    "seed": None,               # seed the fault dice
    "quota_instances": None,
    "quota_cores": None,
    "quota_ram": None,
    "quota_status": 403,        # 403 (Zed) or 413 (old Nova overLimit)
    "token_ttl": 86400.0,         # lifetime of newly issued tokens
    "console_line": "{name} login: emulator ready at {address}",
    "address_pool": None,       # CIDR or list; replaces the pool (for new builds)
}


def now():
    return time.time()


def iso(t):
    """Nova/Glance timestamp: 2026-11-23T17:01:11Z."""
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def iso_usec(t):
    """launched_at/terminated_at: 2026-11-23T17:01:14.000000 (no zone)."""
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.000000")


def iso_token(t):
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.000000Z")


def parse_isotime(s):
    """ISO 8601 as Nova accepts it in changes-since; ValueError if bad."""
    s = s.strip().replace(" ", "+")
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    if re.fullmatch(r"[0-9]{4}(-[0-9]{2})?", s):      # iso8601 takes these too
        s += "-01" if len(s) == 7 else "-01-01"
    d = datetime.datetime.fromisoformat(s)
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d.timestamp()


def parse_pool(spec):
    """'10.80.0.0/24' (hosts minus the .1 gateway) or 'a,b,c' or a list."""
    if isinstance(spec, list):
        items = spec
    elif "/" in spec:
        net = ipaddress.ip_network(spec, strict=False)
        hosts = [str(h) for h in net.hosts()]
        return hosts[1:] if len(hosts) > 2 else hosts
    else:
        items = [s for s in spec.split(",") if s.strip()]
    out = []
    for a in items:
        out.append(str(ipaddress.ip_address(a.strip())))
    return out


class ConfigError(ValueError):
    pass


class Server:
    """One instance. Fields mirror what Nova keeps in its instances table."""

    def __init__(self, **kw):
        self.id = str(uuid.uuid4())
        self.name = ""
        self.project_id = ""
        self.user_id = ""
        self.flavor = {}
        self.image_id = ""
        self.metadata = {}
        self.tags = []
        self.key_name = None
        self.user_data = None
        self.config_drive = False
        self.az = None              # requested availability zone
        self.security_groups = ["default"]
        self.networks = "auto"      # "auto", "none" or a list of requests
        self.fixed_ips = []         # addresses reserved for it
        self.show_addresses = False
        self.vm_state = "building"
        self.task_state = "scheduling"
        self.power_state = 0
        self.host = None
        self.created = now()
        self.updated = self.created
        self.launched_at = None
        self.terminated_at = None
        self.fault = None
        self.locked = False
        self.locked_reason = None
        self.description = None
        self.admin_pass = secrets.token_urlsafe(9)[:12]
        self.hostname = ""
        self.hook_started = False   # boot hook ran: delete hook must run
        self.console = []
        self.hooks = []             # [{event, rc, seconds}]
        self.wake = threading.Event()   # set to cancel the running operation
        self.op_lock = threading.Lock()  # held while a hook runs
        self.macs = []
        self.__dict__.update(kw)

    @property
    def status(self):
        m = STATE_MAP.get(self.vm_state, {})
        return m.get(self.task_state or "default", m.get("default", "UNKNOWN"))

    @property
    def deleted(self):
        return self.vm_state == "deleted"

    def touch(self):
        self.updated = now()

    def set_error(self, message, code=500, clear_host=False):
        self.vm_state = "error"
        self.task_state = None
        self.power_state = 0 if clear_host else self.power_state
        self.fault = {"code": code, "created": iso(now()), "message": message}
        if clear_host:
            self.host = None
            self.show_addresses = False
        self.touch()


class Cloud:
    def __init__(self, identities=None, flavors=None, images=None,
                 address_pool="10.80.0.0/24", network_name="private",
                 network_id=DEFAULT_NETWORK["id"],
                 hooks=None, hook_timeout=60.0, zones=("nova",),
                 keypairs=None, verbose=False, config=None):
        self.lock = threading.RLock()
        self.cfg_changed = threading.Condition(self.lock)
        self.verbose = verbose
        self.hooks = hooks or {}
        self.hook_timeout = hook_timeout
        self.zones = list(zones)
        self.keypairs = keypairs          # None: any key_name accepted
        self.host = "emu-compute-1"
        self.network = {"id": network_id, "name": network_name}
        self.closing = False
        self.base_url = ""                # set once the port is known
        self._load_identities(identities or DEFAULT_IDENTITIES)
        self.flavors = [self._flavor(f) for f in (flavors or DEFAULT_FLAVORS)]
        self.images = [self._image(i) for i in (images or DEFAULT_IMAGES)]
        self.defaults = copy.deepcopy(DEFAULT_CONFIG)
        if config:
            self.defaults.update(config)
        self.default_pool = parse_pool(address_pool)
        self.tokens = {}
        self.servers = {}                 # id -> Server, deleted ones too
        self.threads = set()
        self.log = []
        self.log_seq = 0
        self.reset_state(run_hooks=False)

    # ---- identities -------------------------------------------------
    def _load_identities(self, ident):
        self.projects = {}
        for p in ident.get("projects", []):
            p = dict(p)
            p.setdefault("id", uuid.uuid4().hex)
            self.projects[p["name"]] = p
        self.users = {}
        for u in ident.get("users", []):
            u = dict(u)
            u.setdefault("id", uuid.uuid4().hex)
            if u.get("project") not in self.projects:
                raise ConfigError("user %s: unknown project %r" % (u.get("name"), u.get("project")))
            u.setdefault("roles", ["member", "reader"])
            self.users[u["name"]] = u
        self.appcreds = []
        for a in ident.get("application_credentials", []):
            a = dict(a)
            a.setdefault("id", uuid.uuid4().hex)
            if a.get("user") not in self.users:
                raise ConfigError("application credential %s: unknown user %r" % (a.get("name"), a.get("user")))
            a.setdefault("project", self.users[a["user"]]["project"])
            a.setdefault("roles", list(self.users[a["user"]]["roles"]))
            self.appcreds.append(a)

    def find_user(self, name=None, uid=None):
        for u in self.users.values():
            if (uid and u["id"] == uid) or (name and not uid and u["name"] == name):
                return u
        return None

    def find_project(self, name=None, pid=None):
        for p in self.projects.values():
            if (pid and p["id"] == pid) or (name and not pid and p["name"] == name):
                return p
        return None

    def issue_token(self, user, project, methods, appcred=None):
        with self.lock:
            tok = "gAAAAAB" + secrets.token_urlsafe(132)
            t = now()
            roles = appcred["roles"] if appcred else user["roles"]
            self.tokens[tok] = {
                "user": user, "project": project, "methods": methods,
                "appcred": appcred, "issued": t,
                "expires": t + float(self.cfg["token_ttl"]),
                "audit_id": secrets.token_urlsafe(16)[:22],
                "roles": roles, "admin": "admin" in roles}
            return tok, self.tokens[tok]

    def check_token(self, tok):
        """The token's record, or None when unknown or expired."""
        if not tok:
            return None
        with self.lock:
            rec = self.tokens.get(tok)
            if rec is None or rec["expires"] <= now():
                return None
            return rec

    def expire_tokens(self):
        with self.lock:
            t = now()
            for rec in self.tokens.values():
                rec["expires"] = min(rec["expires"], t - 1)
            return len(self.tokens)

    # ---- flavors, images --------------------------------------------
    @staticmethod
    def _flavor(f):
        f = dict(f)
        for k in ("id", "name", "vcpus", "ram", "disk"):
            if k not in f:
                raise ConfigError("flavor %r lacks %r" % (f, k))
        f["id"] = str(f["id"])
        f.setdefault("ephemeral", 0)
        f.setdefault("swap", 0)
        f.setdefault("description", None)
        f.setdefault("extra_specs", {})
        return f

    @staticmethod
    def _image(i):
        i = dict(i)
        if "name" not in i:
            raise ConfigError("image %r lacks 'name'" % (i,))
        i.setdefault("id", str(uuid.uuid5(uuid.NAMESPACE_URL, "image:" + i["name"])))
        i.setdefault("status", "active")
        i.setdefault("visibility", "public")
        i.setdefault("disk_format", "raw")
        i.setdefault("container_format", "bare")
        i.setdefault("size", 1024)
        i.setdefault("min_ram", 0)
        i.setdefault("min_disk", 0)
        i.setdefault("created", 1795453247)
        i.setdefault("tags", [])
        i.setdefault("owner", "13b474ad0b084b35875b5131fa0b97b5")
        return i

    def flavor(self, ref):
        ref = str(ref).rstrip("/").rsplit("/", 1)[-1]
        for f in self.visible_flavors():
            if f["id"] == ref:
                return f
        return None

    def visible_flavors(self):
        return [f for f in self.flavors if f["id"] not in self.cfg["hidden_flavors"]]

    def image(self, ref):
        ref = str(ref).rstrip("/").rsplit("/", 1)[-1]
        for i in self.images:
            if i["id"] == ref:
                return i
        return None

    # ---- knobs ------------------------------------------------------
    def set_config(self, changes):
        """Merge changes into the knobs; ConfigError names a bad key/value."""
        if not isinstance(changes, dict):
            raise ConfigError("the body must be a JSON object of knobs")
        with self.lock:
            new = dict(self.cfg)
            for k, v in changes.items():
                if k not in DEFAULT_CONFIG:
                    raise ConfigError("unknown knob %r" % k)
                new[k] = self._check_knob(k, v)
            if "address_pool" in changes:
                self.pool = (parse_pool(new["address_pool"])
                             if new["address_pool"] is not None
                             else list(self.default_pool))
            if "seed" in changes:
                self.rng = random.Random(new["seed"])
            if "outage_seconds" in changes:
                self.outage_until = now() + new["outage_seconds"]
            self.cfg = new
            self.cfg_changed.notify_all()
            return dict(self.cfg)

    @staticmethod
    def _check_knob(k, v):
        d = DEFAULT_CONFIG[k]
        if k.endswith("_regex") or k in ("fault_path", "outage_path"):
            if v is not None:
                if not isinstance(v, str):
                    raise ConfigError("%s must be a regex string or null" % k)
                try:
                    re.compile(v)
                except re.error as e:
                    raise ConfigError("%s: bad regex: %s" % (k, e))
            return v
        if k in ("fault_method",):
            if v is not None and not isinstance(v, str):
                raise ConfigError("%s must be a string or null" % k)
            return v.upper() if v else v
        if k == "address_pool":
            if v is None:
                return v
            try:
                parse_pool(v)
            except (ValueError, TypeError, AttributeError) as e:
                raise ConfigError("address_pool: %s" % e)
            return v
        if k == "deleted_keep":
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
                raise ConfigError("deleted_keep must be a non-negative number of seconds or null")
            return v
        if k.startswith("quota_") and k != "quota_status" or k == "seed":
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ConfigError("%s must be a non-negative integer or null" % k)
            return v
        if k == "quota_status":
            if v not in (403, 413):
                raise ConfigError("quota_status must be 403 or 413")
            return v
        if k == "drop_mode":
            if v not in ("close", "reset", "partial"):
                raise ConfigError("drop_mode must be 'close', 'reset' or 'partial'")
            return v
        if k == "build_error_kind":
            if v not in ("novalidhost", "spawn"):
                raise ConfigError("build_error_kind must be 'novalidhost' or 'spawn'")
            return v
        if k == "error_codes":
            if (not isinstance(v, list) or not v or
                    any(c not in (500, 502, 503, 504) for c in v)):
                raise ConfigError("error_codes must be a list of 500/502/503/504")
            return v
        if k == "latency_by_path":
            if not isinstance(v, dict) or any(
                    not isinstance(x, (int, float)) or isinstance(x, bool) or x < 0 for x in v.values()):
                raise ConfigError("latency_by_path must map regexes to seconds")
            for rx in v:
                try:
                    re.compile(rx)
                except re.error as e:
                    raise ConfigError("latency_by_path: bad regex %r: %s" % (rx, e))
            return {rx: float(x) for rx, x in v.items()}
        if k == "hidden_flavors":
            if not isinstance(v, list) or any(not isinstance(x, str) for x in v):
                raise ConfigError("hidden_flavors must be a list of flavor ids")
            return list(v)
        if k == "flavor_faults":
            if not isinstance(v, dict) or any(
                    x not in ("novalidhost", "spawn", "quota") for x in v.values()):
                raise ConfigError("flavor_faults must map flavors to novalidhost, spawn or quota")
            return dict(v)
        if k == "outage_status":
            if v not in (500, 502, 503, 504):
                raise ConfigError("outage_status must be 500, 502, 503 or 504")
            return v
        if k == "latency_by_method":
            if not isinstance(v, dict) or any(
                    not isinstance(x, (int, float)) or x < 0 for x in v.values()):
                raise ConfigError("latency_by_method must map methods to seconds")
            return {m.upper(): float(x) for m, x in v.items()}
        if isinstance(d, bool):
            if not isinstance(v, bool):
                raise ConfigError("%s must be true or false" % k)
            return v
        if isinstance(d, str):
            if not isinstance(v, str):
                raise ConfigError("%s must be a string" % k)
            return v
        if isinstance(d, (int, float)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ConfigError("%s must be a non-negative number" % k)
            if k.endswith("_rate") and v > 1:
                raise ConfigError("%s must be between 0 and 1" % k)
            if isinstance(d, int) and not k.endswith("_delay"):
                if int(v) != v:
                    raise ConfigError("%s must be an integer" % k)
                return int(v)
            return v
        return v

    def in_outage(self, path):
        """Whether an outage window (outage_seconds) covers PATH now."""
        if now() >= self.outage_until:
            return False
        rx = self.cfg["outage_path"]
        return not rx or re.search(rx, path) is not None

    def path_latency(self, method, path):
        """Seconds latency_by_path adds to METHOD PATH (the first match)."""
        key = "%s %s" % (method, path)
        for rx, sec in self.cfg["latency_by_path"].items():
            if re.search(rx, key):
                return sec
        return 0.0

    def roll(self, rate_key, next_key):
        """True when the fault with this rate/next-N pair fires now."""
        if self.cfg[next_key] > 0:
            self.cfg[next_key] -= 1
            return True
        rate = self.cfg[rate_key]
        return rate > 0 and self.rng.random() < rate

    # ---- reset ------------------------------------------------------
    def reset_state(self, run_hooks=True):
        """Forget servers, knobs, log and stats (tokens stay valid)."""
        with self.lock:
            doomed = [s for s in self.servers.values()
                      if not s.deleted and s.hook_started]
            for s in self.servers.values():
                s.wake.set()
            self.servers = {}
            self.cfg = copy.deepcopy(self.defaults)
            self.pool = (parse_pool(self.cfg["address_pool"])
                         if self.cfg["address_pool"] else list(self.default_pool))
            self.used_addresses = set()
            self.rng = random.Random(self.cfg["seed"])
            self.outage_until = now() + self.cfg["outage_seconds"]
            self.log = []
            self.stats = {"total": 0, "in_flight": 0, "max_in_flight": 0,
                          "by_method": {}, "by_route": {}, "by_status": {},
                          "bytes_by_route": {},
                          "in_flight_by_method": {},
                          "max_in_flight_by_method": {}, "faults": {}}
            self.cfg_changed.notify_all()
        if run_hooks:
            # Wait, so that a test's next servers never meet the old ones'
            # namespaces (their addresses are free again).
            ts = [self._spawn(self._cleanup_one, s) for s in doomed]
            for t in ts:
                t.join(self.hook_timeout + 5)

    def _cleanup_one(self, srv):
        with srv.op_lock:
            self.run_hook("delete", srv)

    def shutdown(self, timeout=30.0):
        """Run the delete hook of every server still booted (emulator exit)."""
        with self.lock:
            self.closing = True
            doomed = [s for s in self.servers.values()
                      if not s.deleted and s.hook_started]
            for s in self.servers.values():
                s.wake.set()
        ts = [self._spawn(self._cleanup_one, s) for s in doomed]
        end = now() + timeout
        for t in ts:
            t.join(max(0.0, end - now()))

    # ---- request log and statistics ---------------------------------
    def log_request(self, entry):
        with self.lock:
            self.log_seq += 1
            entry["seq"] = self.log_seq
            self.log.append(entry)
            if len(self.log) > 10000:
                del self.log[:1000]
            st = self.stats
            st["total"] += 1
            m = entry["method"]
            st["by_method"][m] = st["by_method"].get(m, 0) + 1
            r = "%s %s" % (m, entry["route"])
            st["by_route"][r] = st["by_route"].get(r, 0) + 1
            st["bytes_by_route"][r] = st["bytes_by_route"].get(r, 0) + entry.get("bytes", 0)
            s = str(entry["status"])
            st["by_status"][s] = st["by_status"].get(s, 0) + 1
            if entry.get("fault"):
                f = entry["fault"]
                st["faults"][f] = st["faults"].get(f, 0) + 1

    def enter(self, method):
        with self.lock:
            st = self.stats
            st["in_flight"] += 1
            st["max_in_flight"] = max(st["max_in_flight"], st["in_flight"])
            n = st["in_flight_by_method"].get(method, 0) + 1
            st["in_flight_by_method"][method] = n
            st["max_in_flight_by_method"][method] = max(
                st["max_in_flight_by_method"].get(method, 0), n)

    def leave(self, method):
        with self.lock:
            self.stats["in_flight"] -= 1
            self.stats["in_flight_by_method"][method] -= 1

    # ---- addresses --------------------------------------------------
    def _allocate(self, srv):
        """Reserve addresses for srv's network requests; False if exhausted."""
        reqs = srv.networks
        if reqs == "none":
            return True
        if reqs == "auto":
            reqs = [{"uuid": self.network["id"]}]
        for r in reqs:
            want = r.get("fixed_ip")
            if want:
                if want in self.used_addresses:
                    return False
                addr = want
            else:
                addr = next((a for a in self.pool if a not in self.used_addresses), None)
                if addr is None:
                    return False
            self.used_addresses.add(addr)
            srv.fixed_ips.append(addr)
            srv.macs.append("fa:16:3e:%02x:%02x:%02x" % tuple(os.urandom(3)))
        return True

    def _release(self, srv):
        for a in srv.fixed_ips:
            self.used_addresses.discard(a)
        srv.fixed_ips = []
        srv.show_addresses = False

    def purge_deleted(self):
        """Forget deleted servers older than deleted_keep (as archiving
        Nova's deleted rows does); the caller holds the lock."""
        keep = self.cfg["deleted_keep"]
        if keep is None:
            return
        t = now() - keep
        for sid in [sid for sid, s in self.servers.items()
                    if s.deleted and (s.terminated_at or s.updated) < t]:
            del self.servers[sid]

    def quota_usage(self, project_id):
        live = [s for s in self.servers.values()
                if s.project_id == project_id and not s.deleted]
        return {"instances": len(live),
                "cores": sum(s.flavor["vcpus"] for s in live),
                "ram": sum(s.flavor["ram"] for s in live)}

    # ---- lifecycle --------------------------------------------------
    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        return t

    def _wait(self, ev, seconds):
        """Sleep unless the operation is cancelled; True if still wanted."""
        return not ev.wait(max(0.0, seconds))

    def _hang(self, srv, ev, key):
        """Block while srv's name matches the knob `key` (and not cancelled)."""
        with self.lock:
            while not ev.is_set():
                rx = self.cfg[key]
                if not rx or not re.search(rx, srv.name):
                    return True
                self.cfg_changed.wait(0.5)
            return False

    def start_build(self, srv):
        with self.lock:
            srv.wake = threading.Event()
            self.servers[srv.id] = srv
            self.add_console(srv, "[    0.000000] emulator: instance %s (%s) created"
                             % (srv.name, srv.id))
        self._spawn(self._build, srv, srv.wake)

    def _build_fault(self, srv):
        """Which failure this build meets: None, 'novalidhost' or 'spawn'."""
        c = self.cfg
        if srv.flavor["vcpus"] > c["max_vcpus"]:
            return "novalidhost"
        ff = c["flavor_faults"].get(srv.flavor["name"]) or c["flavor_faults"].get(srv.flavor["id"])
        if ff in ("novalidhost", "spawn"):
            return ff
        if c["build_error_regex"] and re.search(c["build_error_regex"], srv.name):
            return c["build_error_kind"]
        if self.roll("build_error_rate", "build_error_next"):
            return c["build_error_kind"]
        return None

    def _build(self, srv, ev):
        step = self.cfg["build_delay"] / len(BUILD_TASKS)
        with self.lock:
            fault = self._build_fault(srv)
        for task in BUILD_TASKS:
            with self.lock:
                if ev.is_set():
                    return
                srv.task_state = task
                srv.touch()
                if task == "block_device_mapping":
                    if fault == "novalidhost":
                        srv.set_error(NOVALIDHOST, clear_host=True)
                        return
                    srv.host = self.host
                    srv.hostname = srv.hostname or srv.name
                elif task == "networking":
                    if not self._allocate(srv):
                        self._release(srv)
                        srv.set_error("Build of instance %s aborted: Failed to "
                                      "allocate the network(s), not rescheduling."
                                      % srv.id, clear_host=True)
                        return
                    srv.show_addresses = True
            if not self._wait(ev, step):
                return
            if task == "scheduling" and not self._hang(srv, ev, "build_hang_regex"):
                return
        rc = 0
        # The hook lock first: a delete that comes now must find either no
        # hook started (nothing to undo) or wait for the boot hook to end.
        with srv.op_lock:
            with self.lock:
                if ev.is_set() or self.closing:
                    return
                if fault == "spawn":
                    srv.set_error("Build of instance %s aborted: %s"
                                  % (srv.id, self.cfg["build_error_message"]),
                                  clear_host=True)
                    return
                want_hook = bool(self.hooks.get("boot"))
                srv.hook_started = want_hook
            if want_hook:
                rc = self.run_hook("create", srv)
        with self.lock:
            if ev.is_set():
                return
            if rc != 0:
                srv.set_error("Build of instance %s aborted: boot hook failed "
                              "with exit status %d" % (srv.id, rc), clear_host=True)
                return
            srv.vm_state = "active"
            srv.task_state = None
            srv.power_state = 1
            srv.launched_at = now()
            srv.touch()
            self._boot_console(srv)

    def _boot_console(self, srv):
        addr = srv.fixed_ips[0] if srv.fixed_ips else ""
        self.add_console(srv, "[    1.000000] emulator: %s booted image %s"
                         % (srv.name, srv.image_id))
        line = self.cfg["console_line"]
        try:
            line = line.format(name=srv.name, id=srv.id, address=addr)
        except (KeyError, IndexError, ValueError):
            pass
        self.add_console(srv, line)

    def add_console(self, srv, line):
        srv.console.append(line)
        if len(srv.console) > 2000:
            del srv.console[:500]

    def start_delete(self, srv):
        """Caller holds the lock and checked the state (delete allowed)."""
        if srv.task_state == "deleting":
            return
        srv.wake.set()                    # cancel build/reboot/rebuild
        self.cfg_changed.notify_all()     # ... even a hung one
        srv.wake = threading.Event()
        srv.task_state = "deleting"
        srv.touch()
        self._spawn(self._delete, srv, srv.wake)

    def _delete(self, srv, ev):
        if not self._wait(ev, self.cfg["delete_delay"]):
            return
        if not self._hang(srv, ev, "delete_hang_regex"):
            return
        rc = 0
        with srv.op_lock:                 # a running hook finishes first
            with self.lock:
                if ev.is_set():
                    return
                inject = self.cfg["delete_error_next"] > 0
                if inject:
                    self.cfg["delete_error_next"] -= 1
                hook = srv.hook_started and not inject
            if hook:
                rc = self.run_hook("delete", srv)
        with self.lock:
            if ev.is_set():
                return
            if inject or rc != 0:
                msg = ("emulator: injected delete failure" if inject else
                       "delete hook failed with exit status %d" % rc)
                srv.set_error(msg)
                return
            srv.hook_started = False
            self._release(srv)
            srv.vm_state = "deleted"
            srv.task_state = None
            srv.power_state = 0
            srv.terminated_at = now()
            srv.touch()

    def start_reboot(self, srv, kind):
        srv.wake.set()
        srv.wake = threading.Event()
        srv.task_state = REBOOT_TASKS[kind][0]
        srv.touch()
        self._spawn(self._reboot, srv, srv.wake, kind)

    def _reboot(self, srv, ev, kind):
        tasks = REBOOT_TASKS[kind]
        step = self.cfg["reboot_delay"] / len(tasks)
        for task in tasks:
            with self.lock:
                if ev.is_set():
                    return
                srv.task_state = task
                srv.touch()
            if not self._wait(ev, step):
                return
        if not self._hang(srv, ev, "reboot_hang_regex"):
            return
        self._finish_op(srv, ev, "reboot", kind)

    def start_rebuild(self, srv, image, changes):
        srv.wake.set()
        srv.wake = threading.Event()
        srv.image_id = image["id"]
        for k, v in changes.items():
            setattr(srv, k, v)
        srv.task_state = REBUILD_TASKS[0]
        srv.fault = None if srv.vm_state != "error" else srv.fault
        srv.touch()
        self._spawn(self._rebuild, srv, srv.wake)

    def _rebuild(self, srv, ev):
        step = self.cfg["rebuild_delay"] / len(REBUILD_TASKS)
        for task in REBUILD_TASKS:
            with self.lock:
                if ev.is_set():
                    return
                srv.task_state = task
                srv.touch()
            if not self._wait(ev, step):
                return
        if not self._hang(srv, ev, "rebuild_hang_regex"):
            return
        self._finish_op(srv, ev, "rebuild", None)

    def _finish_op(self, srv, ev, event, kind):
        with self.lock:
            want_hook = bool(self.hooks.get("reboot")) and srv.hook_started
        rc = 0
        if want_hook:
            with srv.op_lock:
                if ev.is_set():
                    return
                rc = self.run_hook(event, srv, kind)
        with self.lock:
            if ev.is_set():
                return
            if rc != 0:
                srv.set_error("%s hook failed with exit status %d" % (event, rc))
                return
            srv.vm_state = "active"
            srv.task_state = None
            srv.power_state = 1
            srv.fault = None
            if event == "rebuild":
                srv.launched_at = now()
            srv.touch()
            self._boot_console(srv)

    # ---- hooks ------------------------------------------------------
    def run_hook(self, event, srv, reboot_type=None):
        """Run the hook for event (create/delete/reboot/rebuild); its exit
        status (0 if no hook is configured). Caller holds srv.op_lock."""
        key = {"create": "boot", "delete": "delete"}.get(event, "reboot")
        cmd = self.hooks.get(key)
        if not cmd:
            return 0
        with self.lock:
            img = self.image(srv.image_id)
            env = dict(os.environ,
                       EMU_EVENT=event,
                       EMU_SERVER_ID=srv.id,
                       EMU_SERVER_NAME=srv.name,
                       EMU_ADDRESS=srv.fixed_ips[0] if srv.fixed_ips else "",
                       EMU_ADDRESSES=" ".join(srv.fixed_ips),
                       EMU_IMAGE=srv.image_id,
                       EMU_IMAGE_NAME=img["name"] if img else "",
                       EMU_FLAVOR=srv.flavor.get("name", ""),
                       EMU_METADATA=json.dumps(srv.metadata, sort_keys=True),
                       EMU_KEY_NAME=srv.key_name or "",
                       EMU_USER_DATA=srv.user_data or "",
                       EMU_PROJECT_ID=srv.project_id,
                       EMU_URL=self.base_url,
                       EMU_REBOOT_TYPE=reboot_type or "")
        start = now()
        # Output goes to an unlinked file, not a pipe: daemons the hook leaves
        # behind (an instance's holder, slurmd) may keep it open for ever, and
        # we wait for the hook itself only.
        with tempfile.TemporaryFile() as log:
            try:
                p = subprocess.Popen(cmd, shell=True, env=env, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
            except OSError as e:
                out, rc = "cannot run hook: %s" % e, 127
            else:
                try:
                    rc = p.wait(timeout=self.hook_timeout)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait()
                    rc = 124
                if rc < 0:
                    rc = 128 - rc
                log.seek(0)
                out = log.read(1 << 20).decode("utf-8", "replace")
        with self.lock:
            for line in out.splitlines():
                self.add_console(srv, line)
            srv.hooks.append({"event": event, "rc": rc,
                              "seconds": round(now() - start, 3)})
        if self.verbose or rc != 0:
            import sys
            sys.stderr.write("emulator: %s hook for %s (%s) exited %d%s\n" % (
                event, srv.name, srv.id, rc,
                (": " + out.strip().splitlines()[-1][:200]) if out.strip() else ""))
        return rc

    # ---- views for the control endpoint -----------------------------
    def server_summary(self, s):
        return {"id": s.id, "name": s.name, "status": s.status,
                "vm_state": s.vm_state, "task_state": s.task_state,
                "project_id": s.project_id, "image": s.image_id,
                "flavor": s.flavor["id"], "addresses": list(s.fixed_ips),
                "metadata": dict(s.metadata), "tags": list(s.tags),
                "locked": s.locked, "fault": s.fault,
                "hook_started": s.hook_started, "hooks": list(s.hooks),
                "created": iso(s.created), "updated": iso(s.updated)}


def host_id(project_id, host):
    """Nova's hostId: sha224(project_id + host), '' without a host."""
    if not host:
        return ""
    return hashlib.sha224((project_id + host).encode()).hexdigest()
