/* int8 kernels mirroring TFLite Micro's reference integer kernels, bit for bit. */
#include "tinyfleet_kernels.h"

#include <string.h>

#include "tinyfleet_kernels_internal.h"

int32_t tinyfleet_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift)
{
    return tinyfleet_mbqm(x, multiplier, shift);
}

static tinyfleet_status tinyfleet_check_window(const tinyfleet_window *w)
{
    if (w->in_h < 1 || w->in_w < 1 || w->in_c < 1 || w->out_h < 1 || w->out_w < 1 ||
        w->out_c < 1 || w->k_h < 1 || w->k_w < 1 || w->stride_h < 1 || w->stride_w < 1 ||
        w->dil_h < 1 || w->dil_w < 1) {
        return TINYFLEET_ERR_SHAPE;
    }
    return TINYFLEET_OK;
}

static tinyfleet_status conv_check(const tinyfleet_window *w, const tinyfleet_requant *q,
                                   const int8_t *input, const int8_t *filter, int8_t *output)
{
    if (!w || !q || !input || !filter || !output || !q->multiplier || !q->shift) {
        return TINYFLEET_ERR_NULL;
    }
    return tinyfleet_check_window(w);
}

tinyfleet_status tinyfleet_conv2d_s8(const tinyfleet_window *w, const tinyfleet_requant *q,
                                     const int8_t *input, const int8_t *filter,
                                     const int32_t *bias, int8_t *output, int8_t *scratch)
{
    tinyfleet_status st = conv_check(w, q, input, filter, output);
    if (st != TINYFLEET_OK) {
        return st;
    }
#ifdef TINYFLEET_KERNELS_DSP
    if (tinyfleet_conv2d_s8_dsp(w, q, input, filter, bias, output, scratch)) {
        return TINYFLEET_OK;
    }
#else
    (void)scratch; /* only the DSP kernels im2col into it */
#endif
    for (int32_t oy = 0; oy < w->out_h; ++oy) {
        const int32_t iy0 = oy * w->stride_h - w->pad_h;
        for (int32_t ox = 0; ox < w->out_w; ++ox) {
            const int32_t ix0 = ox * w->stride_w - w->pad_w;
            for (int32_t oc = 0; oc < w->out_c; ++oc) {
                int32_t acc = 0;
                for (int32_t ky = 0; ky < w->k_h; ++ky) {
                    const int32_t iy = iy0 + w->dil_h * ky;
                    if (iy < 0 || iy >= w->in_h) {
                        continue;
                    }
                    for (int32_t kx = 0; kx < w->k_w; ++kx) {
                        const int32_t ix = ix0 + w->dil_w * kx;
                        if (ix < 0 || ix >= w->in_w) {
                            continue;
                        }
                        const int8_t *in = input + ((iy * w->in_w) + ix) * w->in_c;
                        const int8_t *f = filter + ((oc * w->k_h + ky) * w->k_w + kx) * w->in_c;
                        for (int32_t ic = 0; ic < w->in_c; ++ic) {
                            acc += (int32_t)f[ic] * ((int32_t)in[ic] + q->input_offset);
                        }
                    }
                }
                if (bias) {
                    acc += bias[oc];
                }
                output[(oy * w->out_w + ox) * w->out_c + oc] = tinyfleet_requantize(acc, q, oc);
            }
        }
    }
    return TINYFLEET_OK;
}

static tinyfleet_status depthwise_check(const tinyfleet_window *w, int32_t depth_multiplier,
                                        const tinyfleet_requant *q, const int8_t *input,
                                        const int8_t *filter, int8_t *output)
{
    tinyfleet_status st = conv_check(w, q, input, filter, output);
    if (st == TINYFLEET_OK && (depth_multiplier < 1 || w->out_c != w->in_c * depth_multiplier)) {
        return TINYFLEET_ERR_SHAPE;
    }
    return st;
}

tinyfleet_status tinyfleet_depthwise_conv2d_s8(const tinyfleet_window *w, int32_t depth_multiplier,
                                 const tinyfleet_requant *q, const int8_t *input,
                                 const int8_t *filter, const int32_t *bias, int8_t *output)
{
    tinyfleet_status st = depthwise_check(w, depth_multiplier, q, input, filter, output);
    if (st != TINYFLEET_OK) {
        return st;
    }
#ifdef TINYFLEET_KERNELS_DSP
    if (tinyfleet_depthwise_conv2d_s8_dsp(w, depth_multiplier, q, input, filter, bias, output)) {
        return TINYFLEET_OK;
    }
#endif
    for (int32_t oy = 0; oy < w->out_h; ++oy) {
        const int32_t iy0 = oy * w->stride_h - w->pad_h;
        for (int32_t ox = 0; ox < w->out_w; ++ox) {
            const int32_t ix0 = ox * w->stride_w - w->pad_w;
            for (int32_t ic = 0; ic < w->in_c; ++ic) {
                for (int32_t m = 0; m < depth_multiplier; ++m) {
                    const int32_t oc = m + ic * depth_multiplier;
                    int32_t acc = 0;
                    for (int32_t ky = 0; ky < w->k_h; ++ky) {
                        const int32_t iy = iy0 + w->dil_h * ky;
                        if (iy < 0 || iy >= w->in_h) {
                            continue;
                        }
                        for (int32_t kx = 0; kx < w->k_w; ++kx) {
                            const int32_t ix = ix0 + w->dil_w * kx;
                            if (ix < 0 || ix >= w->in_w) {
                                continue;
                            }
                            const int32_t in_val = input[(iy * w->in_w + ix) * w->in_c + ic];
                            const int32_t f_val = filter[(ky * w->k_w + kx) * w->out_c + oc];
                            acc += f_val * (in_val + q->input_offset);
                        }
                    }
                    if (bias) {
                        acc += bias[oc];
                    }
                    output[(oy * w->out_w + ox) * w->out_c + oc] = tinyfleet_requantize(acc, q, oc);
                }
            }
        }
    }
    return TINYFLEET_OK;
}

tinyfleet_status tinyfleet_fully_connected_s8(int32_t in_features, int32_t out_features, const tinyfleet_requant *q,
                                const int8_t *input, const int8_t *filter, const int32_t *bias,
                                int8_t *output)
{
    if (!q || !input || !filter || !output || !q->multiplier || !q->shift) {
        return TINYFLEET_ERR_NULL;
    }
    if (in_features < 1 || out_features < 1) {
        return TINYFLEET_ERR_SHAPE;
    }
#ifdef TINYFLEET_KERNELS_DSP
    tinyfleet_fully_connected_s8_dsp(in_features, out_features, q, input, filter, bias, output);
    return TINYFLEET_OK;
#endif
    for (int32_t o = 0; o < out_features; ++o) {
        const int8_t *f = filter + o * in_features;
        int32_t acc = 0;
        for (int32_t i = 0; i < in_features; ++i) {
            acc += (int32_t)f[i] * ((int32_t)input[i] + q->input_offset);
        }
        if (bias) {
            acc += bias[o];
        }
        output[o] = tinyfleet_requantize(acc, q, o);
    }
    return TINYFLEET_OK;
}

static int32_t tinyfleet_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
static int32_t tinyfleet_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }

tinyfleet_status tinyfleet_average_pool2d_s8(const tinyfleet_window *w, int32_t act_min, int32_t act_max,
                               const int8_t *input, int8_t *output)
{
    if (!w || !input || !output) {
        return TINYFLEET_ERR_NULL;
    }
    tinyfleet_status st = tinyfleet_check_window(w);
    if (st != TINYFLEET_OK) {
        return st;
    }
    if (w->out_c != w->in_c) {
        return TINYFLEET_ERR_SHAPE;
    }
    for (int32_t oy = 0; oy < w->out_h; ++oy) {
        const int32_t iy0 = oy * w->stride_h - w->pad_h;
        const int32_t ky0 = tinyfleet_max_i32(0, -iy0);
        const int32_t ky1 = tinyfleet_min_i32(w->k_h, w->in_h - iy0);
        for (int32_t ox = 0; ox < w->out_w; ++ox) {
            const int32_t ix0 = ox * w->stride_w - w->pad_w;
            const int32_t kx0 = tinyfleet_max_i32(0, -ix0);
            const int32_t kx1 = tinyfleet_min_i32(w->k_w, w->in_w - ix0);
            const int32_t count = (ky1 - ky0) * (kx1 - kx0);
            if (ky1 <= ky0 || kx1 <= kx0) {
                return TINYFLEET_ERR_SHAPE; /* TFLM fails the same window */
            }
            for (int32_t c = 0; c < w->in_c; ++c) {
                int32_t acc = 0;
                for (int32_t ky = ky0; ky < ky1; ++ky) {
                    for (int32_t kx = kx0; kx < kx1; ++kx) {
                        acc += input[((iy0 + ky) * w->in_w + (ix0 + kx)) * w->in_c + c];
                    }
                }
                /* Round half away from zero, as TFLM does. */
                acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                acc = tinyfleet_min_i32(tinyfleet_max_i32(acc, act_min), act_max);
                output[(oy * w->out_w + ox) * w->out_c + c] = (int8_t)acc;
            }
        }
    }
    return TINYFLEET_OK;
}

static tinyfleet_status pool_check(const tinyfleet_window *w, const int8_t *input,
                                   int8_t *output)
{
    if (!w || !input || !output) {
        return TINYFLEET_ERR_NULL;
    }
    tinyfleet_status st = tinyfleet_check_window(w);
    if (st == TINYFLEET_OK && w->out_c != w->in_c) {
        return TINYFLEET_ERR_SHAPE;
    }
    return st;
}

tinyfleet_status tinyfleet_max_pool2d_s8(const tinyfleet_window *w, int32_t act_min, int32_t act_max,
                           const int8_t *input, int8_t *output)
{
    tinyfleet_status st = pool_check(w, input, output);
    if (st != TINYFLEET_OK) {
        return st;
    }
#ifdef TINYFLEET_KERNELS_DSP
    if (tinyfleet_max_pool2d_s8_dsp(w, act_min, act_max, input, output)) {
        return TINYFLEET_OK;
    }
#endif
    for (int32_t oy = 0; oy < w->out_h; ++oy) {
        const int32_t iy0 = oy * w->stride_h - w->pad_h;
        const int32_t ky0 = tinyfleet_max_i32(0, -iy0);
        const int32_t ky1 = tinyfleet_min_i32(w->k_h, w->in_h - iy0);
        for (int32_t ox = 0; ox < w->out_w; ++ox) {
            const int32_t ix0 = ox * w->stride_w - w->pad_w;
            const int32_t kx0 = tinyfleet_max_i32(0, -ix0);
            const int32_t kx1 = tinyfleet_min_i32(w->k_w, w->in_w - ix0);
            for (int32_t c = 0; c < w->in_c; ++c) {
                int32_t best = -128;
                for (int32_t ky = ky0; ky < ky1; ++ky) {
                    for (int32_t kx = kx0; kx < kx1; ++kx) {
                        best = tinyfleet_max_i32(
                            best, input[((iy0 + ky) * w->in_w + (ix0 + kx)) * w->in_c + c]);
                    }
                }
                best = tinyfleet_min_i32(tinyfleet_max_i32(best, act_min), act_max);
                output[(oy * w->out_w + ox) * w->out_c + c] = (int8_t)best;
            }
        }
    }
    return TINYFLEET_OK;
}

tinyfleet_status tinyfleet_reshape_s8(int32_t size, const int8_t *input, int8_t *output)
{
    if (!input || !output) {
        return TINYFLEET_ERR_NULL;
    }
    if (size < 0) {
        return TINYFLEET_ERR_SHAPE;
    }
    if (input != output) {
        memmove(output, input, (size_t)size);
    }
    return TINYFLEET_OK;
}

/* Entry points for layers the DSP kernels cover (the generator decides, see
 * tinyfleet_kernels.h): in a DSP build they never reach a reference loop, so a model
 * whose layers are all covered links none, and its flash holds one kernel per
 * operator, as a reference build does. A reference build has macros instead. */
#ifdef TINYFLEET_KERNELS_DSP
tinyfleet_status tinyfleet_conv2d_s8_fast(const tinyfleet_window *w, const tinyfleet_requant *q,
                                          const int8_t *input, const int8_t *filter,
                                          const int32_t *bias, int8_t *output, int8_t *scratch)
{
    tinyfleet_status st = conv_check(w, q, input, filter, output);
    if (st != TINYFLEET_OK) {
        return st;
    }
    return tinyfleet_conv2d_s8_dsp(w, q, input, filter, bias, output, scratch)
               ? TINYFLEET_OK
               : TINYFLEET_ERR_UNSUPPORTED;
}

tinyfleet_status tinyfleet_depthwise_conv2d_s8_fast(const tinyfleet_window *w,
                                                    int32_t depth_multiplier,
                                                    const tinyfleet_requant *q,
                                                    const int8_t *input, const int8_t *filter,
                                                    const int32_t *bias, int8_t *output)
{
    tinyfleet_status st = depthwise_check(w, depth_multiplier, q, input, filter, output);
    if (st != TINYFLEET_OK) {
        return st;
    }
    return tinyfleet_depthwise_conv2d_s8_dsp(w, depth_multiplier, q, input, filter, bias, output)
               ? TINYFLEET_OK
               : TINYFLEET_ERR_UNSUPPORTED;
}

tinyfleet_status tinyfleet_max_pool2d_s8_fast(const tinyfleet_window *w, int32_t act_min,
                                              int32_t act_max, const int8_t *input,
                                              int8_t *output)
{
    tinyfleet_status st = pool_check(w, input, output);
    if (st != TINYFLEET_OK) {
        return st;
    }
    return tinyfleet_max_pool2d_s8_dsp(w, act_min, act_max, input, output)
               ? TINYFLEET_OK
               : TINYFLEET_ERR_UNSUPPORTED;
}
#endif
