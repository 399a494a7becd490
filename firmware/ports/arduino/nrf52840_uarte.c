/* nRF52840 UARTE0 driver: register offsets from the nRF52840 Product Specification
 * v1.7, section 6.34 "UARTE". UARTE moves bytes by EasyDMA only, so:
 *
 * - receive: one-byte DMA transfers into a ring. The ENDRX->STARTRX shortcut restarts
 *   reception in hardware at once; the interrupt on RXSTARTED points RXD.PTR at the
 *   next ring slot (the pointer is latched at each start, so it may be changed as soon
 *   as a transfer has started), and the interrupt on ENDRX counts the byte. The main
 *   loop may compute for milliseconds (an inference, an SGD step) while the bridge keeps
 *   sending: the ring holds what arrives meanwhile, with no flow control needed.
 * - transmit: EasyDMA cannot read flash, so data go through a RAM buffer in chunks. */
#include "nrf52840_uarte.h"

#include <string.h>

#define UARTE0_BASE 0x40002000u
#define UARTE(off) (*(volatile uint32_t *)(UARTE0_BASE + (off)))
#define TASKS_STARTRX 0x000u
#define TASKS_STARTTX 0x008u
#define EVENTS_ENDRX 0x110u
#define EVENTS_ENDTX 0x120u
#define EVENTS_ERROR 0x124u
#define EVENTS_RXSTARTED 0x14Cu
#define SHORTS 0x200u
#define INTENSET 0x304u
#define ERRORSRC 0x480u
#define ENABLE 0x500u
#define PSEL_RTS 0x508u
#define PSEL_TXD 0x50Cu
#define PSEL_CTS 0x510u
#define PSEL_RXD 0x514u
#define BAUDRATE 0x524u
#define RXD_PTR 0x534u
#define RXD_MAXCNT 0x538u
#define TXD_PTR 0x544u
#define TXD_MAXCNT 0x548u
#define CONFIG 0x56Cu
#define SHORTS_ENDRX_STARTRX (1u << 5)
#define INT_ENDRX (1u << 4)
#define INT_ERROR (1u << 9)
#define INT_RXSTARTED (1u << 19)
#define ENABLE_UARTE 8u
#define PSEL_DISCONNECTED 0xFFFFFFFFu

/* CLOCK: HFXO start (PS 6.4); GPIO port 1 (PS 6.9): OUTSET, PIN_CNF[n]. */
#define CLOCK_TASKS_HFCLKSTART (*(volatile uint32_t *)0x40000000u)
#define CLOCK_EVENTS_HFCLKSTARTED (*(volatile uint32_t *)0x40000100u)
#define P1_OUTSET (*(volatile uint32_t *)0x50000808u)
#define P1_PIN_CNF(n) (*(volatile uint32_t *)(0x50000A00u + 4u * (n)))
#define PIN_CNF_OUTPUT 0x3u         /* DIR output, input buffer disconnected */
#define PIN_CNF_INPUT_PULLUP 0xCu   /* DIR input, buffer connected, pull-up */
#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)
#define UARTE0_IRQ 2u

#define RX_RING 2048u /* a power of two; > one TRAIN frame of a 32-32-5 head */
#define TX_CHUNK 256u

static volatile uint8_t g_ring[RX_RING];
static volatile uint32_t g_head;    /* bytes received (ISR) */
static volatile uint32_t g_armed;   /* ring slot RXD.PTR points at (ISR) */
static volatile uint32_t g_overruns;
static uint32_t g_tail;             /* bytes taken (main loop) */
static uint8_t g_tx[TX_CHUNK];

void UARTE0_UART0_IRQHandler(void);

void UARTE0_UART0_IRQHandler(void)
{
    /* ENDRX before RXSTARTED: when both are pending, the finished byte is older. */
    if (UARTE(EVENTS_ENDRX)) {
        UARTE(EVENTS_ENDRX) = 0;
        if (g_head - g_tail >= RX_RING) {
            ++g_overruns; /* the slot was overwritten before the main loop took it */
        }
        ++g_head;
    }
    if (UARTE(EVENTS_RXSTARTED)) {
        UARTE(EVENTS_RXSTARTED) = 0;
        g_armed = (g_armed + 1u) % RX_RING;
        UARTE(RXD_PTR) = (uint32_t)(uintptr_t)&g_ring[g_armed];
    }
    if (UARTE(EVENTS_ERROR)) {
        UARTE(EVENTS_ERROR) = 0;
        UARTE(ERRORSRC) = UARTE(ERRORSRC); /* write 1 to clear; the byte still ends */
    }
    (void)UARTE(EVENTS_ENDRX); /* read back: the event clear lands before the return */
}

void tinyfleet_uarte_init(void)
{
    CLOCK_EVENTS_HFCLKSTARTED = 0;
    CLOCK_TASKS_HFCLKSTART = 1; /* the internal RC's +-1.5% is marginal for a UART */
    while (!CLOCK_EVENTS_HFCLKSTARTED) {
    }
    P1_OUTSET = 1u << (TINYFLEET_UARTE_TX_PIN & 31u); /* TX idles high */
    P1_PIN_CNF(TINYFLEET_UARTE_TX_PIN & 31u) = PIN_CNF_OUTPUT;
    P1_PIN_CNF(TINYFLEET_UARTE_RX_PIN & 31u) = PIN_CNF_INPUT_PULLUP;
    UARTE(PSEL_TXD) = TINYFLEET_UARTE_TX_PIN;
    UARTE(PSEL_RXD) = TINYFLEET_UARTE_RX_PIN;
    UARTE(PSEL_RTS) = PSEL_DISCONNECTED;
    UARTE(PSEL_CTS) = PSEL_DISCONNECTED;
    UARTE(BAUDRATE) = TINYFLEET_UARTE_BAUD_115200;
    UARTE(CONFIG) = 0; /* 8N1, no hardware flow control */
    UARTE(ENABLE) = ENABLE_UARTE;
    g_head = g_tail = g_armed = 0;
    UARTE(RXD_PTR) = (uint32_t)(uintptr_t)&g_ring[0];
    UARTE(RXD_MAXCNT) = 1;
    UARTE(SHORTS) = SHORTS_ENDRX_STARTRX;
    UARTE(INTENSET) = INT_ENDRX | INT_RXSTARTED | INT_ERROR;
    NVIC_ISER0 = 1u << UARTE0_IRQ;
    UARTE(TASKS_STARTRX) = 1;
}

tinyfleet_status tinyfleet_uarte_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    while (len) {
        size_t n = len < TX_CHUNK ? len : TX_CHUNK;
        memcpy(g_tx, data, n);
        UARTE(EVENTS_ENDTX) = 0;
        UARTE(TXD_PTR) = (uint32_t)(uintptr_t)g_tx;
        UARTE(TXD_MAXCNT) = (uint32_t)n;
        UARTE(TASKS_STARTTX) = 1;
        while (!UARTE(EVENTS_ENDTX)) {
        }
        data += n;
        len -= n;
    }
    return TINYFLEET_OK;
}

tinyfleet_status tinyfleet_uarte_read(void *ctx, uint8_t *data, size_t cap, size_t *got)
{
    (void)ctx;
    /* Check and sleep with interrupts masked: a byte that arrives between the check and
     * WFI leaves its interrupt pending, and WFI returns at once instead of sleeping
     * through the last byte of a frame. */
    __asm volatile("cpsid i" ::: "memory");
    while (g_head == g_tail) {
        __asm volatile("wfi\n\tcpsie i\n\tcpsid i" ::: "memory");
    }
    __asm volatile("cpsie i" ::: "memory");
    size_t n = 0;
    while (n < cap && g_tail != g_head) {
        data[n++] = g_ring[g_tail % RX_RING];
        ++g_tail;
    }
    *got = n;
    return TINYFLEET_OK;
}

uint32_t tinyfleet_uarte_overruns(void) { return g_overruns; }
