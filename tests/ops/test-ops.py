#!/usr/bin/env python3
"""elasticd as a service: the systemd units as installed pass
`systemd-analyze verify`, and the man pages lint clean and document every
configuration key the parser accepts (TAP)."""

import grp
import os
import re
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ["MESON_BUILD_ROOT"]
SRC = os.environ["SOURCE_ROOT"]
ELASTICD = os.environ["ELASTICD"]
MAN_PAGES = ["doc/elasticctl.1", "doc/elasticd.8", "doc/elasticd.yaml.5"]

n = 0
failed = 0


def ok(cond, name, diag=""):
    global n, failed
    n += 1
    if not cond:
        failed += 1
        for line in str(diag).splitlines():
            print("# " + line)
    print(("ok" if cond else "not ok") + " %d - %s" % (n, name))


def skip(name, why):
    global n
    n += 1
    print("ok %d - %s # SKIP %s" % (n, name, why))


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kw)


def installed_files(destdir):
    out = []
    for root, _, files in os.walk(destdir):
        out += [os.path.join(root, f) for f in files]
    return out


def test_units(destdir):
    files = installed_files(destdir)
    units = {os.path.basename(f): f for f in files
             if f.endswith(("/elasticd.service", "/elasticd.socket"))}
    ok(set(units) == {"elasticd.service", "elasticd.socket"}, "both units are installed",
       "\n".join(files))
    if len(units) != 2:
        return
    daemon = [f for f in files if f.endswith("/sbin/elasticd")]
    ok(len(daemon) == 1, "elasticd is installed in sbin", "\n".join(files))
    if shutil.which("systemd-analyze") is None:
        skip("systemd-analyze verify", "systemd-analyze not installed")
        return
    # systemd 252's verify --root cannot find sysinit.target in a bare tree:
    # verify copies whose ExecStart names the installed binary instead.
    vdir = os.path.join(destdir, "verify")
    os.mkdir(vdir)
    service = open(units["elasticd.service"]).read()
    m = re.search(r"^ExecStart=(\S+)", service, re.M)
    ok(m is not None and daemon and daemon[0].endswith(m.group(1)),
       "ExecStart names the installed elasticd", m.group(0) if m else service)
    if not m or not daemon:
        return
    with open(os.path.join(vdir, "elasticd.service"), "w") as f:
        f.write(service.replace("ExecStart=" + m.group(1), "ExecStart=" + daemon[0]))
    shutil.copy(units["elasticd.socket"], vdir)
    r = run(["systemd-analyze", "verify", "--man=no",
             os.path.join(vdir, "elasticd.service"), os.path.join(vdir, "elasticd.socket")])
    ok(r.returncode == 0 and r.stdout.strip() == "", "systemd-analyze verify is clean", r.stdout)
    # The service documents itself with the pages this project installs.
    for page in re.findall(r"man:(\S+)\((\d)\)", service):
        ok(any(f.endswith("/man%s/%s.%s" % (page[1], page[0], page[1])) for f in files),
           "man:%s(%s) from Documentation= is installed" % page)


def test_man_lint():
    if shutil.which("mandoc") is None:
        skip("mandoc -Tlint", "mandoc not installed")
        return
    for page in MAN_PAGES:
        r = run(["mandoc", "-Tlint", "-Wwarning", os.path.join(SRC, page)])
        ok(r.returncode == 0 and r.stdout.strip() == "", "mandoc -Tlint %s" % page, r.stdout)


# The example names files and a group of a production controller
# (/etc/elasticd/clouds.yaml, socket group slurm), which a fresh test machine
# lacks: --check reads a copy whose clouds_file is one written here and whose
# socket group is the test's own. Every key stays, so every key is printed.
CLOUDS = """\
clouds:
  openstack:
    auth:
      auth_url: https://keystone.example.org:5000/v3
      username: elasticd
      password: not-a-secret
      project_name: hpc
      user_domain_name: Default
      project_domain_name: Default
"""


def example_here(tmp):
    clouds = os.path.join(tmp, "clouds.yaml")
    fd = os.open(clouds, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(CLOUDS)
    text = open(os.path.join(SRC, "daemon/elasticd.yaml.example")).read()
    text, n1 = re.subn(r"^clouds_file: .*$", "clouds_file: " + clouds, text, flags=re.M)
    text, n2 = re.subn(r"^  group: slurm$", "  group: " + grp.getgrgid(os.getgid()).gr_name,
                       text, flags=re.M)
    ok(n1 == 1 and n2 == 1, "the example names clouds_file and the socket group once")
    path = os.path.join(tmp, "elasticd.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def config_keys():
    """Every key the parser's tables accept, plus every key --check prints."""
    text = open(os.path.join(SRC, "daemon/conf/config.c")).read()
    keys = set(re.findall(r'\b(?:STR|NUM|SECTION|GSTR|SSTR|FSTR)\("([a-z_]+)"', text))
    keys |= set(re.findall(r'\{ "([a-z_]+)", parse_[a-z_]+,', text))
    with tempfile.TemporaryDirectory(prefix="elasticd-ops-check-") as tmp:
        # Warnings (the example's admin_group need not exist) go to stderr.
        r = subprocess.run([ELASTICD, "--check", "-c", example_here(tmp)], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ok(r.returncode == 0, "elasticd --check accepts the example config", r.stderr + r.stdout)
    printed = set(re.findall(r"^[ -]*([a-z_]+):", r.stdout, re.M))
    # Metadata values are the example's own keys, not the schema's.
    printed.discard("role")
    missing = printed - keys
    ok(not missing, "the key tables hold every key --check prints", " ".join(sorted(missing)))
    return keys | printed


def test_man_keys():
    keys = config_keys()
    ok(len(keys) > 40, "found the config keys (%d)" % len(keys))
    page = open(os.path.join(SRC, "doc/elasticd.yaml.5")).read()
    documented = set(re.findall(r"^\.It Cm (\S+)", page, re.M))
    missing = sorted(keys - documented)
    ok(not missing, "elasticd.yaml(5) has an entry for every config key",
       "missing: " + " ".join(missing))
    extra = sorted(documented - keys)
    ok(not extra, "elasticd.yaml(5) documents no key the parser lacks", " ".join(extra))


def test_man_installed(destdir):
    files = installed_files(destdir)
    for page in MAN_PAGES:
        name = os.path.basename(page)
        ok(any(f.endswith("/man%s/%s" % (name[-1], name)) for f in files),
           "%s is installed in man%s" % (name, name[-1]))


def main():
    with tempfile.TemporaryDirectory(prefix="elasticd-ops-%d-" % os.getpid()) as tmp:
        destdir = os.path.join(tmp, "dest")
        r = run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet",
                 "--destdir", destdir])
        ok(r.returncode == 0, "meson install --destdir", r.stdout)
        test_units(destdir)
        test_man_installed(destdir)
    test_man_lint()
    test_man_keys()
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
