/* Private to the kernels: TFLM's requantisation, shared by the reference and the DSP
 * kernels so both round exactly alike, and the DSP entry points. */
#ifndef TINYFLEET_KERNELS_INTERNAL_H
#define TINYFLEET_KERNELS_INTERNAL_H

#include <stdint.h>

#include "tinyfleet_kernels.h"

/* An Arduino sketch passes no -D flags of ours: the DSP kernels are used wherever the
 * core has the extension (the Nano 33 BLE Sense's Cortex-M4F does). */
#if defined(ARDUINO) && defined(__ARM_FEATURE_DSP) && !defined(TINYFLEET_KERNELS_DSP)
#define TINYFLEET_KERNELS_DSP 1
#endif

/* gemmlowp's SaturatingRoundingDoublingHighMul: (a*b*2 + 2^31 nudge) >> 32. */
static inline int32_t tinyfleet_srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    /* gemmlowp writes (ab + nudge) / 2^31 with nudge = ab >= 0 ? 2^30 : 1 - 2^30 and
     * division truncating toward zero. For ab < 0 truncation is (n + 2^31 - 1) >> 31,
     * which with that nudge is (ab + 2^30) >> 31, the same as for ab >= 0: one
     * branch-free form (GCC's >> of a negative value is arithmetic). */
    const int64_t ab = (int64_t)a * (int64_t)b;
    return (int32_t)((ab + (1LL << 30)) >> 31);
}

/* gemmlowp's RoundingDivideByPOT: divide by 2^exponent, round half away from zero. */
static inline int32_t tinyfleet_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)((1LL << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLM's MultiplyByQuantizedMultiplier (double rounding). */
static inline int32_t tinyfleet_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left_shift = shift > 0 ? shift : 0;
    const int32_t right_shift = shift > 0 ? 0 : -shift;
    /* TFLM computes x * (1 << left_shift) in int32; wrap like it does without UB. */
    const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
    return tinyfleet_rounding_divide_by_pot(tinyfleet_srdhm(shifted, multiplier), right_shift);
}

static inline int8_t tinyfleet_requantize(int32_t acc, const tinyfleet_requant *q,
                                          int32_t channel)
{
    acc = tinyfleet_mbqm(acc, q->multiplier[channel], q->shift[channel]);
    acc += q->output_offset;
    if (acc < q->act_min) {
        acc = q->act_min;
    }
    if (acc > q->act_max) {
        acc = q->act_max;
    }
    return (int8_t)acc;
}

#ifdef TINYFLEET_KERNELS_DSP
/* Fast paths (tinyfleet_kernels_dsp.c). Arguments are already checked; each returns 1
 * when it computed the output, 0 when the shape is not one it handles (the caller then
 * runs the reference loop). */
int tinyfleet_conv2d_s8_dsp(const tinyfleet_window *w, const tinyfleet_requant *q,
                            const int8_t *input, const int8_t *filter, const int32_t *bias,
                            int8_t *output, int8_t *scratch);
int tinyfleet_depthwise_conv2d_s8_dsp(const tinyfleet_window *w, int32_t depth_multiplier,
                                      const tinyfleet_requant *q, const int8_t *input,
                                      const int8_t *filter, const int32_t *bias,
                                      int8_t *output);
void tinyfleet_fully_connected_s8_dsp(int32_t in_features, int32_t out_features,
                                      const tinyfleet_requant *q, const int8_t *input,
                                      const int8_t *filter, const int32_t *bias,
                                      int8_t *output);
int tinyfleet_max_pool2d_s8_dsp(const tinyfleet_window *w, int32_t act_min, int32_t act_max,
                                const int8_t *input, int8_t *output);
#endif

#endif
