/* fuzz-config.c - libFuzzer target: elasticd.yaml parsing, validation and printing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "conf/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(config_freep) struct config *c = NULL, *again = NULL;
        _cleanup_free_ char *err = NULL, *err2 = NULL, *printed = NULL;
        size_t len = 0;
        FILE *f;

        if (config_load_string("fuzz", (const char *) data, size, &c, &err) < 0)
                return 0;

        /* whatever loads must print, and the print must load again */
        f = open_memstream(&printed, &len);
        if (!f)
                return 0;
        if (config_print(c, f) < 0)
                abort();
        fclose(f);
        if (config_load_string("printed", printed, len, &again, &err2) < 0) {
                fprintf(stderr, "print does not load again:\n%s\n%s", printed, err2 ? err2 : "");
                abort();
        }
        return 0;
}
