/* fixture.c - see fixture.h. */
#include "tests/expo/fixture.h"
#include "core/xalloc.h"
#include "tests/support/harness.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    return strcmp(((const fx_t *)a)->name, ((const fx_t *)b)->name);
}

static void parse(fx_t *f, char *raw, size_t len)
{
    f->raw = raw;
    char *p = raw, *end = raw + len;
    while (p < end && *p != '\n' && f->nkv < 32) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        *nl = '\0';
        char *sep = strpbrk(p, ":=");
        if (sep) {
            bool colon = *sep == ':';
            *sep = '\0';
            char *v = sep + 1;
            if (colon && *v == ' ')
                v++;
            f->keys[f->nkv] = p;
            f->vals[f->nkv++] = v;
        }
        p = nl + 1;
    }
    if (p < end && *p == '\n')
        p++;
    f->body = p < end ? p : end;
    f->len = (size_t)(end - f->body);
}

size_t fx_load_dir(const char *dir, fx_t **out)
{
    char path[512];
    th_fixture(dir, path, sizeof path);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    fx_t *v = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char fp[1024];
        snprintf(fp, sizeof fp, "%s/%s", path, e->d_name);
        FILE *fh = fopen(fp, "rb");
        if (!fh)
            continue;
        fseek(fh, 0, SEEK_END);
        long sz = ftell(fh);
        fseek(fh, 0, SEEK_SET);
        char *raw = xmalloc((size_t)sz + 1);
        size_t got = fread(raw, 1, (size_t)sz, fh);
        raw[got] = '\0';
        fclose(fh);
        v = xrealloc(v, (n + 1) * sizeof *v);
        memset(&v[n], 0, sizeof v[n]);
        snprintf(v[n].name, sizeof v[n].name, "%s", e->d_name);
        parse(&v[n], raw, got);
        n++;
    }
    closedir(d);
    qsort(v, n, sizeof *v, cmp);
    *out = v;
    return n;
}

void fx_free_all(fx_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(f[i].raw);
    free(f);
}

size_t fx_each(const char *dir, void (*check)(const fx_t *f))
{
    fx_t *fx;
    size_t n = fx_load_dir(dir, &fx);
    for (size_t i = 0; i < n; i++)
        check(&fx[i]);
    fx_free_all(fx, n);
    return n;
}

const char *fx_get(const fx_t *f, const char *key, const char *def)
{
    for (size_t i = 0; i < f->nkv; i++)
        if (strcmp(f->keys[i], key) == 0)
            return f->vals[i];
    return def;
}

long fx_int(const fx_t *f, const char *key, long def)
{
    const char *v = fx_get(f, key, NULL);
    return v ? strtol(v, NULL, 10) : def;
}
