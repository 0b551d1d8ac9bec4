#!/usr/bin/env python3
"""The daemon's architecture, checked: which folder of daemon/ may include
which (doc/architecture.md), where the third-party client libraries may be
included, and that elasticctl and the hooks link no libslurm, libcurl or
libssh2. Usage: test-layout.py SRCDIR [ELASTICCTL]"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from tap import Tap  # noqa: E402

# Area -> the areas it may include besides itself. util and conf are open to
# everyone ("everyone -> conf, log"); main (daemon/elasticd.c) may include all.
ALLOWED = {
    "util": set(),
    "conf": {"util"},
    "proto": {"util"},
    "ctl": {"proto", "conf"},
    "journal": set(),
    "cloud": set(),
    "slurm": set(),
    "push": set(),
    "ops": {"cloud", "slurm", "push", "journal"},
    "metrics": {"ops", "cloud", "journal", "proto"},
    "server": {"proto", "ops", "journal", "metrics"},
}
for a in ALLOWED:
    if a != "util":
        ALLOWED[a] |= {"util", "conf"}
    if a == "conf":
        ALLOWED[a] = {"util"}

# Third-party client libraries stay inside their adapter.
CONFINED = {
    "slurm/": {"slurm"},
    "curl/": {"cloud"},
    "libssh2": {"push"},
}
# Known exceptions (file, library), each with the reason it exists.
EXCEPTIONS = {
    # The Slurm port's adapter turns libslurm's NODE_STATE_* flags into
    # ops_slurm_node's booleans.
    ("ops/adapters.c", "slurm/"),
}
# ops reaches cloud, slurm and push through its ports (ops/ports.h): only
# the adapter file includes them.
PORTED = {
    "ops": ({"cloud", "slurm", "push"}, {"ops/adapters.c"}),
}

INCLUDE = re.compile(r'^\s*#\s*include\s+([<"])([^>"]+)[>"]', re.M)


def sources(daemon):
    for root, _, files in os.walk(daemon):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                yield os.path.join(root, f)


def area_of(daemon, path):
    rel = os.path.relpath(path, daemon)
    return rel.split(os.sep)[0] if os.sep in rel else "main"


def check_includes(daemon, text_of):
    """Every violation as a string; text_of(path) gives a file's text."""
    bad = []
    for path in sources(daemon):
        area = area_of(daemon, path)
        rel = os.path.relpath(path, daemon)
        for kind, inc in INCLUDE.findall(text_of(path)):
            if kind == "<":
                for lib, areas in CONFINED.items():
                    if inc.startswith(lib) and area not in areas and (rel, lib) not in EXCEPTIONS \
                            and area != "main":
                        bad.append("%s includes <%s>: only %s may" % (rel, inc, "/".join(sorted(areas))))
                continue
            if inc == "config-build.h":
                continue
            if ".." in inc or "/" not in inc:
                bad.append('%s includes "%s": write "area/file.h"' % (rel, inc))
                continue
            target = inc.split("/")[0]
            if target not in ALLOWED:
                bad.append('%s includes "%s": no area %s' % (rel, inc, target))
            elif area != "main" and target != area and target not in ALLOWED[area]:
                bad.append('%s includes "%s": %s -> %s is not allowed' % (rel, inc, area, target))
            elif area in PORTED and target in PORTED[area][0] and rel not in PORTED[area][1]:
                bad.append('%s includes "%s": %s reaches %s only through its ports (%s)'
                           % (rel, inc, area, target, ", ".join(sorted(PORTED[area][1]))))
            elif not os.path.exists(os.path.join(daemon, inc)):
                bad.append('%s includes "%s": no such file' % (rel, inc))
    return bad


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def main():
    src = sys.argv[1]
    daemon = os.path.join(src, "daemon")
    t = Tap()

    bad = check_includes(daemon, read)
    t.ok(not bad, "every include in daemon/ follows the layout rules", "\n".join(bad))

    # The checker itself catches a forbidden arrow (cloud -> slurm) and a
    # relative include: the rule test can fail.
    probe = os.path.join(daemon, "cloud", "cloud.c")
    fake = {probe: read(probe) + '\n#include "slurm/ctld.h"\n#include "../ops/lifecycle.h"\n'}
    caught = check_includes(daemon, lambda p: fake.get(p) or read(p))
    t.ok(len(caught) == 2 and "cloud -> slurm" in caught[0], "a forbidden include is reported",
         "\n".join(caught))

    # ... and an operation file that goes around the ports.
    probe = os.path.join(daemon, "ops", "core.c")
    fake = {probe: read(probe) + '\n#include "cloud/cloud.h"\n#include <slurm/slurm.h>\n'}
    caught = check_includes(daemon, lambda p: fake.get(p) or read(p))
    t.ok(len(caught) == 2 and "only through its ports" in caught[0] and "only slurm may" in caught[1],
         "an include around the ports is reported",
         "\n".join(caught))

    for a in sorted(ALLOWED):
        t.ok(os.path.isdir(os.path.join(daemon, a)), "daemon/%s exists" % a)

    if len(sys.argv) > 2:
        for exe in sys.argv[2:]:
            out = subprocess.run(["readelf", "-d", exe], capture_output=True, text=True).stdout
            needed = re.findall(r"NEEDED.*\[(.*)\]", out)
            heavy = [n for n in needed if re.match(r"lib(slurm|curl|ssh2)", n)]
            t.ok(needed and not heavy, "%s links no libslurm, libcurl or libssh2" % os.path.basename(exe),
                 "NEEDED: %s" % " ".join(needed))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
