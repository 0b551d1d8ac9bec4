"""Minimal TAP producer for the Python test suites."""
import sys
import traceback


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, name), flush=True)
        if not cond and diag:
            self.diag(diag)
        return bool(cond)

    def skip(self, name, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why), flush=True)

    def diag(self, text):
        for line in str(text).rstrip().splitlines():
            print("# " + line, flush=True)

    def crashed(self, what):
        """Record an unexpected exception as a failed test case."""
        self.ok(False, "%s: no unexpected error" % what, traceback.format_exc())

    def done(self):
        print("1..%d" % self.n, flush=True)
        return 1 if self.failed else 0


def skip_all(why):
    print("1..0 # SKIP %s" % why, flush=True)
    sys.exit(0)
