/* Host port of the device loop: the serial link is stdin/stdout (the bridge runs this
 * binary behind a pipe), so the same C runs under sanitizers on the host. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <unistd.h>

#include "tf_device.h"

static tf_status host_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    while (len) {
        ssize_t n = write(1, data, len);
        if (n <= 0) {
            return TF_ERR_IO;
        }
        data += n;
        len -= (size_t)n;
    }
    return TF_OK;
}

static tf_status host_read(void *ctx, uint8_t *data, size_t cap, size_t *got)
{
    (void)ctx;
    ssize_t n = read(0, data, cap);
    if (n <= 0) {
        return TF_ERR_IO; /* EOF: the bridge went away */
    }
    *got = (size_t)n;
    return TF_OK;
}

int main(void)
{
    tf_port port = {NULL, host_write, host_read, NULL, NULL};
    tf_status st = tf_device_run(&port);
    if (st != TF_OK) {
        fprintf(stderr, "tf_device: %s\n", tf_status_name(st));
    }
    return st == TF_OK ? 0 : 1;
}
