/* QEMU port of the job runner: SysTick as an instruction counter.
 *
 * Under `qemu-system-arm -icount shift=0` every instruction advances virtual time by
 * exactly 1 ns, and SysTick counts the board's system clock (from the target table:
 * 25 MHz on mps2, so one tick is 40 instructions; 32 MHz on the an547, 125/4), deterministically
 * (QEMU has no cycle model: these are instructions, not cycles). Without -icount the
 * figures are meaningless. */
#include "tinyfleet_job_port.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

#ifndef TINYFLEET_INSNS_PER_TICK_NUM
#define TINYFLEET_INSNS_PER_TICK_NUM 40u
#define TINYFLEET_INSNS_PER_TICK_SHIFT 0
#endif

void tinyfleet_job_port_init(void)
{
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5u; /* enable, processor clock, no interrupt */
}

uint32_t tinyfleet_job_port_counter(void) { return SYST_CVR; }

uint32_t tinyfleet_job_port_insns(uint32_t start, uint32_t end)
{
    /* SysTick counts down and wraps at 24 bits. */
    const uint64_t ticks = (start - end) & 0x00FFFFFFu;
    return (uint32_t)((ticks * TINYFLEET_INSNS_PER_TICK_NUM) >> TINYFLEET_INSNS_PER_TICK_SHIFT);
}
