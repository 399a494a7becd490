/* tinyfleet firmware: int8 inference kernels with TFLite Micro's arithmetic.
 *
 * Layouts follow TFLite: activations NHWC (batch 1), CONV_2D filters OHWI,
 * DEPTHWISE_CONV_2D filters 1HW(C*M), FULLY_CONNECTED filters [out][in].
 * Requantisation is TFLM's double-rounding MultiplyByQuantizedMultiplier with one
 * (multiplier, shift) pair per output channel; the generator computes them on the
 * host in float64 exactly as TFLM's QuantizeMultiplier does. Weights are symmetric
 * (zero point 0). A NULL bias means "no bias" (the converter drops all-zero biases).
 */
#ifndef TINYFLEET_KERNELS_H
#define TINYFLEET_KERNELS_H

#include <stdint.h>

#include "tinyfleet_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Requantisation of one int32 accumulator (exposed for tests). */
int32_t tinyfleet_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift);

/* Output quantisation shared by the MAC kernels. */
typedef struct {
    int32_t input_offset;      /* -input zero point */
    int32_t output_offset;     /* +output zero point */
    int32_t act_min, act_max;  /* fused activation clamp, in output int8 units */
    const int32_t *multiplier; /* per output channel */
    const int32_t *shift;      /* per output channel, TFLM convention (>0: left) */
} tinyfleet_requant;

/* Geometry of CONV_2D / DEPTHWISE_CONV_2D / pooling windows (batch 1). */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_h, pad_w; /* top/left padding */
} tinyfleet_window;

/* scratch: NULL, or at least 2 * k_h * k_w * in_c bytes the DSP kernels im2col into
 * (the generator plans it inside the arena; 1x1 convolutions need none). */
tinyfleet_status tinyfleet_conv2d_s8(const tinyfleet_window *w, const tinyfleet_requant *q,
                                     const int8_t *input, const int8_t *filter,
                                     const int32_t *bias, int8_t *output, int8_t *scratch);

tinyfleet_status tinyfleet_depthwise_conv2d_s8(const tinyfleet_window *w, int32_t depth_multiplier,
                                 const tinyfleet_requant *q, const int8_t *input,
                                 const int8_t *filter, const int32_t *bias, int8_t *output);

tinyfleet_status tinyfleet_fully_connected_s8(int32_t in_features, int32_t out_features, const tinyfleet_requant *q,
                                const int8_t *input, const int8_t *filter, const int32_t *bias,
                                int8_t *output);

/* Pools keep the input's quantisation; act_min/act_max clamp the result. */
tinyfleet_status tinyfleet_average_pool2d_s8(const tinyfleet_window *w, int32_t act_min, int32_t act_max,
                               const int8_t *input, int8_t *output);
tinyfleet_status tinyfleet_max_pool2d_s8(const tinyfleet_window *w, int32_t act_min, int32_t act_max,
                           const int8_t *input, int8_t *output);

/* The same kernels for layers the DSP kernels cover: CONV_2D with an im2col scratch
 * (or 1x1), DEPTHWISE_CONV_2D with depth multiplier 1 and no dilation, MAX_POOL_2D
 * with a multiple of 4 channels (tinyfleet.firmware.codegen.dsp_covers). Bit-exact
 * with the functions above; a DSP build links no reference loop for them (and answers
 * TINYFLEET_ERR_UNSUPPORTED for a shape it does not cover); in a reference build they
 * are the plain kernels. */
#if defined(ARDUINO) && defined(__ARM_FEATURE_DSP) && !defined(TINYFLEET_KERNELS_DSP)
#define TINYFLEET_KERNELS_DSP 1 /* as in tinyfleet_kernels_internal.h */
#endif
#ifdef TINYFLEET_KERNELS_DSP
tinyfleet_status tinyfleet_conv2d_s8_fast(const tinyfleet_window *w, const tinyfleet_requant *q,
                                          const int8_t *input, const int8_t *filter,
                                          const int32_t *bias, int8_t *output, int8_t *scratch);
tinyfleet_status tinyfleet_depthwise_conv2d_s8_fast(const tinyfleet_window *w,
                                                    int32_t depth_multiplier,
                                                    const tinyfleet_requant *q,
                                                    const int8_t *input, const int8_t *filter,
                                                    const int32_t *bias, int8_t *output);
tinyfleet_status tinyfleet_max_pool2d_s8_fast(const tinyfleet_window *w, int32_t act_min,
                                              int32_t act_max, const int8_t *input,
                                              int8_t *output);
#else
#define tinyfleet_conv2d_s8_fast tinyfleet_conv2d_s8
#define tinyfleet_depthwise_conv2d_s8_fast tinyfleet_depthwise_conv2d_s8
#define tinyfleet_max_pool2d_s8_fast tinyfleet_max_pool2d_s8
#endif

/* RESHAPE: the bytes do not change; copies unless input == output. */
tinyfleet_status tinyfleet_reshape_s8(int32_t size, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif
#endif
