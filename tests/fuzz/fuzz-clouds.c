/* fuzz-clouds.c - libFuzzer target: clouds.yaml (+ secure.yaml) loading. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloud/clouds.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char path[64];
        struct cloud_config *c = NULL;
        char *err = NULL;
        int fd;

        /* clouds_load_files reads a file: one private file per process */
        if (!path[0])
                snprintf(path, sizeof(path), "/tmp/fuzz-clouds-%d.yaml", (int) getpid());
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return 0;
        if (write(fd, data, size) != (ssize_t) size) {
                close(fd);
                return 0;
        }
        close(fd);

        for (int secure = 0; secure < 2; secure++) {
                if (clouds_load_files(path, secure ? path : NULL, "c", &c, &err) == 0) {
                        if (!c->auth_url || (!c->password && !c->application_credential_secret))
                                abort();
                        FILE *f = fopen("/dev/null", "we");
                        if (f) {
                                clouds_print(c, f);
                                fclose(f);
                        }
                } else if (!err)
                        abort();
                c = clouds_free(c);
                free(err);
                err = NULL;
        }
        unlink(path);
        return 0;
}
