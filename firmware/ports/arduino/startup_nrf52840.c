/* Minimal reset handler for a bare-metal nRF52840 image (Nano 33 BLE Sense). The
 * Arduino library build (tinyfleet/) uses the Arduino core's startup instead; this
 * one lets `tinyfleet firmware build --target nano33ble` link a standalone image. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(int argc, char **argv);

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
    SCB_CPACR |= (0xFu << 20); /* enable the FPU */
    __asm volatile("dsb\n\tisb" ::: "memory");
    (void)main(0, NULL);
    for (;;) {
    }
}

void Fault_Handler(void)
{
    for (;;) {
    }
}

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler,              Fault_Handler, Fault_Handler, 0,
    0,                          0,             0,             Fault_Handler,
    Fault_Handler,              0,             Fault_Handler, Fault_Handler,
};
