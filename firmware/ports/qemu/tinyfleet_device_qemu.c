/* QEMU mps2-an386 port of the device loop: UART0 (CMSDK APB UART at 0x40004000) is the
 * serial link; run QEMU with `-serial tcp:127.0.0.1:PORT,server=on` and point
 * `tinyfleet bridge serial tcp:127.0.0.1:PORT` at it. */
#include <stdio.h>

#include "tinyfleet_device.h"

#define UART0_BASE 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(UART0_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(UART0_BASE + 0x08u))
#define UART_INTCLEAR (*(volatile uint32_t *)(UART0_BASE + 0x0Cu))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0_BASE + 0x10u))
#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)
#define NVIC_ICPR0 (*(volatile uint32_t *)0xE000E280u)
#define UART0_RX_IRQ 0u
#define UART_STATE_TXFULL 1u
#define UART_STATE_RXFULL 2u

static tinyfleet_status uart_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; ++i) {
        while (UART_STATE & UART_STATE_TXFULL) {
        }
        UART_DATA = data[i];
    }
    return TINYFLEET_OK;
}

static tinyfleet_status uart_read(void *ctx, uint8_t *data, size_t cap, size_t *got)
{
    (void)ctx;
    size_t n = 0;
    for (;;) {
        /* Clear the RX interrupt first, then look: a byte arriving after the check
         * leaves the interrupt pending, and WFI returns at once. */
        UART_INTCLEAR = 2u;
        NVIC_ICPR0 = 1u << UART0_RX_IRQ;
        while (n < cap && (UART_STATE & UART_STATE_RXFULL)) {
            data[n++] = (uint8_t)UART_DATA;
        }
        if (n > 0) {
            break;
        }
        /* Sleep until the UART has a byte (QEMU then idles instead of spinning). */
        __asm volatile("wfi" ::: "memory");
    }
    *got = n;
    return TINYFLEET_OK;
}

int main(void)
{
    UART_BAUDDIV = 16; /* QEMU ignores a UART whose divider is below 16 */
    UART_CTRL = 3u | (1u << 3); /* TX and RX enable, RX interrupt (wakes WFI) */
    /* Interrupts stay masked (PRIMASK): a pending one only ends WFI, no handler runs. */
    __asm volatile("cpsid i" ::: "memory");
    NVIC_ISER0 = 1u << UART0_RX_IRQ;
    tinyfleet_port port = {NULL, uart_write, uart_read, NULL, NULL};
    tinyfleet_status st = tinyfleet_device_run(&port);
    printf("tinyfleet_device: %s\n", tinyfleet_status_name(st));
    return st == TINYFLEET_OK ? 0 : 1;
}
