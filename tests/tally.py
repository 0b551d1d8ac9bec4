#!/usr/bin/env python3
"""Count real test cases from meson's testlog.json files.

TAP tests count each "ok"/"not ok" line (a "# SKIP" directive counts as
skipped); other tests count once by their result. Prints the final
"N passed, N failed[, N skipped]" line and exits 1 when anything failed.
Before it, each failed case with the diagnostics that follow it (meson's
--print-errorlogs shows only a TAP test's stderr), so that the end of a
failed run says why."""
import json
import re
import sys

TAP = re.compile(r"^(not ok|ok)\b(.*)$")


DIAG_LINES = 40      # per failed case
DIAG_TOTAL = 200     # in all


def failure_excerpt(name, lines, i, out):
    """The failed case at LINES[I] and the "#" lines after it."""
    out.append("%s: %s" % (name, lines[i]))
    for l in lines[i + 1:i + 1 + DIAG_LINES]:
        if TAP.match(l):
            break
        out.append("  " + l[:300])


def tally(path, counts, excerpts):
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
            lines = (t.get("stdout") or "").splitlines()
            for i, l in enumerate(lines):
                m = TAP.match(l)
                if m:
                    cases.append((m.group(1), m.group(2)))
                    if m.group(1) == "not ok":
                        failure_excerpt(t.get("name", "?"), lines, i, excerpts)
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
                    excerpts.append("%s: %s after %d cases" % (t.get("name", "?"), t["result"], len(cases)))
                    excerpts.extend("  " + l[:300] for l in lines[-DIAG_LINES:] if not TAP.match(l))
            elif t["result"] in ("OK", "EXPECTEDFAIL"):
                counts["passed"] += 1
            elif t["result"] == "SKIP":
                counts["skipped"] += 1
            else:
                counts["failed"] += 1
                excerpts.append("%s: %s" % (t.get("name", "?"), t["result"]))


def main():
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    excerpts = []
    for p in sys.argv[1:]:
        tally(p, counts, excerpts)
    if excerpts:
        print("== what failed")
        print("\n".join(excerpts[:DIAG_TOTAL]))
        if len(excerpts) > DIAG_TOTAL:
            print("(%d more lines in the meson-logs/testlog.txt files)" % (len(excerpts) - DIAG_TOTAL))
    line = "%d passed, %d failed" % (counts["passed"], counts["failed"])
    if counts["skipped"]:
        line += ", %d skipped" % counts["skipped"]
    print(line)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
