/* Reset handler and vector table for a bare-metal nRF52840 image (Arduino Nano 33 BLE
 * Sense). The image is linked at 0x10000, after the Arduino bootloader, which jumps to
 * the reset vector found there; VTOR is pointed at this table first thing, so that our
 * interrupt handlers (UARTE0) run, whatever the bootloader left in VTOR.
 *
 * A fault stops in a loop with the red LED (P0.24, active low) on: a board has no
 * semihosting to report through, and a silent hang would look like a slow round. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(int argc, char **argv);

void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);
/* nRF52840 IRQ 2: UARTE0/UART0; a port that uses it defines the handler. */
void UARTE0_UART0_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));

#define SCB_VTOR (*(volatile uint32_t *)0xE000ED08u)
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define P0_OUTCLR (*(volatile uint32_t *)0x5000050Cu)
#define P0_DIRSET (*(volatile uint32_t *)0x50000518u)
#define LED_RED_PIN 24u

static void (*const vectors[16 + 48])(void);

void Reset_Handler(void)
{
    SCB_VTOR = (uint32_t)(uintptr_t)vectors;
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    SCB_CPACR |= (0xFu << 20); /* enable the FPU (CP10/CP11 full access) */
    __asm volatile("dsb\n\tisb" ::: "memory");
    (void)main(0, NULL);
    for (;;) {
        __asm volatile("wfi");
    }
}

void Fault_Handler(void)
{
    __asm volatile("cpsid i" ::: "memory");
    P0_DIRSET = 1u << LED_RED_PIN;
    P0_OUTCLR = 1u << LED_RED_PIN;
    for (;;) {
    }
}

/* Any other exception or interrupt nobody asked for: treated as a fault. */
void Default_Handler(void) { Fault_Handler(); }

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16 + 48])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Default_Handler, Fault_Handler,
    Fault_Handler,              Fault_Handler, Fault_Handler,   0,
    0,                          0,             0,               Default_Handler,
    Default_Handler,            0,             Default_Handler, Default_Handler,
    /* external interrupts 0..47 (nRF52840 PS v1.7, section 6.1.4 "Instantiation") */
    Default_Handler, Default_Handler, UARTE0_UART0_IRQHandler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler,
};
