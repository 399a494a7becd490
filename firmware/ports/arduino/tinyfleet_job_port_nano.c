/* Nano 33 BLE Sense port of the job runner: the DWT cycle counter (real silicon has
 * one, unlike QEMU). Figures are cycles at 64 MHz, reported as "instructions". */
#include "tinyfleet_job_port.h"

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)

void tinyfleet_job_port_init(void)
{
    DEMCR |= (1u << 24); /* TRCENA */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;
}

uint32_t tinyfleet_job_port_counter(void) { return DWT_CYCCNT; }

uint32_t tinyfleet_job_port_insns(uint32_t start, uint32_t end) { return end - start; }
