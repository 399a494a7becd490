/* Port hooks for the job runner: an instruction counter where the port has one. */
#ifndef TINYFLEET_JOB_PORT_H
#define TINYFLEET_JOB_PORT_H

#include <stdint.h>

void tinyfleet_job_port_init(void);
/* A free-running counter (port units). */
uint32_t tinyfleet_job_port_counter(void);
/* Instructions executed between two counter readings (0 if the port cannot tell). */
uint32_t tinyfleet_job_port_insns(uint32_t start, uint32_t end);

#endif
