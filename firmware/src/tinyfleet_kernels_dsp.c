/* Fast int8 kernels for cores with the DSP extension (Cortex-M4/M7/M33/M55), bit-exact
 * with the reference kernels and so with TFLM.
 *
 * Why they are exact: every accumulator is the same integer sum the reference forms
 * (int32 addition is associative, so order does not matter), padding taps add zero
 * (the im2col buffer pads with the input zero point, and x + input_offset is then 0),
 * and requantisation is the one shared function in tinyfleet_kernels_internal.h.
 *
 * Where the speed comes from (the ideas CMSIS-NN uses, written afresh):
 *  - SXTB16 unpacks 4 int8 weights into two int16 pairs ([w0,w2], [w1,w3]); SXTAB16
 *    does the same to 4 inputs and adds the input offset to each half in the same
 *    instruction; SMLAD then does two multiply-accumulates at once.
 *  - im2col: the receptive field of an output pixel is gathered into a small scratch
 *    column (caller-owned, planned inside the arena), so the inner loop is one dense
 *    dot product; 1x1 convolutions use the input pixel in place (no copy).
 *  - 2x2 output blocking: two pixels x two output channels per pass, so each loaded
 *    and unpacked word feeds two SMLADs.
 *  - depthwise: four channels per word with SMLABB/SMLATT, taps limited to the
 *    in-bounds window once per pixel instead of a test per tap.
 * Without the DSP extension (the host) the same code runs with portable C stand-ins
 * for the instructions, which is how ASan/UBSan check the indexing. */
#include <string.h>

#include "tinyfleet_kernels_internal.h"

/* Flash (issue 15: no larger than the reference build): the inner loops are built for
 * speed (-O2), the code around them for size. Requantisation (one call per output, ~25
 * instructions) and the im2col copies (one call per row of a receptive field) are shared
 * functions instead of inline copies at every use; im2col, its copies and max pooling
 * (no MACs) are -Os. Each costs a few instructions per output, not per MAC. */
#define NOINLINE __attribute__((noinline))
#if defined(__GNUC__) && !defined(__clang__)
#define SMALL __attribute__((optimize("Os")))
#else
#define SMALL
#endif

#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>
static inline uint32_t sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int8x4_t)x); }
static inline uint32_t sxtab16(uint32_t a, uint32_t x)
{
    return (uint32_t)__sxtab16((int16x2_t)a, (int8x4_t)x);
}
static inline int32_t smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlad((int16x2_t)a, (int16x2_t)b, acc);
}
static inline int32_t smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlabb((int32_t)a, (int32_t)b, acc);
}
static inline int32_t smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlatt((int32_t)a, (int32_t)b, acc);
}
/* The rotated forms are one instruction each; GCC 12 does not fold a separate rotate
 * into SXTB16/SXTAB16, so they are written out. */
static inline uint32_t sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
static inline uint32_t sxtab16_ror8(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
/* Per-byte signed max: SSUB8 sets the GE flags where a >= b, SEL picks by them. One
 * asm block, so nothing can be scheduled between the two. */
static inline uint32_t max_s8x4(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
}
/* Per-byte signed min: GE where a >= b, then SEL takes b there. */
static inline uint32_t min_s8x4(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm("ssub8 %0, %1, %2\n\tsel %0, %2, %1" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
}
#else
/* Portable stand-ins with the instructions' exact semantics (halves wrap at 16 bits,
 * the accumulator at 32 bits, all without signed-overflow UB). */
static inline int32_t lo16(uint32_t x) { return (int16_t)(uint16_t)(x & 0xFFFFu); }
static inline int32_t hi16(uint32_t x) { return (int16_t)(uint16_t)(x >> 16); }
static inline uint32_t sxtb16(uint32_t x)
{
    return ((uint32_t)(int32_t)(int8_t)(x & 0xFFu) & 0xFFFFu) |
           ((uint32_t)(int32_t)(int8_t)((x >> 16) & 0xFFu) << 16);
}
static inline uint32_t sxtab16(uint32_t a, uint32_t x)
{
    const uint32_t lo = (uint32_t)(lo16(a) + (int8_t)(x & 0xFFu)) & 0xFFFFu;
    const uint32_t hi = (uint32_t)(hi16(a) + (int8_t)((x >> 16) & 0xFFu)) & 0xFFFFu;
    return lo | (hi << 16);
}
static inline int32_t smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(lo16(a) * lo16(b)) +
                     (uint32_t)(hi16(a) * hi16(b)));
}
static inline int32_t smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(lo16(a) * lo16(b)));
}
static inline int32_t smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(hi16(a) * hi16(b)));
}
static inline uint32_t ror8(uint32_t x) { return (x >> 8) | (x << 24); }
static inline uint32_t max_s8x4(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    for (int i = 0; i < 32; i += 8) {
        const int8_t x = (int8_t)((a >> i) & 0xFFu), y = (int8_t)((b >> i) & 0xFFu);
        r |= (uint32_t)(uint8_t)(x > y ? x : y) << i;
    }
    return r;
}
static inline uint32_t min_s8x4(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    for (int i = 0; i < 32; i += 8) {
        const int8_t x = (int8_t)((a >> i) & 0xFFu), y = (int8_t)((b >> i) & 0xFFu);
        r |= (uint32_t)(uint8_t)(x < y ? x : y) << i;
    }
    return r;
}
static inline uint32_t sxtb16_ror8(uint32_t x) { return sxtb16(ror8(x)); }
static inline uint32_t sxtab16_ror8(uint32_t a, uint32_t x) { return sxtab16(a, ror8(x)); }
#endif

/* Unaligned 4-byte load; compiles to one LDR on ARMv7-M and later. */
static inline uint32_t load4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t pack_offset(int32_t offset)
{
    const uint32_t half = (uint32_t)offset & 0xFFFFu;
    return half | (half << 16);
}

/* Requantisation as tinyfleet_requantize computes it, arranged for speed:
 *  - the parameters are copied into locals once per kernel call (int8 output stores
 *    may alias anything, so fields read through q would be reloaded after each store);
 *  - no INT32_MIN x INT32_MIN saturation test: the generator's multipliers are in
 *    [0, 2^31) (QuantizeMultiplier), so that case cannot occur;
 *  - the shift is split into left/right parts without branches. */
typedef struct {
    const int32_t *mult;
    const int32_t *shift;
    int32_t out_off, lo, hi;
} rq_t;

static inline rq_t rq_load(const tinyfleet_requant *q)
{
    const rq_t r = {q->multiplier, q->shift, q->output_offset, q->act_min, q->act_max};
    return r;
}

/* (x * m + 2^30) >> 31: SRDHM for a multiplier in [0, 2^31) (see tinyfleet_srdhm).
 * On ARM one SMLAL with the nudge preloaded; GCC otherwise builds a full 64x64
 * multiply here. */
static inline int32_t high_mul(int32_t x, int32_t m)
{
#if defined(__ARM_FEATURE_DSP)
    uint32_t lo = 1u << 30;
    int32_t hi = 0;
    __asm("smlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"(x), "r"(m));
    return (int32_t)(((uint32_t)hi << 1) | (lo >> 31));
#else
    return (int32_t)(((int64_t)x * m + (1LL << 30)) >> 31);
#endif
}

static NOINLINE int8_t rq(const rq_t *r, int32_t acc, int32_t c)
{
    const int32_t s = r->shift[c];
    const int32_t left = s & ~(s >> 31); /* max(s, 0) without a branch */
    const int32_t right = left - s;      /* max(-s, 0) */
    const int32_t y = high_mul((int32_t)((uint32_t)acc << left), r->mult[c]);
    const int32_t mask = (int32_t)((1u << right) - 1u);
    const int32_t threshold = (mask >> 1) + (int32_t)((uint32_t)y >> 31);
    int32_t v = (y >> right) + ((y & mask) > threshold ? 1 : 0) + r->out_off;
    v = v < r->lo ? r->lo : v;
    v = v > r->hi ? r->hi : v;
    return (int8_t)v;
}

/* acc[0..3] += rows f0,f1 . columns c0,c1 over k values: acc = {f0c0, f0c1, f1c0, f1c1}.
 * Pointers advance instead of an index: fewer live registers, no spills on a
 * Cortex-M4 (16 registers hold 4 accumulators, 4 pointers, 4 unpacked inputs). */
static inline void dot_2x2(const int8_t *f0, const int8_t *f1, const int8_t *c0,
                           const int8_t *c1, int32_t k, int32_t offset, int32_t acc[4])
{
    const uint32_t off2 = pack_offset(offset);
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    const int8_t *const end = c0 + (k & ~3);
    while (c0 != end) {
        const uint32_t x0 = load4(c0), x1 = load4(c1);
        const uint32_t x0a = sxtab16(off2, x0), x0b = sxtab16_ror8(off2, x0);
        const uint32_t x1a = sxtab16(off2, x1), x1b = sxtab16_ror8(off2, x1);
        uint32_t w = load4(f0);
        uint32_t wa = sxtb16(w), wb = sxtb16_ror8(w);
        a00 = smlad(wa, x0a, smlad(wb, x0b, a00));
        a01 = smlad(wa, x1a, smlad(wb, x1b, a01));
        w = load4(f1);
        wa = sxtb16(w);
        wb = sxtb16_ror8(w);
        a10 = smlad(wa, x0a, smlad(wb, x0b, a10));
        a11 = smlad(wa, x1a, smlad(wb, x1b, a11));
        c0 += 4;
        c1 += 4;
        f0 += 4;
        f1 += 4;
    }
    for (int32_t i = 0; i < (k & 3); ++i) {
        const int32_t x0 = c0[i] + offset, x1 = c1[i] + offset;
        a00 += f0[i] * x0;
        a01 += f0[i] * x1;
        a10 += f1[i] * x0;
        a11 += f1[i] * x1;
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* acc[0..1] += rows f0,f1 . column c over k values. */
static void dot_2x1(const int8_t *f0, const int8_t *f1, const int8_t *c, int32_t k,
                    int32_t offset, int32_t acc[2])
{
    const uint32_t off2 = pack_offset(offset);
    int32_t a0 = acc[0], a1 = acc[1];
    int32_t i = 0;
    for (; i + 4 <= k; i += 4) {
        const uint32_t x = load4(c + i);
        const uint32_t xa = sxtab16(off2, x), xb = sxtab16_ror8(off2, x);
        uint32_t w = load4(f0 + i);
        a0 = smlad(sxtb16(w), xa, smlad(sxtb16_ror8(w), xb, a0));
        w = load4(f1 + i);
        a1 = smlad(sxtb16(w), xa, smlad(sxtb16_ror8(w), xb, a1));
    }
    for (; i < k; ++i) {
        const int32_t x = c[i] + offset;
        a0 += f0[i] * x;
        a1 += f1[i] * x;
    }
    acc[0] = a0;
    acc[1] = a1;
}

/* Short copies by hand; memcpy's call costs more than a few bytes. */
static NOINLINE SMALL void copy_bytes(int8_t *dst, const int8_t *src, int32_t n)
{
    if (n >= 16) {
        memcpy(dst, src, (size_t)n);
        return;
    }
    for (int32_t i = 0; i < n; ++i) {
        dst[i] = src[i];
    }
}

/* Word stores and an explicit tail: GCC would turn a byte loop into a memset call,
 * which costs more than the few bytes a padding tap needs. */
static NOINLINE SMALL void fill_bytes(int8_t *dst, int8_t value, int32_t n)
{
    const uint32_t pattern = 0x01010101u * (uint8_t)value;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        memcpy(dst + i, &pattern, sizeof pattern);
    }
    switch (n - i) {
    case 3: dst[i + 2] = value; /* fall through */
    case 2: dst[i + 1] = value; /* fall through */
    case 1: dst[i] = value; break;
    default: break;
    }
}

/* The receptive field of output pixel p as one column of k_h*k_w*in_c int8 values,
 * padded with the input zero point (which contributes 0 after the offset). */
static SMALL const int8_t *im2col(const tinyfleet_window *w, const int8_t *input, int32_t p,
                                  int8_t pad, int8_t *col)
{
    const int32_t oy = p / w->out_w, ox = p % w->out_w;
    const int32_t iy0 = oy * w->stride_h - w->pad_h, ix0 = ox * w->stride_w - w->pad_w;
    const int32_t row = w->k_w * w->in_c;
    int8_t *dst = col;
    for (int32_t ky = 0; ky < w->k_h; ++ky, dst += row) {
        const int32_t iy = iy0 + w->dil_h * ky;
        if (iy < 0 || iy >= w->in_h) {
            fill_bytes(dst, pad, row);
            continue;
        }
        const int8_t *src = input + iy * w->in_w * w->in_c;
        if (w->dil_w == 1 && ix0 >= 0 && ix0 + w->k_w <= w->in_w) {
            copy_bytes(dst, src + ix0 * w->in_c, row);
            continue;
        }
        for (int32_t kx = 0; kx < w->k_w; ++kx) {
            const int32_t ix = ix0 + w->dil_w * kx;
            if (ix < 0 || ix >= w->in_w) {
                fill_bytes(dst + kx * w->in_c, pad, w->in_c);
            } else {
                copy_bytes(dst + kx * w->in_c, src + ix * w->in_c, w->in_c);
            }
        }
    }
    return col;
}

int tinyfleet_conv2d_s8_dsp(const tinyfleet_window *w, const tinyfleet_requant *q,
                            const int8_t *input, const int8_t *filter, const int32_t *bias,
                            int8_t *output, int8_t *scratch)
{
    const int32_t k = w->k_h * w->k_w * w->in_c;
    /* 1x1 without padding: the column is the input pixel itself. */
    const int pointwise = w->k_h == 1 && w->k_w == 1 && w->pad_h == 0 && w->pad_w == 0;
    if (!pointwise && !scratch) {
        return 0;
    }
    const rq_t r = rq_load(q);
    const int8_t pad = (int8_t)(-q->input_offset);
    const int32_t n_pix = w->out_h * w->out_w;
    for (int32_t p = 0; p < n_pix; p += 2) {
        const int two = p + 1 < n_pix; /* an odd last pixel reuses column 0 */
        const int8_t *c0, *c1;
        if (pointwise) {
            const int32_t oy0 = p / w->out_w, ox0 = p % w->out_w;
            c0 = input + ((oy0 * w->stride_h) * w->in_w + ox0 * w->stride_w) * w->in_c;
            c1 = c0;
            if (two) {
                const int32_t oy1 = (p + 1) / w->out_w, ox1 = (p + 1) % w->out_w;
                c1 = input + ((oy1 * w->stride_h) * w->in_w + ox1 * w->stride_w) * w->in_c;
            }
        } else {
            c0 = im2col(w, input, p, pad, scratch);
            c1 = two ? im2col(w, input, p + 1, pad, scratch + k) : c0;
        }
        int8_t *o0 = output + p * w->out_c;
        int8_t *o1 = o0 + w->out_c;
        int32_t oc = 0;
        for (; oc + 2 <= w->out_c; oc += 2) {
            const int32_t b0 = bias ? bias[oc] : 0, b1 = bias ? bias[oc + 1] : 0;
            int32_t acc[4] = {b0, b0, b1, b1};
            dot_2x2(filter + oc * k, filter + (oc + 1) * k, c0, c1, k, q->input_offset, acc);
            o0[oc] = rq(&r, acc[0], oc);
            o0[oc + 1] = rq(&r, acc[2], oc + 1);
            if (two) {
                o1[oc] = rq(&r, acc[1], oc);
                o1[oc + 1] = rq(&r, acc[3], oc + 1);
            }
        }
        if (oc < w->out_c) { /* odd channel count: the last filter against both columns */
            const int32_t b0 = bias ? bias[oc] : 0;
            int32_t acc[2] = {b0, b0};
            const int8_t *f = filter + oc * k;
            dot_2x1(f, f, c0, k, q->input_offset, acc);
            o0[oc] = rq(&r, acc[0], oc);
            if (two) {
                acc[0] = b0;
                acc[1] = b0;
                dot_2x1(f, f, c1, k, q->input_offset, acc);
                o1[oc] = rq(&r, acc[0], oc);
            }
        }
    }
    return 1;
}

void tinyfleet_fully_connected_s8_dsp(int32_t in_features, int32_t out_features,
                                      const tinyfleet_requant *q, const int8_t *input,
                                      const int8_t *filter, const int32_t *bias,
                                      int8_t *output)
{
    const rq_t r = rq_load(q);
    int32_t o = 0;
    for (; o + 2 <= out_features; o += 2) {
        int32_t acc[2] = {bias ? bias[o] : 0, bias ? bias[o + 1] : 0};
        dot_2x1(filter + o * in_features, filter + (o + 1) * in_features, input, in_features,
                q->input_offset, acc);
        output[o] = rq(&r, acc[0], o);
        output[o + 1] = rq(&r, acc[1], o + 1);
    }
    if (o < out_features) {
        const int8_t *f = filter + o * in_features;
        int32_t acc[2] = {bias ? bias[o] : 0, 0};
        dot_2x1(f, f, input, in_features, q->input_offset, acc);
        output[o] = rq(&r, acc[0], o);
    }
}

/* One depthwise tap for 4 channels: a[i] += w[c+i] * (x[c+i] + offset). SMLAD would
 * add two channels together, so the halves are multiplied one by one (SMLABB/SMLATT). */
static inline void dw_tap4(const int8_t *x, const int8_t *f, uint32_t off2, int32_t a[4])
{
    const uint32_t xv = load4(x), wv = load4(f);
    const uint32_t xa = sxtab16(off2, xv), xb = sxtab16_ror8(off2, xv);
    const uint32_t wa = sxtb16(wv), wb = sxtb16_ror8(wv);
    a[0] = smlabb(wa, xa, a[0]); /* channel c   */
    a[2] = smlatt(wa, xa, a[2]); /* channel c+2 */
    a[1] = smlabb(wb, xb, a[1]); /* channel c+1 */
    a[3] = smlatt(wb, xb, a[3]); /* channel c+3 */
}

int tinyfleet_depthwise_conv2d_s8_dsp(const tinyfleet_window *w, int32_t depth_multiplier,
                                      const tinyfleet_requant *q, const int8_t *input,
                                      const int8_t *filter, const int32_t *bias,
                                      int8_t *output)
{
    /* four channels per word; other shapes are the reference kernel's (the generator
     * calls this only for layers it covers, codegen.dsp_covers_depthwise) */
    if (depth_multiplier != 1 || w->dil_h != 1 || w->dil_w != 1 || w->in_c % 4 != 0) {
        return 0;
    }
    const rq_t r = rq_load(q);
    const int32_t c_n = w->in_c, offset = q->input_offset;
    const uint32_t off2 = pack_offset(offset);
    for (int32_t oy = 0; oy < w->out_h; ++oy) {
        const int32_t iy0 = oy * w->stride_h - w->pad_h;
        const int32_t ky0 = iy0 < 0 ? -iy0 : 0;
        const int32_t ky1 = w->in_h - iy0 < w->k_h ? w->in_h - iy0 : w->k_h;
        for (int32_t ox = 0; ox < w->out_w; ++ox) {
            const int32_t ix0 = ox * w->stride_w - w->pad_w;
            const int32_t kx0 = ix0 < 0 ? -ix0 : 0;
            const int32_t kx1 = w->in_w - ix0 < w->k_w ? w->in_w - ix0 : w->k_w;
            int8_t *out = output + (oy * w->out_w + ox) * c_n;
            /* 3x3 with the whole window inside the input (the interior): the nine
             * taps unrolled, no bounds arithmetic per tap */
            const int full3x3 = w->k_h == 3 && w->k_w == 3 && ky0 == 0 && ky1 == 3 &&
                                kx0 == 0 && kx1 == 3;
            for (int32_t c = 0; c < c_n; c += 4) {
                int32_t a[4] = {0, 0, 0, 0};
                if (bias) {
                    a[0] = bias[c];
                    a[1] = bias[c + 1];
                    a[2] = bias[c + 2];
                    a[3] = bias[c + 3];
                }
                if (full3x3) {
                    const int32_t row = w->in_w * c_n;
                    const int8_t *x = input + (iy0 * w->in_w + ix0) * c_n + c;
                    const int8_t *f = filter + c;
                    dw_tap4(x, f, off2, a);
                    dw_tap4(x + c_n, f + c_n, off2, a);
                    dw_tap4(x + 2 * c_n, f + 2 * c_n, off2, a);
                    dw_tap4(x + row, f + 3 * c_n, off2, a);
                    dw_tap4(x + row + c_n, f + 4 * c_n, off2, a);
                    dw_tap4(x + row + 2 * c_n, f + 5 * c_n, off2, a);
                    dw_tap4(x + 2 * row, f + 6 * c_n, off2, a);
                    dw_tap4(x + 2 * row + c_n, f + 7 * c_n, off2, a);
                    dw_tap4(x + 2 * row + 2 * c_n, f + 8 * c_n, off2, a);
                } else {
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        /* the row start; ix0 + kx >= 0 inside the loop, so no pointer
                         * ever points before the input */
                        const int8_t *in = input + (iy0 + ky) * w->in_w * c_n + c;
                        const int8_t *f = filter + ky * w->k_w * c_n + c;
                        for (int32_t kx = kx0; kx < kx1; ++kx) {
                            dw_tap4(in + (ix0 + kx) * c_n, f + kx * c_n, off2, a);
                        }
                    }
                }
                out[c] = rq(&r, a[0], c);
                out[c + 1] = rq(&r, a[1], c + 1);
                out[c + 2] = rq(&r, a[2], c + 2);
                out[c + 3] = rq(&r, a[3], c + 3);
            }
        }
    }
    return 1;
}

SMALL int tinyfleet_max_pool2d_s8_dsp(const tinyfleet_window *w, int32_t act_min,
                                      int32_t act_max, const int8_t *input, int8_t *output)
{
    /* four channels per word: per tap one load and one SSUB8+SEL pair */
    if (w->in_c % 4 != 0) {
        return 0;
    }
    const uint32_t lo = 0x01010101u * (uint8_t)(int8_t)act_min;
    const uint32_t hi = 0x01010101u * (uint8_t)(int8_t)act_max;
    const int32_t c_n = w->in_c;
    for (int32_t oy = 0; oy < w->out_h; ++oy) {
        const int32_t iy0 = oy * w->stride_h - w->pad_h;
        const int32_t ky0 = iy0 < 0 ? -iy0 : 0;
        const int32_t ky1 = w->in_h - iy0 < w->k_h ? w->in_h - iy0 : w->k_h;
        for (int32_t ox = 0; ox < w->out_w; ++ox) {
            const int32_t ix0 = ox * w->stride_w - w->pad_w;
            const int32_t kx0 = ix0 < 0 ? -ix0 : 0;
            const int32_t kx1 = w->in_w - ix0 < w->k_w ? w->in_w - ix0 : w->k_w;
            int8_t *out = output + (oy * w->out_w + ox) * c_n;
            for (int32_t c = 0; c < c_n; c += 4) {
                uint32_t best = 0x80808080u; /* -128 in every byte, as the reference */
                for (int32_t ky = ky0; ky < ky1; ++ky) {
                    const int8_t *in = input + (iy0 + ky) * w->in_w * c_n + c;
                    for (int32_t kx = kx0; kx < kx1; ++kx) {
                        best = max_s8x4(load4(in + (ix0 + kx) * c_n), best);
                    }
                }
                /* clamp to [act_min, act_max], as the reference does after the max */
                best = min_s8x4(max_s8x4(best, lo), hi);
                memcpy(out + c, &best, sizeof best);
            }
        }
    }
    return 1;
}
