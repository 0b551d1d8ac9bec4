/* test.h - a tiny TAP test harness for the unit tests. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_count;
static int test_failed;
static int test_case_failed;

#define TEST_FAIL(...)                                                         \
        do {                                                                   \
                printf("# %s:%d: ", __FILE__, __LINE__);                       \
                printf(__VA_ARGS__);                                           \
                printf("\n");                                                  \
                test_case_failed = 1;                                          \
        } while (0)

#define CHECK(cond)                                                            \
        do {                                                                   \
                if (!(cond))                                                   \
                        TEST_FAIL("check failed: %s", #cond);                  \
        } while (0)

#define CHECK_INT(a, b)                                                        \
        do {                                                                   \
                long long _a = (long long) (a), _b = (long long) (b);          \
                if (_a != _b)                                                  \
                        TEST_FAIL("%s == %lld, expected %s == %lld", #a, _a,   \
                                  #b, _b);                                     \
        } while (0)

#define CHECK_STR(a, b)                                                        \
        do {                                                                   \
                const char *_a = (a), *_b = (b);                               \
                if (!_a || !_b || strcmp(_a, _b) != 0)                         \
                        TEST_FAIL("%s == \"%s\", expected \"%s\"", #a,         \
                                  _a ? _a : "(null)", _b ? _b : "(null)");     \
        } while (0)

/* Run one test case; prints a TAP line. */
#define RUN(fn)                                                                \
        do {                                                                   \
                test_case_failed = 0;                                          \
                fn();                                                          \
                test_count++;                                                  \
                if (test_case_failed)                                          \
                        test_failed++;                                         \
                printf("%s %d - %s\n", test_case_failed ? "not ok" : "ok",     \
                       test_count, #fn);                                       \
        } while (0)

static inline int test_done(void) {
        printf("1..%d\n", test_count);
        return test_failed ? 1 : 0;
}
