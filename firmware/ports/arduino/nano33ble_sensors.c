/* Nano 33 BLE Sense sensors behind tinyfleet_sensor_port.
 *
 * Microphone: the nRF52840 PDM peripheral (PS v1.7, section 6.15 "PDM") driving the
 * MP34DT05: CLK = P0.26, DIN = P0.25, microphone power = P0.17 (the Arduino core's
 * variant: PIN_PDM_CLK/DIN/PWR). PDM clock 1.280 MHz (32 MHz / 25) with decimation
 * ratio 80 gives exactly 16 kHz PCM, the keyword use case's rate. One blocking capture
 * per call by EasyDMA; the first few milliseconds after power-up hold the microphone's
 * and decimation filter's settling, which a caller that needs clean audio discards.
 *
 * Climate (HTS221 temperature/humidity, APDS-9960 light, on the internal I2C bus
 * SDA1 = P0.14, SCL1 = P0.15, sensor power P0.22): a stub, TINYFLEET_ERR_UNSUPPORTED. */
#include "tinyfleet_sensor_port.h"

#define PDM_BASE 0x4001D000u
#define PDM(off) (*(volatile uint32_t *)(PDM_BASE + (off)))
#define PDM_TASKS_START 0x000u
#define PDM_TASKS_STOP 0x004u
#define PDM_EVENTS_STARTED 0x100u
#define PDM_EVENTS_STOPPED 0x104u
#define PDM_EVENTS_END 0x108u
#define PDM_ENABLE 0x500u
#define PDM_PDMCLKCTRL 0x504u
#define PDM_MODE 0x508u
#define PDM_GAINL 0x518u
#define PDM_GAINR 0x51Cu
#define PDM_RATIO 0x520u
#define PDM_PSEL_CLK 0x540u
#define PDM_PSEL_DIN 0x544u
#define PDM_SAMPLE_PTR 0x560u
#define PDM_SAMPLE_MAXCNT 0x564u
#define PDM_CLK_1280K 0x0A000000u /* PDMCLKCTRL FREQ_1280K: 32 MHz / 25 */
#define PDM_MODE_MONO_LEFT_FALLING 0x1u
#define PDM_GAIN_0DB 0x28u
#define PDM_RATIO_80 0x1u /* RATIO register (nRF52840): 0 = 64, 1 = 80 */
#define PDM_MAXCNT_LIMIT 32767u /* SAMPLE.MAXCNT is 15 bits */

#define P0_OUTSET (*(volatile uint32_t *)0x50000508u)
#define P0_OUTCLR (*(volatile uint32_t *)0x5000050Cu)
#define P0_PIN_CNF(n) (*(volatile uint32_t *)(0x50000700u + 4u * (n)))
#define PIN_CNF_OUTPUT 0x3u
#define PIN_CNF_INPUT 0x0u
#define MIC_PWR_PIN 17u
#define MIC_CLK_PIN 26u
#define MIC_DIN_PIN 25u

static int16_t g_spill[32];

static tinyfleet_status pdm_capture(void *ctx, int16_t *pcm, size_t n)
{
    (void)ctx;
    if (!pcm) {
        return TINYFLEET_ERR_NULL;
    }
    if (n == 0 || n > PDM_MAXCNT_LIMIT) {
        return TINYFLEET_ERR_RANGE;
    }
    P0_PIN_CNF(MIC_PWR_PIN) = PIN_CNF_OUTPUT;
    P0_OUTSET = 1u << MIC_PWR_PIN;
    P0_OUTCLR = 1u << MIC_CLK_PIN; /* CLK idles low, driven by PDM once enabled */
    P0_PIN_CNF(MIC_CLK_PIN) = PIN_CNF_OUTPUT;
    P0_PIN_CNF(MIC_DIN_PIN) = PIN_CNF_INPUT;
    PDM(PDM_PSEL_CLK) = MIC_CLK_PIN;
    PDM(PDM_PSEL_DIN) = MIC_DIN_PIN;
    PDM(PDM_PDMCLKCTRL) = PDM_CLK_1280K;
    PDM(PDM_RATIO) = PDM_RATIO_80;
    PDM(PDM_MODE) = PDM_MODE_MONO_LEFT_FALLING;
    PDM(PDM_GAINL) = PDM_GAIN_0DB;
    PDM(PDM_GAINR) = PDM_GAIN_0DB;
    PDM(PDM_ENABLE) = 1;
    PDM(PDM_SAMPLE_PTR) = (uint32_t)(uintptr_t)pcm;
    PDM(PDM_SAMPLE_MAXCNT) = (uint32_t)n;
    PDM(PDM_EVENTS_STARTED) = 0;
    PDM(PDM_EVENTS_END) = 0;
    PDM(PDM_EVENTS_STOPPED) = 0;
    PDM(PDM_TASKS_START) = 1;
    /* SAMPLE.PTR/MAXCNT are latched at STARTED and the next buffer follows the first
     * without a gap: point it at a small scratch buffer, so that the samples taken
     * while stopping do not overwrite the caller's first samples. */
    while (!PDM(PDM_EVENTS_STARTED)) {
    }
    PDM(PDM_SAMPLE_PTR) = (uint32_t)(uintptr_t)g_spill;
    PDM(PDM_SAMPLE_MAXCNT) = sizeof g_spill / sizeof g_spill[0];
    while (!PDM(PDM_EVENTS_END)) {
    }
    PDM(PDM_TASKS_STOP) = 1;
    while (!PDM(PDM_EVENTS_STOPPED)) {
    }
    PDM(PDM_ENABLE) = 0;
    P0_OUTCLR = 1u << MIC_PWR_PIN;
    return TINYFLEET_OK;
}

static tinyfleet_status climate_stub(void *ctx, float *temperature_c, float *humidity_pct,
                                     float *light_lux)
{
    (void)ctx;
    (void)temperature_c;
    (void)humidity_pct;
    (void)light_lux;
    return TINYFLEET_ERR_UNSUPPORTED;
}

const tinyfleet_sensor_port tinyfleet_nano33ble_sensors = {NULL, pdm_capture, 16000u, climate_stub};
