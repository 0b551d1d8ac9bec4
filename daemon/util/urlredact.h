/* urlredact.h - text with the secrets taken out of every URL in it: userinfo and credential-like query values. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The mark that replaces a secret. */
#define URLREDACT_MARK "***"

/*
 * Copy IN to OUT (SIZE bytes, always NUL terminated, cut if need be) with
 * every URL's userinfo ("user:pw@") replaced by "***@" and the value of every
 * query parameter whose name looks like a credential (token, password,
 * secret, key, signature, credential, auth...) by "***". Returns the length
 * of OUT.
 */
size_t urlredact(const char *in, char *out, size_t size);

/* Whether URL carries userinfo or a credential-like query parameter. */
bool urlredact_has_secret(const char *url);
