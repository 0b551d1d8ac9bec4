/* test-hostlist.c - hostlist validation, expansion, compression and node order. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <slurm/slurm.h>

#include "util/hostlist.h"
#include "util/strv.h"
#include "test.h"

/* Expand TEXT and compare with the space-separated EXPECTED names. */
static void check_expand(const char *text, const char *expected) {
        _cleanup_strv_free_ char **v = NULL;
        _cleanup_free_ char *err = NULL, *want = strdup(expected);
        size_t n = 99, i = 0;
        int r = hostlist_expand(text, 1000, &v, &n, &err);

        if (r != 0) {
                TEST_FAIL("expand \"%s\": %d %s", text, r, err ? err : "");
                return;
        }
        CHECK(err == NULL);
        for (char *w = strtok(want, " "); w; w = strtok(NULL, " "), i++) {
                if (i >= n || strcmp(v[i], w) != 0) {
                        TEST_FAIL("expand \"%s\": name %zu is \"%s\", expected \"%s\"",
                                  text, i, i < n ? v[i] : "(end)", w);
                        return;
                }
        }
        CHECK_INT(n, i);
        CHECK(v[n] == NULL);
        CHECK_INT(strv_length(v), n);
}

/* Expansion of TEXT fails with R and an error message containing NEEDLE. */
static void check_fail(const char *text, size_t max, int r, const char *needle) {
        char **v = (char **) 0x1;
        size_t n = 4242;
        _cleanup_free_ char *err = NULL;
        int got = hostlist_expand(text, max, &v, &n, &err);

        if (got != r) {
                TEST_FAIL("expand \"%s\": got %d, expected %d (%s)", text, got, r, err ? err : "");
                if (got == 0)
                        strv_free(v);
                return;
        }
        CHECK(v == (char **) 0x1); /* untouched on failure */
        CHECK_INT(n, 4242);
        if (!err || !strstr(err, needle))
                TEST_FAIL("expand \"%s\": error \"%s\" lacks \"%s\"", text, err ? err : "(null)", needle);
}

static void test_ranges(void) {
        check_expand("cn[1-3]", "cn1 cn2 cn3");
        check_expand("cn[1,3,5-6]", "cn1 cn3 cn5 cn6");
        check_expand("cn[7]", "cn7");
        check_expand("cn[9-11]", "cn9 cn10 cn11");
        check_expand("cn1[0-2]", "cn10 cn11 cn12");
        check_expand("[1-3]", "1 2 3");
        check_expand("a[1-2]b[1-2]", "a1b1 a1b2 a2b1 a2b2");
        check_expand("r[1-2]n[3]", "r1n3 r2n3");
}

static void test_lists(void) {
        check_expand("c,a,b", "a b c");
        check_expand("a b\tc", "a b c");
        check_expand("  a , b  ", "a b");
        check_expand("x.example.org,y_1,z-2", "x.example.org y_1 z-2");
}

static void test_mixed(void) {
        check_expand("gpu1,cn[1-2],cn5,login", "cn1 cn2 cn5 gpu1 login");
        check_expand("cn10,cn[8-9],cn2", "cn2 cn8 cn9 cn10");
}

static void test_padding(void) {
        _cleanup_free_ char *s = NULL;
        _cleanup_strv_free_ char **v = NULL;
        size_t n;

        check_expand("cn-[001-010]", "cn-001 cn-002 cn-003 cn-004 cn-005 cn-006 cn-007 cn-008 cn-009 cn-010");
        check_expand("cn[09-11]", "cn09 cn10 cn11");
        /* Same number, different padding: different nodes, less padding first. */
        check_expand("cn001,cn1,cn01,cn2", "cn1 cn01 cn001 cn2");

        CHECK_INT(hostlist_expand("cn-[001-010]", 100, &v, &n, NULL), 0);
        CHECK_INT(hostlist_compress(v, n, &s, NULL), 0);
        CHECK_STR(s, "cn-[001-010]");
}

static void test_duplicates(void) {
        size_t n = 0;

        check_expand("cn[1-3],cn2,cn[2-4]", "cn1 cn2 cn3 cn4");
        check_expand("a,a,a", "a");
        check_expand("cn[1-2,2-3]", "cn1 cn2 cn3");
        /* The cap counts before de-duplicating. */
        CHECK_INT(hostlist_count("a,a,a", 10, &n, NULL), 0);
        CHECK_INT(n, 3);
        check_fail("a,a,a", 2, -E2BIG, "3 nodes, limit is 2");
}

static void test_empty(void) {
        _cleanup_strv_free_ char **v = NULL, **w = NULL;
        size_t n = 99;

        CHECK_INT(hostlist_expand("", 10, &v, &n, NULL), 0);
        CHECK(v && v[0] == NULL);
        CHECK_INT(n, 0);
        CHECK_INT(hostlist_expand(" \t ", 10, &w, &n, NULL), 0);
        CHECK(w && w[0] == NULL);
        CHECK_INT(hostlist_expand(NULL, 10, &v, &n, NULL), -EINVAL);
}

static void test_bad_brackets(void) {
        check_fail("cn[1-2", 100, -EINVAL, "\"cn[1-2\": '[' without ']'");
        check_fail("cn1-2]", 100, -EINVAL, "\"cn1-2]\": ']' without '['");
        check_fail("cn[1-2]]", 100, -EINVAL, "']' without '['");
        check_fail("cn[[1-2]", 100, -EINVAL, "expected a number");
        check_fail("cn[]", 100, -EINVAL, "\"cn[]\": expected a number");
        check_fail("cn[5-3]", 100, -EINVAL, "range \"5-3\" goes backwards");
        check_fail("cn[010-1]", 100, -EINVAL, "range \"010-1\" goes backwards");
        check_fail("cn[a-b]", 100, -EINVAL, "expected a number at \"a-b]\"");
        check_fail("cn[3-]", 100, -EINVAL, "expected a number after '-' in \"3-\"");
        check_fail("cn[-3]", 100, -EINVAL, "expected a number");
        check_fail("cn[1 -2]", 100, -EINVAL, "unexpected \" \" inside brackets");
        check_fail("cn[1;2]", 100, -EINVAL, "unexpected \";\"");
        check_fail("cn[1-2]-ib", 100, -EINVAL, "text after the last ']'");
        check_fail("ok1,cn[1-2]x", 100, -EINVAL, "\"cn[1-2]x\"");
        check_fail("cn[1-2,cn3", 100, -EINVAL, "expected a number at \"cn3\"");
}

static void test_illegal_characters(void) {
        check_fail("cn#1", 100, -EINVAL, "\"cn#1\": illegal character \"#\"");
        check_fail("a,b/c", 100, -EINVAL, "\"b/c\": illegal character \"/\"");
        check_fail("a:b", 100, -EINVAL, "illegal character \":\"");
        check_fail("a\x01z", 100, -EINVAL, "\"a\\x01z\": illegal character \"\\x01\"");
        check_fail("n\xc3\xa4", 100, -EINVAL, "illegal character \"\\xc3\"");
        check_fail("a\rb", 100, -EINVAL, "illegal character \"\\x0d\"");
        check_fail("a\nb", 100, -EINVAL, "illegal character \"\\x0a\"");
        check_fail("a\"b", 100, -EINVAL, "illegal character \"\\x22\"");
        check_fail(",a", 100, -EINVAL, "empty element at offset 0");
        check_fail("a,,b", 100, -EINVAL, "empty element at offset 2");
        check_fail("a, ,b", 100, -EINVAL, "empty element");
        check_fail("a,", 100, -EINVAL, "ends with ','");
        check_fail("cn1234567890", 100, -EINVAL, "more than 9 digits");
        check_fail("cn[1-1234567890]", 100, -EINVAL, "more than 9 digits");
        check_fail("cn123456[1000-1001]", 100, -EINVAL, "more than 9 digits");
        check_fail("cn1[1-2]x123456789[1]", 100, -EINVAL, "more than 9 digits");
        check_expand("cn123456789,c123[456789]", "c123456789 cn123456789");
}

static void test_long_names(void) {
        char name[HOSTLIST_NAME_MAX + 8];
        _cleanup_strv_free_ char **v = NULL;
        _cleanup_free_ char *err = NULL;
        size_t n;

        memset(name, 'a', sizeof(name));
        name[HOSTLIST_NAME_MAX] = 0;
        CHECK_INT(hostlist_expand(name, 10, &v, &n, NULL), 0);
        CHECK_INT(n, 1);
        CHECK(hostlist_name_is_valid(name));
        name[HOSTLIST_NAME_MAX] = 'a';
        name[HOSTLIST_NAME_MAX + 1] = 0;
        CHECK(!hostlist_name_is_valid(name));
        CHECK_INT(hostlist_count(name, 10, &n, &err), -EINVAL);
        CHECK(err && strstr(err, "longer than 255"));
        /* A long message is cut short, not overflowing. */
        CHECK(err && strlen(err) < 200);
        /* The bracket's width counts too. */
        memcpy(name + HOSTLIST_NAME_MAX, "[1-2]", 6);
        CHECK_INT(hostlist_count(name, 10, &n, NULL), -EINVAL);
        memcpy(name + HOSTLIST_NAME_MAX - 1, "[1-2]", 6);
        CHECK_INT(hostlist_count(name, 10, &n, NULL), 0);
        memcpy(name + HOSTLIST_NAME_MAX - 1, "[1-10]", 7);
        CHECK_INT(hostlist_count(name, 10, &n, NULL), -EINVAL);
}

static void test_over_cap(void) {
        check_fail("cn[1-65537]", 1000000, -EINVAL, "spans 65537 numbers, at most 65536");
        check_fail("cn[0-999999999]", 1000000, -EINVAL, "spans 1000000000 numbers");
        check_fail("cn[1-65536]", 65535, -E2BIG, "hostlist has 65536 nodes, limit is 65535");
        check_fail("cn[1-10],x", 10, -E2BIG, "11 nodes, limit is 10");
        check_fail("a[1-60000]b[1-60000]", 1000000, -E2BIG, "3600000000 nodes, limit is 1000000");
        /* 65536^4 overflows 64 bits: the count saturates rather than wraps. */
        check_fail("a[1-65536]b[1-65536]c[1-65536]d[1-65536]", 1000, -E2BIG, "more than");
        check_fail("a[1-65536]b[1-65536]c[1-65536]d[1-65536]e[1]", 1000, -E2BIG, "limit is 1000");
}

static void test_at_cap(void) {
        _cleanup_strv_free_ char **v = NULL, **w = NULL;
        size_t n = 0;

        CHECK_INT(hostlist_expand("cn[1-10]", 10, &v, &n, NULL), 0);
        CHECK_INT(n, 10);
        CHECK_INT(hostlist_expand("cn[1-65536]", 65536, &w, &n, NULL), 0);
        CHECK_INT(n, 65536);
        CHECK_STR(w[0], "cn1");
        CHECK_STR(w[65535], "cn65536");
        check_fail("cn[1-10]", 9, -E2BIG, "10 nodes, limit is 9");
}

static void test_text_cap(void) {
        size_t len = HOSTLIST_TEXT_MAX + 2;
        _cleanup_free_ char *s = malloc(len + 1);
        size_t n;

        CHECK(s != NULL);
        for (size_t i = 0; i < len; i += 2)
                memcpy(s + i, "a,", 2);
        s[len - 1] = 0;
        CHECK_INT(hostlist_count(s, 100, &n, NULL), -E2BIG);
}

/* libslurm prints to stderr on input it dislikes: none of that must get past
 * the validator. */
static void test_nothing_printed(void) {
        static const char *const bad[] = {
                "cn[5-3]", "cn[a-b]", "cn[1-65537]", "cn[]", "cn[1-2]x", "cn[010-1]",
                "cn[18446744073709551614-18446744073709551615]", "cn[-3]", "cn[1-2 ]",
        };
        FILE *f = tmpfile();
        int saved = dup(STDERR_FILENO);
        struct stat st;

        CHECK(f != NULL);
        fflush(stderr);
        dup2(fileno(f), STDERR_FILENO);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *err = NULL;
                char **v = NULL;
                size_t n;

                CHECK_INT(hostlist_expand(bad[i], 1000000, &v, &n, &err), -EINVAL);
                CHECK(err != NULL);
        }
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        CHECK_INT(fstat(fileno(f), &st), 0);
        fclose(f);
        CHECK_INT(st.st_size, 0);
}

/* A strv from space-separated words; "<empty>" stands for "". */
static char **words(const char *text, size_t *ret_n) {
        _cleanup_free_ char *t = strdup(text);
        char **v = calloc(64, sizeof(char *));
        size_t n = 0;

        for (char *w = strtok(t, " "); w && n < 63; w = strtok(NULL, " "))
                v[n++] = strdup(strcmp(w, "<empty>") == 0 ? "" : w);
        *ret_n = n;
        return v;
}

static void test_compress(void) {
        _cleanup_strv_free_ char **nodes = NULL, **bad = NULL, **bad2 = NULL, **bad3 = NULL, **bad4 = NULL;
        _cleanup_free_ char *s = NULL, *e = NULL, *err = NULL;
        size_t n;

        nodes = words("cn3 cn1 cn2 gpu1 cn2 cn10 login", &n);
        CHECK_INT(hostlist_compress(nodes, n, &s, NULL), 0);
        CHECK_STR(s, "cn[1-3,10],gpu1,login");
        CHECK_INT(hostlist_compress(NULL, 0, &e, NULL), 0);
        CHECK_STR(e, "");

        bad = words("cn1 cn[2]", &n);
        CHECK_INT(hostlist_compress(bad, n, &s, &err), -EINVAL);
        CHECK_STR(err, "invalid node name \"cn[2]\"");
        err = mfree(err);
        bad2 = words("<empty>", &n);
        CHECK_INT(hostlist_compress(bad2, n, &s, &err), -EINVAL);
        CHECK_STR(err, "invalid node name \"\"");
        err = mfree(err);
        bad3 = words("a,b", &n);
        CHECK_INT(hostlist_compress(bad3, n, &s, &err), -EINVAL);
        err = mfree(err);
        bad4 = words("cn12345678901", &n);
        CHECK_INT(hostlist_compress(bad4, n, &s, &err), -EINVAL);
        CHECK_STR(s, "cn[1-3,10],gpu1,login"); /* untouched on failure */
}

/* Compressing then expanding gives the same sorted set. */
static void check_roundtrip(const char *text, size_t expect_n) {
        _cleanup_strv_free_ char **v = NULL, **w = NULL;
        _cleanup_free_ char *s = NULL, *err = NULL;
        size_t n = 0, m = 0;

        CHECK_INT(hostlist_expand(text, 1000000, &v, &n, &err), 0);
        CHECK_INT(n, expect_n);
        CHECK_INT(hostlist_compress(v, n, &s, &err), 0);
        CHECK_INT(hostlist_expand(s, 1000000, &w, &m, &err), 0);
        if (err)
                TEST_FAIL("%s", err);
        CHECK_INT(m, n);
        for (size_t i = 0; i < n && i < m; i++)
                if (strcmp(v[i], w[i]) != 0) {
                        TEST_FAIL("roundtrip of \"%s\" via \"%s\" differs at %zu", text, s, i);
                        break;
                }
}

static void test_roundtrip(void) {
        check_roundtrip("cn[1-2,01-02,10,001]", 6);
        check_roundtrip("a[1-2]b[1-3],x,y[9-11]", 10);
        check_roundtrip("cn[000000001-000065536],cn[000065537-000070000]", 70000);
        check_roundtrip("[1-3],[01-02]", 5);
}

static void test_100k(void) {
        _cleanup_strv_free_ char **v = NULL, **w = NULL;
        _cleanup_free_ char *s = NULL, *list = NULL;
        size_t n = 0, m = 0, len = 0;
        FILE *f;

        CHECK_INT(hostlist_expand("cn[1-65536],cn[65537-100000]", 100000, &v, &n, NULL), 0);
        CHECK_INT(n, 100000);
        CHECK_STR(v[0], "cn1");
        CHECK_STR(v[99999], "cn100000");
        for (size_t i = 1; i < n; i++)
                if (hostlist_name_compare(v[i - 1], v[i]) >= 0) {
                        TEST_FAIL("not sorted at %zu", i);
                        break;
                }
        /* libslurm would write one range of 100000; it must come back readable. */
        CHECK_INT(hostlist_compress(v, n, &s, NULL), 0);
        CHECK_STR(s, "cn[1-65536,65537-100000]");

        /* The same nodes as a plain comma list, in reverse with duplicates. */
        f = open_memstream(&list, &len);
        CHECK(f != NULL);
        for (size_t i = n; i > 0; i--)
                fprintf(f, "%s%s", i == n ? "" : ",", v[i - 1]);
        fprintf(f, ",cn5,cn6");
        fclose(f);
        CHECK_INT(hostlist_expand(list, 100002, &w, &m, NULL), 0);
        CHECK_INT(m, 100000);
        for (size_t i = 0; i < n && i < m; i++)
                if (strcmp(v[i], w[i]) != 0) {
                        TEST_FAIL("differs at %zu", i);
                        break;
                }
}

static void test_name_order(void) {
        static const char *const sorted[] = {
                "", "-", "0", "00", "1", "01", "2", "10", "a", "a1", "a1b", "a2", "a10",
                "cn-1", "cn-02", "cn-10", "cn1", "cn9x", "cn10", "cn10a", "z",
        };

        for (size_t i = 0; i < ELEMENTSOF(sorted); i++)
                for (size_t j = 0; j < ELEMENTSOF(sorted); j++) {
                        int c = hostlist_name_compare(sorted[i], sorted[j]);
                        int want = i < j ? -1 : i > j ? 1 : 0;
                        if (c != want)
                                TEST_FAIL("compare(\"%s\", \"%s\") = %d, expected %d",
                                          sorted[i], sorted[j], c, want);
                }
}

static int compare_namep(const void *a, const void *b) {
        return hostlist_name_compare(*(char *const *) a, *(char *const *) b);
}

/* The expander follows libslurm's rules: same names for valid input. */
static void test_matches_libslurm(void) {
        static const char *const inputs[] = {
                "cn[1-3]", "cn-[001-010]", "cn[09-11]", "cn[9-011]", "cn[1-010]", "cn[001-5]",
                "cn[0-10]", "cn[00-10]", "cn[01-02,5]", "cn[5,01-02]", "a[01-02]b[1-2]",
                "x0[1-2]", "cn[000]", "[1-3],[01-02]", "a[1-2]b[1-3]c[7]", "r[1-2]n[08-10]",
                "cn1,cn01,cn001", "a b\tc", "cn[1-3] gpu[1-2],x.y-z_1", "cn[1-2,2-3],cn2",
                "c123[456789]", "n[0-99]x[0-9]",
        };

        for (size_t t = 0; t < ELEMENTSOF(inputs); t++) {
                _cleanup_strv_free_ char **v = NULL;
                hostlist_t hl = slurm_hostlist_create(inputs[t]);
                size_t n = 0, m = 0, k = 0;
                char **w, *h;

                if (!hl) {
                        TEST_FAIL("libslurm rejects \"%s\"", inputs[t]);
                        continue;
                }
                n = (size_t) slurm_hostlist_count(hl);
                w = calloc(n + 1, sizeof(char *));
                while (w && (h = slurm_hostlist_shift(hl)))
                        w[m++] = h;
                slurm_hostlist_destroy(hl);
                qsort(w, m, sizeof(char *), compare_namep);
                for (size_t i = 0; i < m; i++)
                        if (k == 0 || strcmp(w[i], w[k - 1]) != 0)
                                w[k++] = w[i];
                        else
                                free(w[i]);
                if (w)
                        w[k] = NULL;

                CHECK_INT(hostlist_expand(inputs[t], 100000, &v, &n, NULL), 0);
                if (n != k)
                        TEST_FAIL("\"%s\": %zu names, libslurm %zu", inputs[t], n, k);
                for (size_t i = 0; v && i < n && i < k; i++)
                        if (strcmp(v[i], w[i]) != 0) {
                                TEST_FAIL("\"%s\": name %zu \"%s\", libslurm \"%s\"", inputs[t], i, v[i], w[i]);
                                break;
                        }
                strv_free(w);
        }
}

/* libslurm's hostlist of S as a sorted, duplicate-free vector (NULL if it
 * rejects S). */
static char **slurm_names(const char *s, size_t *ret_n) {
        hostlist_t hl = slurm_hostlist_create(s);
        size_t m = 0, k = 0;
        char **w, *h;

        if (!hl)
                return NULL;
        w = calloc((size_t) slurm_hostlist_count(hl) + 1, sizeof(char *));
        while (w && (h = slurm_hostlist_shift(hl)))
                w[m++] = h;
        slurm_hostlist_destroy(hl);
        if (!w)
                return NULL;
        qsort(w, m, sizeof(char *), compare_namep);
        for (size_t i = 0; i < m; i++)
                if (k == 0 || strcmp(w[i], w[k - 1]) != 0)
                        w[k++] = w[i];
                else
                        free(w[i]);
        w[k] = NULL;
        *ret_n = k;
        return w;
}

/* The compressor (no libslurm) writes what both our expander and libslurm
 * read back as exactly the names it was given: random sets mixing padding,
 * prefixes with digits, names without numbers and long runs. */
static void test_compress_matches_libslurm(void) {
        static const char *const prefixes[] = { "cn", "cn-", "r1n", "gpu", "a.b_c", "x0" };
        unsigned seed = 12345;

        for (int t = 0; t < 300; t++) {
                _cleanup_strv_free_ char **names = NULL, **ours = NULL, **theirs = NULL;
                _cleanup_free_ char *s = NULL;
                size_t n = 0, n_ours = 0, n_theirs = 0, count = (size_t) (rand_r(&seed) % 60) + 1;

                names = calloc(count + 1, sizeof(char *));
                CHECK(names != NULL);
                for (size_t i = 0; i < count; i++) {
                        const char *p = prefixes[rand_r(&seed) % ELEMENTSOF(prefixes)];
                        int width = rand_r(&seed) % 4, v = rand_r(&seed) % (t % 3 == 0 ? 1200 : 25);
                        char buf[64];

                        if (rand_r(&seed) % 20 == 0)
                                snprintf(buf, sizeof(buf), "%s-ib", p);
                        else
                                snprintf(buf, sizeof(buf), "%s%0*d", p, width, v);
                        names[n++] = strdup(buf);
                }
                CHECK_INT(hostlist_compress(names, n, &s, NULL), 0);
                qsort(names, n, sizeof(char *), compare_namep);
                size_t k = 0;
                for (size_t i = 0; i < n; i++)
                        if (k == 0 || strcmp(names[i], names[k - 1]) != 0)
                                names[k++] = names[i];
                        else
                                free(names[i]);
                names[k] = NULL;

                CHECK_INT(hostlist_expand(s, 100000, &ours, &n_ours, NULL), 0);
                theirs = slurm_names(s, &n_theirs);
                if (!theirs || n_ours != k || n_theirs != k) {
                        TEST_FAIL("\"%s\": %zu names back, libslurm %zu, given %zu", s, n_ours, n_theirs, k);
                        continue;
                }
                for (size_t i = 0; i < k; i++)
                        if (strcmp(ours[i], names[i]) != 0 || strcmp(theirs[i], names[i]) != 0) {
                                TEST_FAIL("\"%s\": name %zu \"%s\"/\"%s\", given \"%s\"", s, i, ours[i],
                                          theirs[i], names[i]);
                                break;
                        }
        }
}

/* Long lists of scattered nodes stay linear (libslurm's own parser is
 * quadratic there): no timing, only that it completes and is right. */
static void test_scattered(void) {
        _cleanup_strv_free_ char **v = NULL;
        _cleanup_free_ char *list = NULL, *s = NULL;
        size_t len = 0, n = 0;
        FILE *f = open_memstream(&list, &len);

        CHECK(f != NULL);
        for (unsigned i = 30000; i > 0; i--)
                fprintf(f, "%scn[%u]", i == 30000 ? "" : ",", 2 * i);
        fclose(f);
        CHECK_INT(hostlist_expand(list, 30000, &v, &n, NULL), 0);
        CHECK_INT(n, 30000);
        CHECK_STR(v[0], "cn2");
        CHECK_STR(v[n - 1], "cn60000");
        CHECK_INT(hostlist_compress(v, n, &s, NULL), 0);
        CHECK(s && strncmp(s, "cn[2,4,6,", 9) == 0);
}

/* Bounded text for messages: whole when it fits, else cut between nodes
 * with "and N more", every named node a real prefix in node order. */
static void test_compress_bounded(void) {
        _cleanup_strv_free_ char **v = NULL;
        _cleanup_free_ char *whole = NULL, *cut = NULL, *one = NULL;
        _cleanup_strv_free_ char **back = NULL;
        char *three[] = { (char *) "b2", (char *) "a1", (char *) "b2" };
        size_t n = 0, count = 0, nb = 0;

        CHECK_INT(hostlist_compress_bounded(three, 3, 100, &whole, &count), 0);
        CHECK_STR(whole, "a1,b2");
        CHECK_INT(count, 2);
        whole = mfree(whole);

        /* 400 scattered nodes: far longer than 60 bytes compressed. */
        _cleanup_free_ char *list = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&list, &len);
        CHECK(f != NULL);
        for (unsigned i = 1; i < 800; i += 2)
                fprintf(f, "%scn%u", i == 1 ? "" : ",", i);
        fclose(f);
        CHECK_INT(hostlist_expand(list, 1000, &v, &n, NULL), 0);
        CHECK_INT(n, 400);
        CHECK_INT(hostlist_compress_bounded(v, n, 60, &cut, &count), 0);
        CHECK_INT(count, n);
        CHECK(strlen(cut) <= 60);
        char *more = strstr(cut, " and ");
        CHECK(more != NULL);
        if (more) {
                unsigned long rest = strtoul(more + 5, NULL, 10);
                *more = '\0';
                CHECK_INT(hostlist_expand(cut, 1000, &back, &nb, NULL), 0);
                CHECK_INT(nb + rest, n);
                for (size_t i = 0; i < nb; i++)
                        CHECK_STR(back[i], v[i]);
                CHECK(strstr(more + 5, " more") != NULL);
        }

        /* A budget smaller than one node still names one. */
        CHECK_INT(hostlist_compress_bounded(v, n, 3, &one, NULL), 0);
        CHECK(strncmp(one, "cn1 and ", 8) == 0);
}

/* Messages: what is wrong and the count first, the list fitted to the
 * budget after it; no nodes, the head alone. */
static void test_message(void) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
        _cleanup_strv_free_ char **v = NULL;
        size_t n = 0;

        CHECK_INT(hostlist_expand("cn[1-3],cn[5-9],cn11,cn13,cn15,cn17", 100, &v, &n, NULL), 0);
        CHECK_INT(hostlist_message(&a, 100, v, n, "%zu node%s are bad", HOSTLIST_NODES(n)), 0);
        CHECK_STR(a, "12 nodes are bad: cn[1-3,5-9,11,13,15,17]");
        CHECK_INT(hostlist_message(&b, 40, v, n, "%zu node%s are bad", HOSTLIST_NODES(n)), 0);
        CHECK_STR(b, "12 nodes are bad: cn[1-3,5-9] and 4 more");
        CHECK(strlen(b) <= 40);
        /* a head longer than the budget still names one node */
        CHECK_INT(hostlist_message(&c, 5, v, 1, "%zu node%s is bad", HOSTLIST_NODES((size_t) 1)), 0);
        CHECK_STR(c, "1 node is bad: cn1");
        free(c);
        CHECK_INT(hostlist_message(&c, 5, v, 0, "nothing"), 0);
        CHECK_STR(c, "nothing");
}

/* strv_pack: the same names in one block, freed with free(); empty too. */
static void test_strv_pack(void) {
        char **v = NULL, **empty = NULL;
        size_t n = 0;

        if (hostlist_expand("cn[1-3],gpu[08-10]", 100, &v, &n, NULL) < 0) {
                TEST_FAIL("expand failed");
                return;
        }
        CHECK_INT(strv_pack(&v, n), 0);
        CHECK_INT(strv_length(v), 6);
        CHECK_STR(v[0], "cn1");
        CHECK_STR(v[2], "cn3");
        CHECK_STR(v[5], "gpu10");
        CHECK(v[6] == NULL);
        /* one block: the strings follow the array */
        CHECK((char *) v[0] == (char *) (v + 7));
        CHECK(v[5] + strlen(v[5]) + 1 - (char *) v == (ptrdiff_t) (7 * sizeof(char *) + 3 * 4 + 3 * 6));
        free(v);

        empty = calloc(1, sizeof(char *));
        CHECK(empty != NULL);
        CHECK_INT(strv_pack(&empty, 0), 0);
        CHECK(empty && empty[0] == NULL);
        free(empty);
}

int main(void) {
        RUN(test_ranges);
        RUN(test_lists);
        RUN(test_mixed);
        RUN(test_padding);
        RUN(test_duplicates);
        RUN(test_empty);
        RUN(test_bad_brackets);
        RUN(test_illegal_characters);
        RUN(test_long_names);
        RUN(test_over_cap);
        RUN(test_at_cap);
        RUN(test_text_cap);
        RUN(test_nothing_printed);
        RUN(test_compress);
        RUN(test_roundtrip);
        RUN(test_100k);
        RUN(test_name_order);
        RUN(test_matches_libslurm);
        RUN(test_compress_matches_libslurm);
        RUN(test_scattered);
        RUN(test_compress_bounded);
        RUN(test_message);
        RUN(test_strv_pack);
        return test_done();
}
