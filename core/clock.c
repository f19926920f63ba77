/* clock.c - time sources. Everything that decides by time takes a clk_t so tests use a fake. */
#include "core/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t clk_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t clk_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t clk_mono_ms(void)
{
    return clk_mono_us() / 1000u;
}

static int64_t sys_wall(void *arg)
{
    (void)arg;
    return clk_wall_ms();
}

static uint64_t sys_mono(void *arg)
{
    (void)arg;
    return clk_mono_ms();
}

const clk_t *clk_system(void)
{
    static const clk_t sys = {sys_wall, sys_mono, NULL};
    return &sys;
}

/* Days since 1970-01-01 -> civil date (proleptic Gregorian; H. Hinnant's civil_from_days). */
static void civil(int64_t days, int *y, int *m, int *d)
{
    days += 719468;
    int64_t era = days / 146097;
    unsigned doe = (unsigned)(days - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + (unsigned)era * 400) + (*m <= 2);
}

static char *two(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

/* Runs for every trace record and log line: digits by hand, no gmtime_r/snprintf. Years past
 * 9999 and instants before 1970 take the libc path (same text). */
void clk_iso8601_ms(int64_t wall_ms, char *out, size_t outlen)
{
    if (wall_ms < 0 || wall_ms >= INT64_C(253402300800000) || outlen < 25) {
        time_t s = (time_t)(wall_ms / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(wall_ms % 1000));
        return;
    }
    int64_t s = wall_ms / 1000;
    unsigned sod = (unsigned)(s % 86400), ms = (unsigned)(wall_ms % 1000);
    int y, m, d;
    civil(s / 86400, &y, &m, &d);
    char *p = two(two(out, (unsigned)y / 100), (unsigned)y % 100);
    *p++ = '-';
    p = two(p, (unsigned)m);
    *p++ = '-';
    p = two(p, (unsigned)d);
    *p++ = 'T';
    p = two(p, sod / 3600);
    *p++ = ':';
    p = two(p, sod / 60 % 60);
    *p++ = ':';
    p = two(p, sod % 60);
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    p = two(p, ms);
    *p++ = 'Z';
    *p = '\0';
}

void clk_iso8601(int64_t wall_s, char *out, size_t outlen)
{
    time_t s = (time_t)wall_s;
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int clk_parse_iso8601(const char *s, int64_t *wall_ms)
{
    int y, mo, d, h, mi, se, ms = 0;
    if (strlen(s) < 19 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != ' ') || digits(s + 11, 2, &h) ||
        s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &se))
        return -1;
    const char *p = s + 19;
    if (*p == '.') {
        int scale = 100;
        for (p++; *p >= '0' && *p <= '9'; p++) {
            ms += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (!(strcmp(p, "Z") == 0 || strcmp(p, "+00:00") == 0 || *p == '\0'))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    *wall_ms = (int64_t)timegm(&tm) * 1000 + ms;
    return 0;
}

static int64_t fake_wall(void *arg)
{
    return ((clk_fake_t *)arg)->wall;
}

static uint64_t fake_mono(void *arg)
{
    return ((clk_fake_t *)arg)->mono;
}

void clk_fake_init(clk_fake_t *f, int64_t wall_ms)
{
    f->clk.wall_ms = fake_wall;
    f->clk.mono_ms = fake_mono;
    f->clk.arg = f;
    f->wall = wall_ms;
    f->mono = 1000000;
}

void clk_fake_advance(clk_fake_t *f, uint64_t ms)
{
    f->wall += (int64_t)ms;
    f->mono += ms;
}
