/* Host port of the device loop: the serial link is stdin/stdout (the bridge runs this
 * binary behind a pipe), so the same C runs under sanitizers on the host. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <unistd.h>

#include "tinyfleet_device.h"

static tinyfleet_status host_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    while (len) {
        ssize_t n = write(1, data, len);
        if (n <= 0) {
            return TINYFLEET_ERR_IO;
        }
        data += n;
        len -= (size_t)n;
    }
    return TINYFLEET_OK;
}

static tinyfleet_status host_read(void *ctx, uint8_t *data, size_t cap, size_t *got)
{
    (void)ctx;
    ssize_t n = read(0, data, cap);
    if (n <= 0) {
        return TINYFLEET_ERR_IO; /* EOF: the bridge went away */
    }
    *got = (size_t)n;
    return TINYFLEET_OK;
}

int main(void)
{
    tinyfleet_port port = {NULL, host_write, host_read, NULL, NULL};
    tinyfleet_status st = tinyfleet_device_run(&port);
    if (st != TINYFLEET_OK) {
        fprintf(stderr, "tinyfleet_device: %s\n", tinyfleet_status_name(st));
    }
    return st == TINYFLEET_OK ? 0 : 1;
}
