/* A small interrupt-driven driver for the nRF52840's UARTE0 (the serial link of a
 * bare-metal tinyfleet device). Pins on the Nano 33 BLE Sense: TX = P1.03 (header pin
 * D1/TX), RX = P1.10 (header pin D0/RX), 3.3 V levels, 115200 baud 8N1, no flow control. */
#ifndef TINYFLEET_NRF52840_UARTE_H
#define TINYFLEET_NRF52840_UARTE_H

#include <stddef.h>
#include <stdint.h>

#include "tinyfleet_status.h"

#define TINYFLEET_UARTE_TX_PIN 0x23u /* PSEL: port 1 (bit 5), pin 3 */
#define TINYFLEET_UARTE_RX_PIN 0x2Au /* PSEL: port 1, pin 10 */
/* nRF52840 PS v1.7, UARTE BAUDRATE: 0x01D60000 is 115200 baud (actual 115108). */
#define TINYFLEET_UARTE_BAUD_115200 0x01D60000u

/* Start the high-frequency crystal (UART timing) and UARTE0 reception. */
void tinyfleet_uarte_init(void);
/* Send len bytes (blocks until the last one has left EasyDMA). */
tinyfleet_status tinyfleet_uarte_write(void *ctx, const uint8_t *data, size_t len);
/* Wait (asleep) until at least one byte has arrived, then take up to cap bytes. */
tinyfleet_status tinyfleet_uarte_read(void *ctx, uint8_t *data, size_t cap, size_t *got);
/* Bytes lost because the receive ring was full (the frame CRC then drops the frame). */
uint32_t tinyfleet_uarte_overruns(void);

#endif
