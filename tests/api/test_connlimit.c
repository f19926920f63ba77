/* test_connlimit.c - the listener's connection counting (http/connlimit.c) on its own: the
 * per-address cap, the total cap, IPv6 counted by /64, IPv4-mapped IPv6 counted as IPv4. (A unit
 * test; it lives beside the API tests because the API listener is what it protects.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "http/connlimit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* A peer address as accept() gives it: IPv6 when ip holds a ':' (IPv4-mapped ones too), else
 * IPv4. */
static struct sockaddr_storage addr(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
    }
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void test_per_address_cap(void **state)
{
    (void)state;
    disp_connlimit_t *l = disp_connlimit_create(100, 2);
    struct sockaddr_storage a = addr("192.0.2.1"), b = addr("192.0.2.2");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(disp_connlimit_check(l, SA(a)), DISP_CONN_OK);
        disp_connlimit_add(l, SA(a));
    }
    assert_int_equal(disp_connlimit_check(l, SA(a)), DISP_CONN_PER_IP);
    assert_int_equal(disp_connlimit_check(l, SA(b)), DISP_CONN_OK);
    disp_connlimit_remove(l, SA(a));
    assert_int_equal(disp_connlimit_check(l, SA(a)), DISP_CONN_OK);
    assert_int_equal(disp_connlimit_open_from(l, SA(a)), 1);
    disp_connlimit_remove(l, SA(a));
    assert_int_equal(disp_connlimit_open_from(l, SA(a)), 0);
    assert_int_equal(disp_connlimit_open(l), 0);
    disp_connlimit_destroy(l);
}

static void test_total_cap(void **state)
{
    (void)state;
    disp_connlimit_t *l = disp_connlimit_create(3, 0); /* 0: no per-address limit */
    struct sockaddr_storage a = addr("198.51.100.7");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(disp_connlimit_check(l, SA(a)), DISP_CONN_OK);
        disp_connlimit_add(l, SA(a));
    }
    struct sockaddr_storage other = addr("198.51.100.8");
    assert_int_equal(disp_connlimit_check(l, SA(other)), DISP_CONN_CAPACITY);
    /* Addresses of other families count in the total only. */
    disp_connlimit_remove(l, SA(a));
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    disp_connlimit_add(l, (const struct sockaddr *)&un);
    assert_int_equal(disp_connlimit_open(l), 3);
    assert_int_equal(disp_connlimit_open_from(l, SA(a)), 2);
    disp_connlimit_remove(l, (const struct sockaddr *)&un);
    disp_connlimit_add(l, NULL);
    assert_int_equal(disp_connlimit_check(l, SA(other)), DISP_CONN_CAPACITY);
    disp_connlimit_destroy(l);
}

static void test_ipv6_by_prefix(void **state)
{
    (void)state;
    disp_connlimit_t *l = disp_connlimit_create(100, 2);
    struct sockaddr_storage a = addr("2001:db8:1:2::1"), b = addr("2001:db8:1:2:ffff::9"),
                            c = addr("2001:db8:1:3::1");
    disp_connlimit_add(l, SA(a));
    disp_connlimit_add(l, SA(b)); /* same /64 */
    assert_int_equal(disp_connlimit_check(l, SA(a)), DISP_CONN_PER_IP);
    assert_int_equal(disp_connlimit_check(l, SA(c)), DISP_CONN_OK);
    /* An IPv4-mapped address is its IPv4 address, not a /64 shared with every IPv4 client. */
    struct sockaddr_storage m1 = addr("::ffff:192.0.2.1"), m2 = addr("::ffff:192.0.2.2"),
                            p1 = addr("192.0.2.1");
    disp_connlimit_add(l, SA(m1));
    disp_connlimit_add(l, SA(p1));
    assert_int_equal(disp_connlimit_check(l, SA(m1)), DISP_CONN_PER_IP);
    assert_int_equal(disp_connlimit_check(l, SA(m2)), DISP_CONN_OK);
    disp_connlimit_destroy(l); /* with entries left: frees them */
}

/* Many addresses at once: every one keeps its own count (chains, removal from the middle). */
static void test_many_addresses(void **state)
{
    (void)state;
    disp_connlimit_t *l = disp_connlimit_create(5000, 3);
    char ip[32];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 2000; i++) {
            snprintf(ip, sizeof ip, "10.0.%d.%d", i / 256, i % 256);
            struct sockaddr_storage a = addr(ip);
            disp_connlimit_add(l, SA(a));
        }
    }
    assert_int_equal(disp_connlimit_open(l), 4000);
    for (int i = 0; i < 2000; i += 2) {
        snprintf(ip, sizeof ip, "10.0.%d.%d", i / 256, i % 256);
        struct sockaddr_storage a = addr(ip);
        disp_connlimit_remove(l, SA(a));
        disp_connlimit_remove(l, SA(a));
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(ip, sizeof ip, "10.0.%d.%d", i / 256, i % 256);
        struct sockaddr_storage a = addr(ip);
        assert_int_equal(disp_connlimit_open_from(l, SA(a)), i % 2 ? 2 : 0);
    }
    assert_int_equal(disp_connlimit_open(l), 2000);
    disp_connlimit_destroy(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_address_cap),
        cmocka_unit_test(test_total_cap),
        cmocka_unit_test(test_ipv6_by_prefix),
        cmocka_unit_test(test_many_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
