/* Reset handler and vector table for QEMU's Cortex-M machines (mps2-an385/386/500,
 * mps2-an505, mps3-an547): one file for every core in the target table.
 *
 * A fault must never look like success. The fault handler reports itself with raw
 * semihosting calls (no printf, no FPU, no stack beyond a few words: the state that
 * faulted may be anything) and ends QEMU with exit status 99 through
 * SYS_EXIT_EXTENDED, which carries a status on 32-bit ARM. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(int argc, char **argv);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SEMI_SYS_WRITE0 0x04u
#define SEMI_SYS_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define TINYFLEET_FAULT_EXIT 99u

static uint32_t semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static void put_hex(char *out, uint32_t value)
{
    for (int i = 7; i >= 0; --i) {
        out[i] = "0123456789abcdef"[value & 0xFu];
        value >>= 4;
    }
}

static void fail(const char *what, uint32_t ipsr)
{
    /* "tinyfleet: <what> (exception NN) CFSR=xxxxxxxx HFSR=xxxxxxxx\n" */
    static char line[96];
    uint32_t n = 0;
    for (const char *p = "tinyfleet: "; *p; ++p) {
        line[n++] = *p;
    }
    for (const char *p = what; *p && n < 40; ++p) {
        line[n++] = *p;
    }
    for (const char *p = " (exception "; *p; ++p) {
        line[n++] = *p;
    }
    line[n++] = (char)('0' + (ipsr / 10u) % 10u);
    line[n++] = (char)('0' + ipsr % 10u);
    for (const char *p = ") CFSR="; *p; ++p) {
        line[n++] = *p;
    }
    put_hex(line + n, SCB_CFSR);
    n += 8;
    for (const char *p = " HFSR="; *p; ++p) {
        line[n++] = *p;
    }
    put_hex(line + n, SCB_HFSR);
    n += 8;
    line[n++] = '\n';
    line[n] = '\0';
    semihost(SEMI_SYS_WRITE0, line);
    static const uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, TINYFLEET_FAULT_EXIT};
    semihost(SEMI_SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}

static uint32_t current_exception(void)
{
    uint32_t ipsr;
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    return ipsr & 0x1FFu;
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
#if defined(__ARM_FP)
    /* Full access to CP10/CP11: the FPU faults on first use otherwise. Soft-float
     * builds (Cortex-M3) have no FPU to enable. */
    SCB_CPACR |= (0xFu << 20);
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    initialise_monitor_handles();
    exit(main(0, NULL));
}

/* HardFault, MemManage, BusFault, UsageFault, SecureFault. */
void Fault_Handler(void) { fail("fault", current_exception()); }

/* Any other exception or interrupt nobody asked for. */
void Default_Handler(void) { fail("unexpected exception", current_exception()); }

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16 + 32])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Default_Handler, Fault_Handler,
    Fault_Handler,              Fault_Handler, Fault_Handler,   Fault_Handler,
    0,                          0,             0,               Default_Handler,
    Default_Handler,            0,             Default_Handler, Default_Handler,
    /* external interrupts 0..31 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler,
};
