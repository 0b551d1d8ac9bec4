/* httpmetrics: a minimal HTTP/1.0 responder serving GET /metrics on a
 * loopback address (one request per connection, bounded, then close). */
#pragma once

#include <systemd/sd-event.h>

#include "util/macro.h"

struct httpmetrics;

/* Renders the body (malloc'ed) for one GET /metrics; 0 or a negative errno. */
typedef int (*httpmetrics_render_t)(void *userdata, char **ret_text);

/* Listen on ADDRESS ("127.0.0.1:PORT"). On failure *ret_error (malloc'ed)
 * says why. */
int httpmetrics_new(sd_event *event, const char *address, httpmetrics_render_t render, void *userdata,
                    struct httpmetrics **ret, char **ret_error);
struct httpmetrics *httpmetrics_free(struct httpmetrics *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct httpmetrics *, httpmetrics_free);
