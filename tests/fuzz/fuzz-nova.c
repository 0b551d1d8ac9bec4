/* fuzz-nova.c - libFuzzer target: every Nova response parser and the error-body reader. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "cloud/nova.h"
#include "push/push.h"

/* The host keys of a console: never a result without a key, never more than the cap. */
static void console_keys(const char *console) {
        struct push_hostkeys *k = NULL;
        char *err = NULL;
        int r = push_parse_console_hostkeys(console, &k, &err);

        if (r == 0 && (!k || k->n == 0 || k->n > PUSH_HOSTKEYS_MAX))
                abort();
        if (r == -EBADMSG && !err)
                abort();
        push_hostkeys_free(k);
        free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *body = (const char *) data;
        struct os_error e = {};

        struct nova_server *s = NULL;
        if (nova_parse_server(body, size, &s, &e) == 0) {
                /* what a caller touches must be consistent */
                if (!s->id || !s->status || !s->tags)
                        abort();
                if (s->ipv4 && !s->n_addresses)
                        abort();
                for (size_t i = 0; i < s->n_metadata; i++)
                        if (nova_server_metadata_get(s, s->metadata[i].key) == NULL)
                                abort();
        }
        nova_server_free(s);
        os_error_clear(&e);

        struct nova_server_page *p = NULL;
        if (nova_parse_server_page(body, size, &p, &e) == 0)
                for (size_t i = 0; i < p->n_servers; i++)
                        if (!p->servers[i] || !p->servers[i]->id)
                                abort();
        nova_server_page_free(p);
        os_error_clear(&e);

        struct nova_flavor_list *f = NULL;
        if (nova_parse_flavors(body, size, &f, &e) == 0)
                for (size_t i = 0; i < f->n_flavors; i++)
                        if (!f->flavors[i].id || !f->flavors[i].name)
                                abort();
        nova_flavor_list_free(f);
        os_error_clear(&e);

        char *id = NULL;
        (void) nova_parse_server_created(body, size, &id, &e);
        free(id);
        os_error_clear(&e);

        struct nova_kv *kv = NULL;
        size_t n = 0;
        (void) nova_parse_metadata(body, size, &kv, &n, &e);
        nova_kv_free_array(kv, n);
        os_error_clear(&e);

        unsigned max = 0;
        (void) nova_parse_version(body, size, &max, &e);
        os_error_clear(&e);

        char *console = NULL;
        if (nova_parse_console(body, size, &console, &e) == 0)
                console_keys(console);
        free(console);
        os_error_clear(&e);
        console = strndup(body, size);
        if (console)
                console_keys(console);
        free(console);

        if (nova_parse_fault(body, size, &e) == 0 && (!e.message || strlen(e.message) > OS_ERROR_MESSAGE_MAX))
                abort();
        os_error_clear(&e);
        return 0;
}
