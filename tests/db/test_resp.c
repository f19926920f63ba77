/* test_resp.c - the RESP request writer (db/resp.c) against hiredis' own formatter: the same
 * bytes for arguments of every length class (0, 1 and multi-digit lengths, binary bytes with CR,
 * LF and NUL inside), and sizes that match what is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "db/resp.h"

#include <hiredis/hiredis.h>

#include <stdlib.h>
#include <string.h>

/* Writes argv with resp.c and compares it with redisFormatCommandArgv. */
static void check(int argc, const char **argv, const size_t *lens)
{
    size_t size = resp_argc_size((size_t)argc);
    for (int i = 0; i < argc; i++)
        size += resp_arg_size(lens[i]);
    char *mine = malloc(size + 1);
    mine[size] = 'X'; /* must stay: nothing written past the size */
    char *p = resp_put_argc(mine, (size_t)argc);
    for (int i = 0; i < argc; i++)
        p = resp_put_arg(p, argv[i], lens[i]);
    assert_int_equal(p - mine, size);
    assert_int_equal(mine[size], 'X');
    char *ref = NULL;
    int n = redisFormatCommandArgv(&ref, argc, argv, lens);
    assert_int_equal(n, size);
    assert_memory_equal(mine, ref, size);
    redisFreeCommand(ref);
    free(mine);
}

static void test_lengths(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 9, 10, 99, 100, 999, 1000, 65536, 1000000};
    size_t n = sizeof sizes / sizeof sizes[0];
    char *big = malloc(1000000);
    for (size_t i = 0; i < 1000000; i++)
        big[i] = (char)(i * 7 + 3); /* every byte value, CR LF NUL included */
    const char *argv[12];
    size_t lens[12];
    argv[0] = "SET";
    lens[0] = 3;
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = big;
        lens[i + 1] = sizes[i];
        check(1, argv + 1 + i, lens + 1 + i);
    }
    check((int)n + 1, argv, lens);
    free(big);
}

static void test_argc_digits(void **state)
{
    (void)state;
    enum { MAX = 1200 };
    const char **argv = malloc(MAX * sizeof *argv);
    size_t *lens = malloc(MAX * sizeof *lens);
    for (int i = 0; i < MAX; i++) {
        argv[i] = "a\r\nb";
        lens[i] = (size_t)(i % 5);
    }
    static const int counts[] = {1, 9, 10, 11, 99, 100, 101, 999, 1000, MAX};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        check(counts[i], argv, lens);
    free(argv);
    free(lens);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_argc_digits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
