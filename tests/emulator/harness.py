"""Start and drive the OpenStack API emulator from a python test.

    from harness import EmulatorProcess      # tests/emulator on sys.path
    with EmulatorProcess("--boot-hook", hook, build_delay=0.2) as emu:
        emu.config(error_next=2)
        path = emu.clouds_yaml(dir, auth="appcred")
        ... run elasticd against it ...
        assert emu.servers()["count"] == 0

Each instance has its own port (the kernel picks it) and temp dir, so
parallel runs never collide. See README.md for the knobs."""

import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "emulator.py")
MKCERT = os.path.join(HERE, "mkcert.sh")

# The default identities (README.md); test values, not secrets.
DEMO = {"username": "demo", "password": "demo", "project_name": "demo"}
APPCRED = {"id": "e37530918dac483b8cd182fe3057d972", "name": "demo-appcred",
           "secret": "s3cr3t-appcred"}
IMAGE_ID = "012ff1c6-dc8d-4e82-8f73-8a2a63093040"
IMAGE2_ID = "7c1f2f0e-3a4b-4d2c-9e8f-5a6b7c8d9e0f"
NETWORK_ID = "4b6b1e2c-2f7e-4c5a-9d3b-8e1f0a2b3c4d"


class EmulatorError(RuntimeError):
    pass


class EmulatorProcess:
    """One emulator process. Extra CLI arguments pass through; keyword
    arguments build_delay/delete_delay/reboot_delay/rebuild_delay become
    the matching options; tls=True serves HTTPS with a fresh test CA
    (self.ca is its PEM file)."""

    def __init__(self, *args, tls=False, build_delay=None, delete_delay=None,
                 reboot_delay=None, rebuild_delay=None, env=None, start_timeout=15.0):
        self.dir = tempfile.mkdtemp(prefix="emu-%d-" % os.getpid())
        self.ca = None
        portfile = os.path.join(self.dir, "port")
        cmd = [sys.executable, EMULATOR, "--port", "0", "--port-file", portfile]
        for opt, v in (("--build-delay", build_delay), ("--delete-delay", delete_delay),
                       ("--reboot-delay", reboot_delay), ("--rebuild-delay", rebuild_delay)):
            if v is not None:
                cmd += [opt, str(v)]
        self._ctx = None
        if tls:
            certs = os.path.join(self.dir, "tls")
            subprocess.run([MKCERT, certs], check=True)
            cmd += ["--tls-cert", os.path.join(certs, "server.pem"),
                    "--tls-key", os.path.join(certs, "server.key")]
            self.ca = os.path.join(certs, "ca.pem")
            self.other_ca = os.path.join(certs, "other-ca.pem")
            self._ctx = ssl.create_default_context(cafile=self.ca)
        self.stderr_path = os.path.join(self.dir, "stderr")
        self._log = open(self.stderr_path, "w+")
        self.proc = subprocess.Popen(cmd + list(args), stdout=self._log, stderr=self._log,
                                     env=env)
        end = time.time() + start_timeout
        while not os.path.exists(portfile):
            if self.proc.poll() is not None or time.time() > end:
                why = self.stderr()
                self.stop()
                raise EmulatorError("emulator did not start: " + why.strip())
            time.sleep(0.02)
        with open(portfile) as f:
            self.port = int(f.read())
        self.base = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.auth_url = self.base + "/v3"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stderr(self):
        try:
            with open(self.stderr_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, timeout=30.0):
        """SIGTERM (the emulator then runs the delete hooks of live servers)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- HTTP --------------------------------------------------------
    def connection(self, context=None, timeout=30):
        if self._ctx or context:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=context or self._ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        """(status, {lower-case header: value}, JSON-decoded body or text)."""
        h = {"Accept": "application/json"}
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body)
        h.update(headers or {})
        c = self.connection()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        try:
            out = json.loads(data) if data else None
        except ValueError:
            out = data.decode("utf-8", "replace")
        return r.status, hdrs, out

    def control(self, method, path, body=None):
        st, _, out = self.request(method, "/_emulator/" + path.lstrip("/"), body)
        if st != 200:
            raise EmulatorError("%s /_emulator/%s: %d %r" % (method, path, st, out))
        return out

    def config(self, **knobs):
        return self.control("POST", "config", knobs)

    def reset(self):
        return self.control("POST", "reset")

    def expire_tokens(self):
        return self.control("POST", "tokens/expire")

    def servers(self):
        return self.control("GET", "servers")

    def server(self, sid):
        return self.control("GET", "servers/" + sid)

    def requests(self, since=0, method=None, path=None):
        q = "requests?since=%d" % since
        if method:
            q += "&method=" + method
        if path:
            from urllib.parse import quote
            q += "&path=" + quote(path)
        return self.control("GET", q)["requests"]

    def stats(self):
        return self.control("GET", "stats")

    def token(self, user="demo", password="demo"):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}}}}
        st, h, out = self.request("POST", "/v3/auth/tokens", body)
        if st != 201:
            raise EmulatorError("auth as %s: %d %r" % (user, st, out))
        return h["x-subject-token"]

    def clouds_yaml(self, directory, cloud="emulator", auth="password", extra=None):
        """Write DIRECTORY/clouds.yaml (mode 0600) for this emulator, with
        password or application-credential ("appcred") auth; its path."""
        lines = ["clouds:", "  %s:" % cloud]
        if auth == "appcred":
            lines += ["    auth_type: v3applicationcredential",
                      "    auth:",
                      "      auth_url: %s" % self.auth_url,
                      "      application_credential_id: %s" % APPCRED["id"],
                      "      application_credential_secret: %s" % APPCRED["secret"]]
        elif auth == "password":
            lines += ["    auth_type: password",
                      "    auth:",
                      "      auth_url: %s" % self.auth_url,
                      "      username: %s" % DEMO["username"],
                      "      password: %s" % DEMO["password"],
                      "      project_name: %s" % DEMO["project_name"],
                      "      user_domain_name: Default",
                      "      project_domain_name: Default"]
        else:
            raise ValueError("auth must be 'password' or 'appcred'")
        lines += ["    region_name: RegionOne", "    interface: public",
                  "    identity_api_version: 3"]
        if self.ca:
            lines.append("    cacert: %s" % self.ca)
        for k, v in (extra or {}).items():
            lines.append("    %s: %s" % (k, v))
        path = os.path.join(directory, "clouds.yaml")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path
