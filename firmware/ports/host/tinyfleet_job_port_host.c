/* Host port of the job runner: no instruction counter on the host. */
#include "tinyfleet_job_port.h"

void tinyfleet_job_port_init(void) {}

uint32_t tinyfleet_job_port_counter(void) { return 0; }

uint32_t tinyfleet_job_port_insns(uint32_t start, uint32_t end)
{
    (void)start;
    (void)end;
    return 0;
}
