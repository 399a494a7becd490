/* The sensors of a board, behind function pointers like tinyfleet_port: the device
 * loop (or a use case's front end) asks for samples without knowing the chip. On the
 * Nano 33 BLE Sense: the MP34DT05 PDM microphone (keyword audio) has a register-level
 * driver (nrf52840_pdm.c); temperature and humidity (HTS221) and light (APDS-9960),
 * the presence use case's inputs, sit on I2C and are stubs that answer
 * TINYFLEET_ERR_UNSUPPORTED until their TWIM drivers exist. A NULL pointer means the
 * board has no such sensor. */
#ifndef TINYFLEET_SENSOR_PORT_H
#define TINYFLEET_SENSOR_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "tinyfleet_status.h"

typedef struct {
    void *ctx;
    /* n signed 16-bit PCM samples, mono, at audio_rate_hz. */
    tinyfleet_status (*audio)(void *ctx, int16_t *pcm, size_t n);
    uint32_t audio_rate_hz;
    /* Degrees Celsius, percent relative humidity, lux. */
    tinyfleet_status (*climate)(void *ctx, float *temperature_c, float *humidity_pct,
                                float *light_lux);
} tinyfleet_sensor_port;

/* The Nano 33 BLE Sense's sensors (nrf52840_pdm.c, nano33ble_sensors.c). */
extern const tinyfleet_sensor_port tinyfleet_nano33ble_sensors;

#endif
