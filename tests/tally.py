#!/usr/bin/env python3
"""Count real test cases from meson's testlog.json files.

TAP tests count each "ok"/"not ok" line (a "# SKIP" directive counts as
skipped); other tests count once by their result. Prints the final
"N passed, N failed[, N skipped]" line and exits 1 when anything failed."""
import json
import re
import sys

TAP = re.compile(r"^(not ok|ok)\b(.*)$")


def tally(path, counts):
    try:
        f = open(path)
    except FileNotFoundError:
        return
    with f:
        for line in f:
            if not line.strip():
                continue
            t = json.loads(line)
            cases = []
            for l in (t.get("stdout") or "").splitlines():
                m = TAP.match(l)
                if m:
                    cases.append((m.group(1), m.group(2)))
            if cases:
                for res, rest in cases:
                    if "# SKIP" in rest.upper():
                        counts["skipped"] += 1
                    elif res == "ok":
                        counts["passed"] += 1
                    else:
                        counts["failed"] += 1
                # a crash after some cases still counts as a failure
                if t["result"] in ("FAIL", "TIMEOUT", "ERROR") and all(r == "ok" for r, _ in cases):
                    counts["failed"] += 1
            elif t["result"] in ("OK", "EXPECTEDFAIL"):
                counts["passed"] += 1
            elif t["result"] == "SKIP":
                counts["skipped"] += 1
            else:
                counts["failed"] += 1


def main():
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for p in sys.argv[1:]:
        tally(p, counts)
    line = "%d passed, %d failed" % (counts["passed"], counts["failed"])
    if counts["skipped"]:
        line += ", %d skipped" % counts["skipped"]
    print(line)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
