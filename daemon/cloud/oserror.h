/* oserror.h - an OpenStack API error: HTTP status, the cloud's message, request id. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util/macro.h"

/* Largest response body any parser accepts (a page of 1000 detailed servers
 * is ~1.5 MiB). The HTTP layer should stop reading beyond this, too. */
#define OS_BODY_MAX (16U * 1024U * 1024U)

/* Longest message kept from a cloud's error body; longer ones are cut with
 * "...". Nova's schema errors echo the request (user_data, ...). */
#define OS_ERROR_MESSAGE_MAX 512U

/* Filled in by two parties: the HTTP layer sets status and request_id, the
 * parsers (and request-body builders) set message. Never holds a secret.
 * Zero-initialise; release with os_error_clear(). */
struct os_error {
        long status;            /* HTTP status; 0 when there was no response */
        char *message;          /* one line, NULL if none */
        char *request_id;       /* x-openstack-request-id, NULL if none */
};

/* Free the strings and zero the struct; accepts NULL. */
void os_error_clear(struct os_error *e);

/* Replace e->message (printf-style; made one line of valid UTF-8). E may be
 * NULL: then this only returns.
 * Returns ERR (a negative errno) so parsers can "return os_error_set(e, -EBADMSG, ...)". */
int os_error_set(struct os_error *e, int err, const char *fmt, ...) _printf_(3, 4);

/* Replace e->request_id (copied; NULL clears). -ENOMEM on allocation failure. */
int os_error_set_request_id(struct os_error *e, const char *request_id);

/* Set e->message from any OpenStack error body: Nova faults
 * ({"itemNotFound":{"code","message"}}, badRequest, forbidden, overLimit,
 * conflictingRequest, computeFault, ...), Keystone ({"error":{"code","title",
 * "message"}}), Glance ({"message","code","title"}), plain text or HTML from
 * a proxy (tags stripped, whitespace collapsed), or an empty body ("HTTP 503
 * with an empty body"). The message is one line of printable ASCII/UTF-8, at
 * most OS_ERROR_MESSAGE_MAX bytes. Returns 0, or -ENOMEM. */
int os_error_from_body(struct os_error *e, const char *body, size_t len);

/* What a failure means for the operation that met it (doc/failures.md). */
enum os_failure {
        OS_FAILURE_TRANSIENT,   /* passing weather: retry with backoff and jitter until the deadline */
        OS_FAILURE_CAPACITY,    /* the cloud has no room (no valid host, quota): fail over */
        OS_FAILURE_PERMANENT,   /* the request or the configuration is wrong: the node DOWN with the fault */
};

/* Classify a cloud call's failure: ERROR is the call's negative errno
 * (cloud.h), E its status and message (may be NULL). */
enum os_failure os_failure_classify(int error, const struct os_error *e);
bool os_failure_is_transient(int error, const struct os_error *e);
/* Classify a server's build fault message (status ERROR): capacity or permanent. */
enum os_failure os_fault_classify(const char *message);
const char *os_failure_to_string(enum os_failure f);

/* "HTTP 404: Instance x could not be found. (request req-...)" - malloc'd, NULL on ENOMEM. */
char *os_error_to_string(const struct os_error *e);
