/* test_templates.c - pipeline/templates.c on its own: locales and their fallback (pt-BR -> pt ->
 * the default texts, field by field; the device's locale, then the event's, then the default),
 * rich fields into the Expo message, checks of every value, Expo's payload budget, references. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "pipeline/templates.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F(loc, name, field, value)                                                                 \
    {                                                                                              \
        loc, name, field, value                                                                    \
    }

static disp_templates_t *make(const disp_template_field_t *f, size_t n, const char *notify,
                              const char *default_locale)
{
    char err[512] = "";
    disp_templates_opts_t o = {.notify = notify ? notify : "COMPLETED,FAILED",
                               .default_locale = default_locale,
                               .fields = f,
                               .nfields = n};
    disp_templates_t *t = disp_templates_create(&o, err, sizeof err);
    if (t == NULL)
        fail_msg("templates refused: %s", err);
    return t;
}

/* The error for fields that must be refused. */
static void refused(const disp_template_field_t *f, size_t n, const char *default_locale,
                    const char *want)
{
    char err[512] = "";
    disp_templates_opts_t o = {
        .notify = "COMPLETED,FAILED", .default_locale = default_locale, .fields = f, .nfields = n};
    disp_templates_t *t = disp_templates_create(&o, err, sizeof err);
    if (t != NULL || strstr(err, want) == NULL)
        fail_msg("want an error with \"%s\", got %s: %s", want, t ? "templates" : "error", err);
}

static queue_event_t event(queue_status_t st, queue_event_kind_t k, const char *locale)
{
    queue_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = k;
    ev.status = st;
    ev.job_id = "job-1";
    ev.batch_job_id = k == QUEUE_EV_BATCH ? "job-1" : NULL;
    ev.user_id = "u1";
    ev.final_s3_key = "final/u1/café 1+1.jpg";
    ev.completed_count = ev.total_count = 3;
    ev.locale = locale;
    return ev;
}

/* Renders ev for a device of this locale, as the pipeline does. */
static void render_for(const disp_templates_t *t, const queue_event_t *ev, const char *device,
                       disp_rendered_t *r)
{
    disp_rendered_init(r);
    assert_int_equal(disp_templates_render(t, ev, disp_templates_resolve(t, device, ev->locale), r),
                     0);
}

static const disp_template_field_t localized[] = {
    F("pt", "COMPLETED", "title", "Pronta!"),
    F("pt", "COMPLETED", "body", "Sua foto está pronta"),
    F("PT-br", "COMPLETED", "title", "Prontinha!"), /* only the title: the body comes from pt */
    F("fr", "COMPLETED", "title", "Prête !"),
    F("fr", "COMPLETED", "body", "Votre photo est prête"),
    F("fr", "COMPLETED", "subtitle", ""), /* explicitly none, though the default has one */
    F(NULL, "COMPLETED", "subtitle", "Default subtitle"),
    F("fr", "BATCH_COMPLETED", "title", "Lot terminé : {count} photos"),
};

static void test_fallback_chain(void **state)
{
    (void)state;
    disp_templates_t *t = make(localized, sizeof localized / sizeof localized[0], NULL, NULL);
    queue_event_t ev = event(QUEUE_ST_COMPLETED, QUEUE_EV_JOB, NULL);
    static const struct {
        const char *device, *locale, *title, *body, *subtitle;
    } cases[] = {
        {"pt-BR", "pt-BR", "Prontinha!", "Sua foto está pronta", "Default subtitle"},
        {"pt-br", "pt-BR", "Prontinha!", "Sua foto está pronta", "Default subtitle"},
        {"pt-PT", "pt", "Pronta!", "Sua foto está pronta", "Default subtitle"},
        {"pt", "pt", "Pronta!", "Sua foto está pronta", "Default subtitle"},
        {"fr-CA", "fr", "Prête !", "Votre photo est prête", ""},
        {"de", "en", "Photo Editor - Ready!", "Your enhanced photo is ready to download",
         "Default subtitle"},
        {NULL, "en", "Photo Editor - Ready!", "Your enhanced photo is ready to download",
         "Default subtitle"},
        {"not_a_tag", "en", "Photo Editor - Ready!", "Your enhanced photo is ready to download",
         "Default subtitle"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        disp_rendered_t r;
        render_for(t, &ev, cases[i].device, &r);
        assert_string_equal(r.locale, cases[i].locale);
        assert_string_equal(buf_cstr(&r.title), cases[i].title);
        assert_string_equal(buf_cstr(&r.body), cases[i].body);
        assert_string_equal(buf_cstr(&r.subtitle), cases[i].subtitle);
        assert_string_equal(r.sound, "default"); /* never localized: from the default texts */
        disp_rendered_cleanup(&r);
    }
    /* A batch: the locale's BATCH_ template answers what it sets, the default BATCH_ the rest. */
    ev = event(QUEUE_ST_COMPLETED, QUEUE_EV_BATCH, NULL);
    disp_rendered_t r;
    render_for(t, &ev, "fr", &r);
    assert_string_equal(buf_cstr(&r.title), "Lot terminé : 3 photos");
    assert_string_equal(buf_cstr(&r.body), "All 3 photos are ready for download");
    assert_non_null(strstr(buf_cstr(&r.data), "\"action\":\"view_batch\""));
    disp_rendered_cleanup(&r);
    /* pt has no BATCH_ template: its COMPLETED texts, over the default BATCH_COMPLETED's data. */
    render_for(t, &ev, "pt", &r);
    assert_string_equal(buf_cstr(&r.title), "Pronta!");
    assert_non_null(strstr(buf_cstr(&r.data), "\"type\":\"batch_completion\""));
    disp_rendered_cleanup(&r);
    disp_templates_destroy(t);
}

/* The device's locale wins, then the event's, then the default; the default locale counts as
 * having templates (an English device never gets the event's French). */
static void test_resolution_order(void **state)
{
    (void)state;
    disp_templates_t *t = make(localized, sizeof localized / sizeof localized[0], NULL, NULL);
    assert_string_equal(disp_templates_resolve(t, "fr", "pt-BR"), "fr");
    assert_string_equal(disp_templates_resolve(t, "de-AT", "pt-BR"), "pt-BR");
    assert_string_equal(disp_templates_resolve(t, NULL, "fr-BE"), "fr");
    assert_string_equal(disp_templates_resolve(t, "", "fr"), "fr");
    assert_string_equal(disp_templates_resolve(t, "en-GB", "fr"), "en");
    assert_string_equal(disp_templates_resolve(t, "de", "es"), "en");
    assert_string_equal(disp_templates_resolve(t, NULL, NULL), "en");
    queue_event_t ev = event(QUEUE_ST_COMPLETED, QUEUE_EV_JOB, "fr");
    disp_rendered_t r;
    render_for(t, &ev, NULL, &r); /* a device without a locale: the event's */
    assert_string_equal(buf_cstr(&r.title), "Prête !");
    disp_rendered_cleanup(&r);
    render_for(t, &ev, "en-US", &r); /* an English device: its own */
    assert_string_equal(buf_cstr(&r.title), "Photo Editor - Ready!");
    disp_rendered_cleanup(&r);
    disp_templates_destroy(t);
    /* Default texts in French: a French device gets them, an English one falls to the event. */
    static const disp_template_field_t fr_default[] = {
        F(NULL, "COMPLETED", "title", "Prête !"),
        F("en", "COMPLETED", "title", "Ready!"),
    };
    t = make(fr_default, 2, NULL, "FR");
    assert_string_equal(disp_templates_resolve(t, "fr-CH", "en"), "fr");
    assert_string_equal(disp_templates_resolve(t, "de", "en-US"), "en");
    ev = event(QUEUE_ST_COMPLETED, QUEUE_EV_JOB, NULL);
    render_for(t, &ev, "de", &r);
    assert_string_equal(r.locale, "fr");
    assert_string_equal(buf_cstr(&r.title), "Prête !");
    disp_rendered_cleanup(&r);
    disp_templates_destroy(t);
}

static void test_rich_fields(void **state)
{
    (void)state;
    static const disp_template_field_t rich[] = {
        F(NULL, "COMPLETED", "image", "https://cdn.example.com/{finalS3Key}?u={userId}"),
        F(NULL, "COMPLETED", "icon", "ic_photo_ready"),
        F(NULL, "COMPLETED", "tag", "job-{jobId}"),
        F(NULL, "COMPLETED", "interruption_level", "time-sensitive"),
        F(NULL, "COMPLETED", "badge", "0"),
        F(NULL, "COMPLETED", "mutable_content", "true"),
        F(NULL, "COMPLETED", "content_available", "false"),
        F(NULL, "COMPLETED", "ttl", "3600"),
        F("fr", "COMPLETED", "image", "https://cdn.example.com/fr/{finalS3Key}"),
        F("fr", "COMPLETED", "badge", ""), /* cleared for French devices */
    };
    disp_templates_t *t = make(rich, sizeof rich / sizeof rich[0], NULL, NULL);
    queue_event_t ev = event(QUEUE_ST_COMPLETED, QUEUE_EV_JOB, NULL);
    disp_rendered_t r;
    render_for(t, &ev, NULL, &r);
    expo_msg_t m;
    disp_rendered_msg(&r, "ExponentPushToken[abc]", "job-1:COMPLETED", &m);
    buf_t b = BUF_INIT;
    assert_int_equal(expo_msg_encode(&m, &b), 0);
    assert_non_null(strstr(buf_cstr(&b), "\"badge\":0,\"ttl\":3600,"));
    assert_non_null(strstr(buf_cstr(&b), "\"richContent\":{\"image\":\"https://cdn.example.com/"
                                         "final/u1/caf%C3%A9%201%2B1.jpg?u=u1\"},"
                                         "\"icon\":\"ic_photo_ready\",\"tag\":\"job-job-1\","
                                         "\"mutableContent\":true,"
                                         "\"interruptionLevel\":\"time-sensitive\""));
    assert_null(strstr(buf_cstr(&b), "_contentAvailable"));
    disp_rendered_cleanup(&r);
    buf_reset(&b);
    render_for(t, &ev, "fr", &r);
    disp_rendered_msg(&r, "ExponentPushToken[abc]", "job-1:COMPLETED", &m);
    assert_int_equal(expo_msg_encode(&m, &b), 0);
    assert_non_null(strstr(buf_cstr(&b), "\"image\":\"https://cdn.example.com/fr/final/"));
    assert_null(strstr(buf_cstr(&b), "\"badge\""));
    assert_non_null(strstr(buf_cstr(&b), "\"icon\":\"ic_photo_ready\""));
    disp_rendered_cleanup(&r);
    /* No key: the image URL ends where the placeholder was (a fallback can stand in). */
    ev.final_s3_key = NULL;
    render_for(t, &ev, NULL, &r);
    assert_string_equal(buf_cstr(&r.image), "https://cdn.example.com/?u=u1");
    disp_rendered_cleanup(&r);
    buf_cleanup(&b);
    disp_templates_destroy(t);
}

/* A rendering reused for another event and locale (the pipeline keeps them with its jobs) holds
 * exactly what a fresh one would: every field is replaced, none is left from before. */
static void test_rendering_reused(void **state)
{
    (void)state;
    static const disp_template_field_t f[] = {
        F(NULL, "COMPLETED", "image", "https://cdn.example.com/{finalS3Key}"),
        F(NULL, "COMPLETED", "icon", "ic_photo_ready"),
        F(NULL, "COMPLETED", "badge", "2"),
        F(NULL, "COMPLETED", "body",
          "{count} photos {jobId} {message|no message} {totalCount}/{completedCount}"),
        F(NULL, "FAILED", "title", "Failed {{jobId}} {"),
        F("fr", "COMPLETED", "title", "Prête : {jobId}"),
        F("fr", "COMPLETED", "badge", ""),
        F("fr", "COMPLETED", "icon", ""),
    };
    disp_templates_t *t = make(f, sizeof f / sizeof f[0], NULL, NULL);
    queue_event_t a = event(QUEUE_ST_COMPLETED, QUEUE_EV_JOB, NULL);
    queue_event_t b = event(QUEUE_ST_FAILED, QUEUE_EV_BATCH, "fr");
    a.total_count = 1234567890;
    a.completed_count = -1;
    const queue_event_t *evs[] = {&a, &b, &a, &b};
    const char *devs[] = {NULL, "fr", "fr", NULL};
    disp_rendered_t reused;
    disp_rendered_init(&reused);
    for (size_t i = 0; i < 4; i++) {
        disp_rendered_t fresh;
        render_for(t, evs[i], devs[i], &fresh);
        assert_int_equal(disp_templates_render(t, evs[i],
                                               disp_templates_resolve(t, devs[i], evs[i]->locale),
                                               &reused),
                         0);
        expo_msg_t m1, m2;
        buf_t b1 = BUF_INIT, b2 = BUF_INIT;
        disp_rendered_msg(&fresh, "ExponentPushToken[abc]", "k", &m1);
        disp_rendered_msg(&reused, "ExponentPushToken[abc]", "k", &m2);
        assert_int_equal(expo_msg_encode(&m1, &b1), 0);
        assert_int_equal(expo_msg_encode(&m2, &b2), 0);
        assert_string_equal(buf_cstr(&b2), buf_cstr(&b1));
        assert_string_equal(reused.locale, fresh.locale);
        if (i == 0)
            assert_non_null(strstr(buf_cstr(&b1), "\"body\":\"1234567890 photos job-1 no message "
                                                  "1234567890/\""));
        if (i == 1) /* "{{jobId}" names no placeholder (nothing); a '{' closing nothing stays */
            assert_non_null(strstr(buf_cstr(&b1), "\"title\":\"Failed } {\""));
        buf_cleanup(&b1);
        buf_cleanup(&b2);
        disp_rendered_cleanup(&fresh);
    }
    disp_rendered_cleanup(&reused);
    disp_templates_destroy(t);
}

static void test_values_checked(void **state)
{
    (void)state;
    static const struct {
        disp_template_field_t f;
        const char *want;
    } bad[] = {
        {F(NULL, "COMPLETED", "priority", "urgent"), "priority must be default, normal or high"},
        {F(NULL, "COMPLETED", "interruption_level", "loud"),
         "must be active, critical, passive or time-sensitive"},
        {F(NULL, "COMPLETED", "badge", "-1"), "badge must be a whole number from 0 to 2147483647"},
        {F(NULL, "COMPLETED", "badge", "2147483648"), "badge must be a whole number"},
        {F(NULL, "COMPLETED", "badge", "1.5"), "badge must be a whole number"},
        {F(NULL, "COMPLETED", "ttl", "2419201"), "ttl must be a whole number from 0 to 2419200"},
        {F(NULL, "COMPLETED", "ttl", "99999999999999999999"), "ttl must be a whole number"},
        {F(NULL, "COMPLETED", "mutable_content", "yes"), "mutable_content must be true or false"},
        {F(NULL, "COMPLETED", "content_available", "1"), "content_available must be true or"},
        {F(NULL, "COMPLETED", "icon", "Ic-Photo"), "icon must name an Android drawable"},
        {F(NULL, "COMPLETED", "image", "ftp://x/{finalS3Key}"), "image must be an http://"},
        {F(NULL, "COMPLETED", "image", "https://{userId}.example.com/"), "with a host"},
        {F(NULL, "COMPLETED", "image", "https://x.test/a b.jpg"), "without blanks"},
        {F(NULL, "COMPLETED", "image", "https://x.test/{finalKey}"),
         "unknown placeholder {finalKey}"},
        {F(NULL, "COMPLETED", "colour", "red"),
         "templates.COMPLETED.colour: unknown template field"},
        {F("pt_BR", "COMPLETED", "title", "x"),
         "templates.pt_BR.COMPLETED.title: \"pt_BR\" is not a BCP 47 language tag"},
        {F("fr", "COMPLETED", "badge", "x"), "templates.fr.COMPLETED.badge: badge must be"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused(&bad[i].f, 1, NULL, bad[i].want);
    refused(NULL, 0, "e_n", "templates.default_locale: \"e_n\" is not a BCP 47 language tag");
    /* "" clears any field, whatever its type. */
    static const disp_template_field_t clear[] = {F(NULL, "COMPLETED", "badge", ""),
                                                  F(NULL, "COMPLETED", "image", ""),
                                                  F(NULL, "COMPLETED", "priority", "")};
    disp_templates_destroy(make(clear, 3, NULL, NULL));
}

/* The budget: over 4096 bytes before any placeholder value is an error; over it only with the
 * longest values is one warning per status and kind, naming the locales and placeholders. The
 * built-in texts fit. */
static void test_payload_budget(void **state)
{
    (void)state;
    disp_templates_t *t = make(NULL, 0, "COMPLETED,FAILED,PROCESSING,EDITING,QUEUED", NULL);
    assert_string_equal(disp_templates_warnings(t), "");
    disp_templates_destroy(t);

    char *big = malloc(4001);
    memset(big, 'x', 4000);
    big[4000] = '\0';
    disp_template_field_t over[] = {F("fr", "FAILED", "body", big)};
    refused(over, 1, NULL, "templates: FAILED events in locale fr: the notification is 4");
    refused(over, 1, NULL, "bytes before any placeholder value, over Expo's 4096-byte limit");
    /* Not notifying, not checked. */
    char err[256];
    disp_templates_opts_t o = {.notify = "COMPLETED", .fields = over, .nfields = 1};
    t = disp_templates_create(&o, err, sizeof err);
    assert_non_null(t);
    disp_templates_destroy(t);

    big[2000] = '\0';
    disp_template_field_t risky[] = {
        F(NULL, "COMPLETED", "image", "https://cdn.example.com/{finalS3Key}"),
        F("fr", "COMPLETED", "body", "{message}"),
        F("pt", "COMPLETED", "title", big),
    };
    t = make(risky, 3, NULL, NULL);
    const char *w = disp_templates_warnings(t);
    const char *upto = strstr(w, "templates: COMPLETED events in locales fr, pt: up to ");
    assert_non_null(upto);
    /* The figure and the placeholders are the largest locale's: pt's 2,000-byte title with the
     * image URL whose 1,024-byte key triples when percent-encoded. */
    long most =
        strtol(upto + strlen("templates: COMPLETED events in locales fr, pt: up to "), NULL, 10);
    assert_true(most > 2000 + 3 * 1024 && most < 8192);
    assert_non_null(strstr(w, " bytes with the longest placeholder values ({finalS3Key} in "
                              "image), over"));
    assert_non_null(strstr(w, "over Expo's 4096-byte limit; such notifications fail with "
                              "MessageTooBig\n"));
    assert_null(strstr(w, "FAILED"));                           /* FAILED fits in every locale */
    assert_int_equal(strchr(w, '\n') - w + 1, (long)strlen(w)); /* one line */
    disp_templates_destroy(t);
    /* One locale over it: named alone, with its placeholders. */
    disp_template_field_t one[] = {
        F("fr", "FAILED", "body", "{message} {error} {message} {error}")};
    t = make(one, 1, NULL, NULL);
    w = disp_templates_warnings(t);
    assert_non_null(strstr(w, "templates: FAILED events in locale fr: up to "));
    assert_non_null(strstr(w, "({message}, {error}), over"));
    assert_non_null(strstr(w, "templates: batch FAILED events in locale fr: up to "));
    assert_null(strstr(w, "locale en"));
    disp_templates_destroy(t);
    free(big);
}

/* An event keeps the templates it was accepted with: a reload drops the daemon's reference, the
 * event's keeps them alive until it renders (ASan checks the use). */
static void test_references(void **state)
{
    (void)state;
    disp_templates_t *t = make(localized, sizeof localized / sizeof localized[0], NULL, NULL);
    disp_templates_t *held = disp_templates_ref(t);
    assert_ptr_equal(held, t);
    disp_templates_destroy(t); /* the daemon's reference */
    queue_event_t ev = event(QUEUE_ST_COMPLETED, QUEUE_EV_JOB, NULL);
    disp_rendered_t r;
    render_for(held, &ev, "fr", &r);
    disp_templates_destroy(held);                       /* the last one */
    assert_string_equal(buf_cstr(&r.title), "Prête !"); /* the rendering owns its texts */
    disp_rendered_cleanup(&r);
    disp_templates_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fallback_chain), cmocka_unit_test(test_resolution_order),
        cmocka_unit_test(test_rich_fields),    cmocka_unit_test(test_rendering_reused),
        cmocka_unit_test(test_values_checked), cmocka_unit_test(test_payload_budget),
        cmocka_unit_test(test_references),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
