/* admin.h - the admin listener's handler: /healthz, /readyz and /metrics.
 * Meant for loopback (admin.listen defaults to 127.0.0.1). Loop-thread only. */
#ifndef HERALD_DISPATCHER_ADMIN_H
#define HERALD_DISPATCHER_ADMIN_H

#include "core/http.h"
#include "core/metrics.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct disp_admin disp_admin_t;

/* A readiness check: returns true when ready, else writes a short reason. */
typedef bool (*disp_ready_fn)(void *arg, char *reason, size_t reasonlen);

disp_admin_t *disp_admin_create(metric_reg_t *metrics); /* metrics borrowed */
void disp_admin_destroy(disp_admin_t *a);
/* Adds a dependency to /readyz (name copied, arg borrowed). */
void disp_admin_add_check(disp_admin_t *a, const char *name, disp_ready_fn fn, void *arg);
/* While draining, /readyz answers 503 so load balancers stop sending traffic. */
void disp_admin_set_draining(disp_admin_t *a, bool draining);
void disp_admin_handle(disp_admin_t *a, http_req_t *req);

#endif
