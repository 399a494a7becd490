/* Reset handler and vector table for QEMU's mps2-an386 (Cortex-M4F). */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(int argc, char **argv);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
void Fault_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

void Reset_Handler(void)
{
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    /* Full access to CP10/CP11: the FPU faults on first use otherwise. */
    SCB_CPACR |= (0xFu << 20);
    __asm volatile("dsb\n\tisb" ::: "memory");
    initialise_monitor_handles();
    exit(main(0, NULL));
}

/* Any fault ends the run with a distinctive status instead of hanging QEMU. */
void Fault_Handler(void) { exit(99); }

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler,              Fault_Handler, Fault_Handler, 0,
    0,                          0,             0,             Fault_Handler,
    Fault_Handler,              0,             Fault_Handler, Fault_Handler,
};
