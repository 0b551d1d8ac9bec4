"""A real OpenStack Zed control plane (Debian 12 packages) on 127.0.0.1 for tests.

MariaDB, RabbitMQ, Keystone, Placement, Glance, Neutron (API only) and Nova
(api, conductor, scheduler, compute with fake_driver.RealcloudFakeDriver),
started from a fresh state dir. Every process runs in its own session; stop()
signals exactly those process groups (TERM, then KILL), never by name.

    cp = ControlPlane(state_dir, fail_regex="^rc-fail", spawn_delay=0)
    cp.start()          # raises ControlPlaneError naming the step and its log
    ...                 # cp.clouds_yaml: clouds realcloud-demo, realcloud-appcred, realcloud-admin
    cp.stop()           # also run atexit and on SIGINT/SIGTERM via install_signal_stop()

Run directly for a manual session: python3 controlplane.py up STATE / down STATE.
"""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
PORTS = [13306, 4369, 5672, 25672, 5000, 8778, 9292, 9696, 8774]
PACKAGES = ["python3-nova", "python3-keystone", "python3-placement", "python3-glance",
            "python3-neutron", "python3-openstackclient", "rabbitmq-server",
            "mariadb-server", "uwsgi-core", "uwsgi-plugin-python3"]
# reverse start order on stop: compute first, database last
ORDER = ["nova-compute", "nova-api-os-compute", "nova-scheduler", "nova-conductor",
         "neutron-server", "glance-api", "placement", "keystone", "rabbitmq", "epmd",
         "mysqld"]
KEYSTONE = "http://127.0.0.1:5000/v3"
APPCRED_SECRET = "s3cr3t-appcred"
DB = "mysql+pymysql://os:os@127.0.0.1:13306/"


class ControlPlaneError(Exception):
    pass


def missing_packages():
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n"] + PACKAGES,
                         capture_output=True, text=True).stdout
    ok = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [p for p in PACKAGES if p not in ok]


def port_busy(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http(method, url, body=None, token=None, headers=None, raw=None, timeout=30):
    """One request; returns (status, headers, parsed json or None)."""
    h = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if raw is not None:
        data = raw
        h["Content-Type"] = "application/octet-stream"
    if token:
        h["X-Auth-Token"] = token
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            status, hdrs = r.status, r.headers
    except urllib.error.HTTPError as e:
        text, status, hdrs = e.read(), e.code, e.headers
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        doc = None
    return status, hdrs, doc


def token(user, password, project):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": password, "domain": {"id": "default"}}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    st, hdrs, doc = http("POST", KEYSTONE + "/auth/tokens", body)
    if st != 201:
        raise ControlPlaneError("keystone token for %s: HTTP %d %s" % (user, st, doc))
    return hdrs["X-Subject-Token"], doc["token"]


class ControlPlane:
    def __init__(self, state, fail_regex="^rc-fail", spawn_delay=0.0, reboot_delay=0.0, fake_env=None):
        """fake_env: more of fake_driver.py's environment (REALCLOUD_FAKE_KNOBS,
        REALCLOUD_FAKE_HOOK)."""
        self.state = os.path.abspath(state)
        self.env = dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin",
                        REALCLOUD_FAKE_FAIL_REGEX=fail_regex,
                        REALCLOUD_FAKE_SPAWN_DELAY=str(spawn_delay),
                        REALCLOUD_FAKE_REBOOT_DELAY=str(reboot_delay), **(fake_env or {}))
        self.procs = {}
        self.timings = []
        self.t0 = None
        self.clouds_yaml = os.path.join(self.state, "clouds.yaml")
        self.admin_token = None

    # -- processes -----------------------------------------------------
    def path(self, *p):
        return os.path.join(self.state, *p)

    def log(self, name):
        return self.path("log", name + ".out")

    def run(self, name, argv, env=None):
        """A short command; its output goes to log/NAME.out; raises on failure."""
        with open(self.log(name), "ab") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env or self.env,
                                 start_new_session=True)
            self.procs["run:%s:%d" % (name, p.pid)] = p
            rc = p.wait()
            self.procs.pop("run:%s:%d" % (name, p.pid), None)
        if rc != 0:
            raise ControlPlaneError("%s exited %d: see %s" % (name, rc, self.log(name)))

    def start_service(self, name, argv, env=None):
        out = open(self.log(name), "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env or self.env,
                             start_new_session=True)
        out.close()
        self.procs[name] = p
        with open(self.path("run", name + ".pid"), "w") as f:
            f.write("%d\n" % p.pid)
        return p

    def signal_service(self, name, sig):
        """Send sig to a service's whole process group (e.g. SIGSTOP keystone)."""
        os.killpg(self.procs[name].pid, sig)

    def stop_service(self, name, grace=10.0):
        p = self.procs.pop(name, None)
        if p is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, signal.SIGCONT)
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                break
            end = time.monotonic() + wait
            while time.monotonic() < end:
                p.poll()  # reap the leader, else its group stays alive
                if not self._group_alive(p.pid):
                    break
                time.sleep(0.1)
            else:
                continue
            break
        p.poll()
        try:
            os.unlink(self.path("run", name + ".pid"))
        except FileNotFoundError:
            pass

    @staticmethod
    def _group_alive(pgid):
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False

    def stop(self):
        for name in ORDER:
            self.stop_service(name)
        for name in list(self.procs):
            self.stop_service(name, grace=2.0)

    def wait_http(self, url, seconds, name):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            p = self.procs.get(name)
            if p is not None and p.poll() is not None:
                raise ControlPlaneError("%s exited %s: see %s" % (name, p.returncode, self.log(name)))
            try:
                urllib.request.urlopen(url, timeout=2).read()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.2)
        raise ControlPlaneError("%s: no answer at %s in %d s: see %s" % (name, url, seconds, self.log(name)))

    def wait_port(self, port, seconds, name):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if port_busy(port):
                return
            p = self.procs.get(name)
            if p is not None and p.poll() is not None:
                raise ControlPlaneError("%s exited: see %s" % (name, self.log(name)))
            time.sleep(0.2)
        raise ControlPlaneError("%s: port %d not open in %d s" % (name, port, seconds))

    def mark(self, what):
        self.timings.append((what, time.monotonic() - self.t0))

    # -- bring-up ------------------------------------------------------
    def start(self):
        self.t0 = time.monotonic()
        miss = missing_packages()
        if miss:
            raise ControlPlaneError("packages missing (run tests/realcloud/install.sh): " + " ".join(miss))
        busy = [p for p in PORTS if port_busy(p)]
        if busy:
            raise ControlPlaneError("127.0.0.1 ports already in use (another control plane up?): %s" % busy)
        shutil.rmtree(self.state, ignore_errors=True)
        for d in ["etc", "log", "run", "keystone", "mysql", "rabbitmq/mnesia", "rabbitmq/log",
                  "rabbitmq/home", "nova/lock", "nova/instances", "neutron/lock",
                  "glance/images", "glance/staging", "glance/tasks", "glance/lock"]:
            os.makedirs(self.path(d), exist_ok=True)
        for f in os.listdir(os.path.join(HERE, "etc")):
            with open(os.path.join(HERE, "etc", f)) as src:
                text = src.read()
            text = (text.replace("@STATE@", self.state)
                    .replace("@COMPUTE_DRIVER@", "realcloud_fake.RealcloudFakeDriver")
                    .replace("/etc/nova/healthcheck_disable", self.path("nova/healthcheck_disable"))
                    .replace("/etc/glance/healthcheck_disable", self.path("glance/healthcheck_disable")))
            with open(self.path("etc", f), "w") as dst:
                dst.write(text)
        etc = lambda f: self.path("etc", f)  # noqa: E731

        # MariaDB and RabbitMQ
        self.run("mysql-install", ["mariadb-install-db", "--defaults-file=" + etc("my.cnf"),
                                   "--auth-root-authentication-method=normal", "--skip-test-db"])
        self.start_service("mysqld", ["mariadbd", "--defaults-file=" + etc("my.cnf")])
        self.start_service("epmd", ["/usr/bin/epmd", "-address", "127.0.0.1", "-port", "4369"])
        with open(self.path("rabbitmq/enabled_plugins"), "w") as f:
            f.write("[].\n")
        renv = dict(self.env, HOME=self.path("rabbitmq/home"),
                    RABBITMQ_CONFIG_FILE=etc("rabbitmq.conf"),
                    RABBITMQ_MNESIA_BASE=self.path("rabbitmq/mnesia"),
                    RABBITMQ_LOG_BASE=self.path("rabbitmq/log"),
                    RABBITMQ_NODENAME="rabbit@localhost", RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                    RABBITMQ_NODE_PORT="5672", ERL_EPMD_ADDRESS="127.0.0.1",
                    RABBITMQ_DIST_PORT="25672",
                    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
                    RABBITMQ_ENABLED_PLUGINS_FILE=self.path("rabbitmq/enabled_plugins"),
                    RABBITMQ_PID_FILE=self.path("rabbitmq/beam.pid"))
        self.start_service("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=renv)
        end = time.monotonic() + 60
        while subprocess.run(["mariadb-admin", "--defaults-file=" + etc("my.cnf"), "ping"],
                             capture_output=True).returncode != 0:
            if time.monotonic() > end or self.procs["mysqld"].poll() is not None:
                raise ControlPlaneError("mariadb did not start: see %s" % self.path("log/mysqld.log"))
            time.sleep(0.3)
        sql = ("CREATE DATABASE keystone; CREATE DATABASE placement; CREATE DATABASE glance;"
               "CREATE DATABASE neutron; CREATE DATABASE nova_api; CREATE DATABASE nova_cell0;"
               "CREATE DATABASE nova_cell1; CREATE USER 'os'@'127.0.0.1' IDENTIFIED BY 'os';"
               "GRANT ALL PRIVILEGES ON *.* TO 'os'@'127.0.0.1'; FLUSH PRIVILEGES;")
        self.run("mysql-setup", ["mariadb", "--defaults-file=" + etc("my.cnf"), "-uroot", "-e", sql])
        self.mark("mariadb")

        # schema syncs in the background, in parallel with Keystone
        svc = [PY, os.path.join(HERE, "svc.py")]
        errors = []

        def bg(steps):
            try:
                for name, argv in steps:
                    self.run(name, argv)
            except Exception as e:  # noqa: BLE001  reported by join_all
                errors.append(e)
        nova = svc + ["nova-manage", "--config-file", etc("nova.conf")]
        threads = [
            threading.Thread(target=bg, args=([
                ("placement-sync", ["/usr/bin/placement-manage", "--config-file", etc("placement.conf"), "db", "sync"]),
                ("glance-sync", svc + ["glance-manage", "--config-file", etc("glance-api.conf"), "db_sync"]),
                ("neutron-sync", svc + ["neutron-db-manage", "--config-file", etc("neutron.conf"), "upgrade", "heads"]),
            ],)),
            threading.Thread(target=bg, args=([
                ("nova-sync", nova + ["api_db", "sync"]),
                ("nova-sync", nova + ["cell_v2", "map_cell0", "--database_connection", DB + "nova_cell0"]),
                ("nova-sync", nova + ["cell_v2", "create_cell", "--name", "cell1"]),
                ("nova-sync", nova + ["db", "sync"]),
            ],)),
        ]
        for t in threads:
            t.start()

        def join_all():
            for t in threads:
                t.join()
            if errors:
                raise errors[0]

        try:
            self._keystone(etc)
        except BaseException:
            join_all()
            raise
        self.mark("keystone")
        join_all()
        self.mark("db syncs")

        uwsgi = ["uwsgi", "--plugin", "python3", "--master", "--processes", "1", "--threads", "8",
                 "--enable-threads", "--die-on-term", "--lazy-apps", "--buffer-size", "65535",
                 "--need-app", "--add-header", "Connection:close"]
        self.start_service("placement", uwsgi + ["--http-socket", "127.0.0.1:8778", "--wsgi-file",
                                                 "/usr/bin/placement-api", "--env",
                                                 "OS_PLACEMENT_CONFIG_DIR=" + self.path("etc")])
        self.start_service("glance-api", svc + ["glance-api", "--config-file", etc("glance-api.conf")])
        self.start_service("neutron-server", svc + ["neutron-server", "--config-file", etc("neutron.conf")])
        self.wait_port(5672, 60, "rabbitmq")
        for s in ("nova-conductor", "nova-scheduler", "nova-api-os-compute"):
            self.start_service(s, svc + [s, "--config-file", etc("nova.conf")])
        self.wait_http("http://127.0.0.1:8778/", 60, "placement")
        self.start_service("nova-compute", svc + ["nova-compute", "--config-file", etc("nova.conf")])
        self._appcred()

        self.wait_http("http://127.0.0.1:9292/", 90, "glance-api")
        st, _, img = http("POST", "http://127.0.0.1:9292/v2/images", {
            "name": "tiny", "disk_format": "raw", "container_format": "bare",
            "visibility": "public"}, token=self.admin_token)
        if st != 201:
            raise ControlPlaneError("glance image create: HTTP %d %s" % (st, img))
        st, _, doc = http("PUT", "http://127.0.0.1:9292/v2/images/%s/file" % img["id"],
                          raw=b"\0" * 1024, token=self.admin_token)
        if st != 204:
            raise ControlPlaneError("glance image upload: HTTP %d %s" % (st, doc))
        self.wait_http("http://127.0.0.1:8774/", 90, "nova-api-os-compute")
        # flavor 99 asks for 4096 vCPUs: always NoValidHost
        for fid, name, vcpus in (("1", "small", 1), ("99", "huge", 4096)):
            st, _, doc = http("POST", "http://127.0.0.1:8774/v2.1/flavors", {"flavor": {
                "id": fid, "name": name, "vcpus": vcpus, "ram": 512, "disk": 1}},
                token=self.admin_token)
            if st != 200:
                raise ControlPlaneError("nova flavor create %s: HTTP %d %s" % (name, st, doc))
        # Neutron Zed: a fresh worker 500s on the first GET /v2.0/ports (lazy ORM
        # backref); any other query first configures the mappers.
        self.wait_http("http://127.0.0.1:9696/", 90, "neutron-server")
        for what in ("networks", "security-groups", "ports"):
            http("GET", "http://127.0.0.1:9696/v2.0/" + what, token=self.admin_token)
        self.mark("apis")

        end = time.monotonic() + 90
        while True:
            st, _, doc = http("GET", "http://127.0.0.1:8774/v2.1/os-hypervisors", token=self.admin_token)
            if st == 200 and doc.get("hypervisors"):
                break
            if time.monotonic() > end or self.procs["nova-compute"].poll() is not None:
                raise ControlPlaneError("nova-compute did not register: see %s" % self.log("nova-compute"))
            time.sleep(0.5)
        self.run("nova-discover", nova + ["cell_v2", "discover_hosts"])
        self.mark("compute registered")

    def _keystone(self, etc):
        k = ["/usr/bin/keystone-manage", "--config-file", etc("keystone.conf")]
        self.run("keystone-manage", k + ["db_sync"])
        self.run("keystone-manage", k + ["fernet_setup", "--keystone-user", "root", "--keystone-group", "root"])
        self.run("keystone-manage", k + ["credential_setup", "--keystone-user", "root", "--keystone-group", "root"])
        self.run("keystone-manage", k + [
            "bootstrap", "--bootstrap-password", "admin", "--bootstrap-username", "admin",
            "--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
            "--bootstrap-service-name", "keystone", "--bootstrap-region-id", "RegionOne",
            "--bootstrap-admin-url", KEYSTONE + "/", "--bootstrap-internal-url", KEYSTONE + "/",
            "--bootstrap-public-url", KEYSTONE + "/"])
        self.start_keystone()
        tok, _ = token("admin", "admin", "admin")
        self.admin_token = tok

        def post(path, key, body):
            st, _, doc = http("POST", KEYSTONE + path, {key: body}, token=tok)
            if st != 201:
                raise ControlPlaneError("keystone POST %s: HTTP %d %s" % (path, st, doc))
            return doc[key]["id"]

        def grant(project, user, role):
            st, _, doc = http("PUT", KEYSTONE + "/projects/%s/users/%s/roles/%s" % (project, user, role), token=tok)
            if st not in (200, 204):
                raise ControlPlaneError("keystone role grant: HTTP %d %s" % (st, doc))

        _, _, doc = http("GET", KEYSTONE + "/roles", token=tok)
        roles = {r["name"]: r["id"] for r in doc["roles"]}
        if "service" not in roles:
            roles["service"] = post("/roles", "role", {"name": "service"})
        service = post("/projects", "project", {"name": "service", "domain_id": "default"})
        demo = post("/projects", "project", {"name": "demo", "domain_id": "default"})
        for s in ("nova", "placement", "glance", "neutron"):
            uid = post("/users", "user", {"name": s, "password": s, "domain_id": "default"})
            grant(service, uid, roles["admin"])
            grant(service, uid, roles["service"])
        uid = post("/users", "user", {"name": "demo", "password": "demo", "domain_id": "default"})
        grant(demo, uid, roles["member"])
        grant(demo, uid, roles["reader"])
        for name, typ, url in (("nova", "compute", "http://127.0.0.1:8774/v2.1"),
                               ("placement", "placement", "http://127.0.0.1:8778"),
                               ("glance", "image", "http://127.0.0.1:9292"),
                               ("neutron", "network", "http://127.0.0.1:9696")):
            sid = post("/services", "service", {"name": name, "type": typ})
            for iface in ("public", "internal", "admin"):
                post("/endpoints", "endpoint", {"service_id": sid, "interface": iface,
                                                "url": url, "region_id": "RegionOne"})

    def start_keystone(self):
        """Start (or restart after stop_service('keystone')) the Keystone uwsgi."""
        self.start_service("keystone", [
            "uwsgi", "--plugin", "python3", "--master", "--processes", "1", "--threads", "8",
            "--enable-threads", "--die-on-term", "--lazy-apps", "--buffer-size", "65535",
            "--need-app", "--add-header", "Connection:close", "--http-socket", "127.0.0.1:5000",
            "--wsgi-file", "/usr/bin/keystone-wsgi-public",
            "--env", "OS_KEYSTONE_CONFIG_FILES=" + self.path("etc", "keystone.conf")])
        self.wait_http(KEYSTONE, 60, "keystone")

    def _appcred(self):
        tok, body = token("demo", "demo", "demo")
        uid = body["user"]["id"]
        st, _, doc = http("POST", KEYSTONE + "/users/%s/application_credentials" % uid, {
            "application_credential": {"name": "demo-appcred", "secret": APPCRED_SECRET}}, token=tok)
        if st != 201:
            raise ControlPlaneError("application credential: HTTP %d %s" % (st, doc))
        ac = doc["application_credential"]["id"]
        common = ("    region_name: RegionOne\n    identity_api_version: 3\n"
                  "    interface: public\n")
        pw = ("    auth:\n      auth_url: %s\n      username: %%s\n      password: %%s\n"
              "      project_name: %%s\n      user_domain_name: Default\n"
              "      project_domain_name: Default\n" % KEYSTONE)
        with os.fdopen(os.open(self.clouds_yaml, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write("clouds:\n")
            f.write("  realcloud-demo:\n" + pw % ("demo", "demo", "demo") + common)
            f.write("  realcloud-admin:\n" + pw % ("admin", "admin", "admin") + common)
            f.write("  realcloud-appcred:\n    auth_type: v3applicationcredential\n"
                    "    auth:\n      auth_url: %s\n      application_credential_id: %s\n"
                    "      application_credential_secret: %s\n" % (KEYSTONE, ac, APPCRED_SECRET) + common)

    # -- helpers for tests -------------------------------------------------
    def admin(self, fresh=False):
        """An admin token, fetched once (fernet: it survives a Keystone restart);
        FRESH: a new one."""
        if fresh or not self.admin_token:
            self.admin_token, _ = token("admin", "admin", "admin")
        return self.admin_token

    def servers(self):
        """Every server in every project, as Nova lists it (admin, all_tenants).
        Patient: on a loaded 2-core machine nova-api may take a minute."""
        url = "http://127.0.0.1:8774/v2.1/servers/detail?all_tenants=1"
        hdr = {"OpenStack-API-Version": "compute 2.37"}
        st, _, doc = http("GET", url, token=self.admin(), headers=hdr, timeout=180)
        if st == 401:
            st, _, doc = http("GET", url, token=self.admin(fresh=True), headers=hdr, timeout=180)
        if st != 200:
            raise ControlPlaneError("nova servers list: HTTP %d %s" % (st, doc))
        return doc["servers"]


def install_signal_stop(cp):
    """Stop cp at exit, also on SIGINT/SIGTERM (meson's timeout sends TERM)."""
    atexit.register(cp.stop)

    def handler(sig, frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main(argv):
    if len(argv) != 3 or argv[1] not in ("up", "down"):
        print("usage: controlplane.py up|down STATE_DIR", file=sys.stderr)
        return 2
    cp = ControlPlane(argv[2])
    if argv[1] == "down":
        for f in os.listdir(cp.path("run")):
            pid = int(open(cp.path("run", f)).read())
            cp.procs[f[:-4]] = type("P", (), {"pid": pid, "poll": lambda self: None})()
        cp.stop()
        return 0
    try:
        cp.start()
    except BaseException:
        cp.stop()
        raise
    for what, t in cp.timings:
        print("%-20s %6.1f s" % (what, t))
    print("up; OS_CLIENT_CONFIG_FILE=%s; stop with: %s down %s" % (cp.clouds_yaml, argv[0], argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
