/* Arduino Nano 33 BLE Sense (nRF52840) port of the device loop: the same loop logic as
 * the QEMU image (apps/tinyfleet_device.c: framing, codec, backbone, head SGD, rounds),
 * with UARTE0 as the serial link to `tinyfleet bridge serial /dev/ttyUSB0 --board
 * nano33ble`: TX = P1.03 (D1), RX = P1.10 (D0), 115200 baud, through a 3.3 V USB-serial
 * adapter. The board's own USB socket is the nRF52840's USB device, which needs a USB
 * stack this bare-metal image does not have: it is used only by the bootloader.
 *
 * The green LED (P1.09, active high) is on while the loop runs; the red one (P0.24,
 * active low) marks a fault (startup_nrf52840.c). */
#include <stdint.h>

#include "nrf52840_uarte.h"
#include "tinyfleet_device.h"

#define P1_OUTSET (*(volatile uint32_t *)0x50000808u)
#define P1_PIN_CNF(n) (*(volatile uint32_t *)(0x50000A00u + 4u * (n)))
#define LED_GREEN_PIN 9u

int main(void)
{
    P1_PIN_CNF(LED_GREEN_PIN) = 0x3u; /* output */
    P1_OUTSET = 1u << LED_GREEN_PIN;
    tinyfleet_uarte_init();
    tinyfleet_port port = {NULL, tinyfleet_uarte_write, tinyfleet_uarte_read, NULL, NULL};
    tinyfleet_status st = tinyfleet_device_run(&port);
    return st == TINYFLEET_OK ? 0 : 1;
}
