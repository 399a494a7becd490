/* The device loop; see tinyfleet_device.h. Head shape from tinyfleet_device_config.h (generated). */
#include "tinyfleet_device.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "tinyfleet_codec.h"
#include "tinyfleet_device_config.h"
#include "tinyfleet_framing.h"
#include "tinyfleet_head.h"
#ifdef TINYFLEET_HAVE_MODEL
#include "tinyfleet_model.h"
#endif
#ifdef TINYFLEET_HAVE_KWS_FRONTEND
#include <math.h>

#include "kws_frontend.h"
#ifndef TINYFLEET_HAVE_MODEL
#error "the keyword front end feeds a backbone: build with a model"
#endif
#ifdef TINYFLEET_DEVICE_COUNTER
#include "tinyfleet_job_port.h"
#define COUNTER_INIT() tinyfleet_job_port_init()
#define COUNTER() tinyfleet_job_port_counter()
#define INSNS(start, end) tinyfleet_job_port_insns((start), (end))
#else
#define COUNTER_INIT() ((void)0)
#define COUNTER() 0u
#define INSNS(start, end) ((void)(start), (void)(end), 0u)
#endif
#if TINYFLEET_MODEL_INPUT_SIZE != TINYFLEET_KWS_FEATURES
#error "the backbone's input is not the front end's 49 x 10 MFCCs"
#endif
/* An 'A' frame: kind byte, 1 s of int16 PCM, the target (int32 label or float32 y). */
#define AUDIO_BYTES (TINYFLEET_KWS_CLIP_SAMPLES * 2)
#define AUDIO_PAYLOAD (1 + AUDIO_BYTES + 4 * TINYFLEET_DEVICE_HEAD_MAX_WIDTH)
#define RX_PAYLOAD \
    (AUDIO_PAYLOAD > TINYFLEET_DEVICE_MAX_MESSAGE ? AUDIO_PAYLOAD : TINYFLEET_DEVICE_MAX_MESSAGE)
#else
#define RX_PAYLOAD TINYFLEET_DEVICE_MAX_MESSAGE
#endif

static const int32_t g_sizes[TINYFLEET_DEVICE_HEAD_LAYERS + 1] = TINYFLEET_DEVICE_HEAD_SIZES;
#define N_IN (g_sizes[0])
#define N_OUT (g_sizes[TINYFLEET_DEVICE_HEAD_LAYERS])

static float g_params[TINYFLEET_DEVICE_HEAD_PARAMS];
static float g_scratch[TINYFLEET_DEVICE_HEAD_SCRATCH];
static float g_x[TINYFLEET_DEVICE_HEAD_MAX_WIDTH];
static float g_y[TINYFLEET_DEVICE_HEAD_MAX_WIDTH];
/* The received frame, still COBS-encoded (1 byte per 254 more, and the CRC), decoded in place. */
static uint8_t g_rx[RX_PAYLOAD + RX_PAYLOAD / 254 + 16];
/* The reply buffers are sized for the reply this build sends: a dense phi, or (TinyMetaFed
 * build) the Top-P% int8 update, a tenth of it. */
static uint8_t g_msg[TINYFLEET_DEVICE_MAX_REPLY];
static uint8_t g_frame[TINYFLEET_DEVICE_MAX_REPLY + TINYFLEET_DEVICE_MAX_REPLY / 254 + 8];
#if TINYFLEET_DEVICE_DELTA_UPLOAD
/* theta's shared entries, kept to form the update phi - theta (then the update itself),
 * and the kept entries' indices (u32 LE) and int8 values. */
static float g_theta[TINYFLEET_DEVICE_HEAD_PARAMS];
static uint8_t g_sel_idx[4 * TINYFLEET_DEVICE_MAX_KEEP];
static int8_t g_sel_q[TINYFLEET_DEVICE_MAX_KEEP];
#endif
#ifdef TINYFLEET_HAVE_MODEL
static int8_t g_in[TINYFLEET_MODEL_INPUT_SIZE];
static int8_t g_emb[TINYFLEET_MODEL_OUTPUT_SIZE];
#endif
#ifdef TINYFLEET_HAVE_KWS_FRONTEND
static int16_t g_mfcc[TINYFLEET_KWS_FEATURES];
#endif

typedef struct {
    int training;
    uint32_t k, remaining;
    uint32_t recon_steps;  /* TinyMetaFed: the first samples train only the local layers */
    int32_t local_layers;
    int delta;             /* upload the Top-P% int8 update of the shared layers */
    uint32_t shared, keep;
    float lr;
    double loss_sum;
    uint32_t round, msg_id;
    uint8_t device_id[TINYFLEET_WIRE_MAX_DEVICE_ID];
    uint8_t device_len;
    uint8_t name[TINYFLEET_WIRE_MAX_KEY];
    uint8_t name_len;
    uint8_t ndim;
    uint32_t dims[TINYFLEET_WIRE_MAX_NDIM];
} tinyfleet_round;

static tinyfleet_round g_round;
static tinyfleet_head g_head;

static tinyfleet_status send_frame(const tinyfleet_port *port, uint8_t kind, const uint8_t *body, size_t len)
{
    if (len + 1 > sizeof g_msg) {
        return TINYFLEET_ERR_BUFFER;
    }
    /* The body may already sit in g_msg + 1 (the reply is encoded there). */
    if (body != g_msg + 1) {
        memmove(g_msg + 1, body, len);
    }
    g_msg[0] = kind;
    size_t n = 0;
    tinyfleet_status st = tinyfleet_frame_encode(g_msg, len + 1, g_frame, sizeof g_frame, &n);
    return st != TINYFLEET_OK ? st : port->write(port->ctx, g_frame, n);
}

static tinyfleet_status refuse(const tinyfleet_port *port, const char *reason)
{
    g_round.training = 0;
    return send_frame(port, 'E', (const uint8_t *)reason, strlen(reason));
}

static int key_is(const tinyfleet_wire_field *f, const char *key)
{
    return f->key_len == strlen(key) && memcmp(f->key, key, f->key_len) == 0;
}

#if TINYFLEET_DEVICE_DELTA_UPLOAD
static uint32_t abs_bits(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return bits & 0x7FFFFFFFu; /* |v| as an integer: same order as the magnitudes */
}

static uint32_t count_at_least(const float *d, uint32_t n, uint32_t t)
{
    uint32_t c = 0;
    for (uint32_t i = 0; i < n; ++i) {
        c += abs_bits(d[i]) >= t;
    }
    return c;
}

/* The update phi - theta of the shared entries, its `keep` largest magnitudes (ties: the
 * lower index, as numpy's stable argsort), int8-quantised as tinyfleet.device.wire.compress
 * does it: scale = float32((hi - lo) / 255) over [min(x, 0), max(x, 0)], zero point
 * round-half-even(-128 - lo / scale), q = rint(x / scale) + zp in float32, clamped. */
static tinyfleet_status make_update(tinyfleet_wire_array *a)
{
    const uint32_t n = g_round.shared, keep = g_round.keep;
    for (uint32_t i = 0; i < n; ++i) {
        g_theta[i] = g_params[i] - g_theta[i];
        if (abs_bits(g_theta[i]) >= 0x7F800000u) {
            return TINYFLEET_ERR_RANGE; /* NaN or Inf cannot be quantised */
        }
    }
    /* Largest threshold t with at least `keep` magnitudes >= t (bisection on the bits). */
    uint32_t lo = 0, hi = 0x7F800000u;
    while (hi - lo > 1) {
        const uint32_t mid = lo + (hi - lo) / 2;
        if (count_at_least(g_theta, n, mid) >= keep) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    uint32_t ties = keep - count_at_least(g_theta, n, lo + 1);
    float vmin = 0.0f, vmax = 0.0f;
    uint32_t j = 0;
    for (uint32_t i = 0; i < n && j < keep; ++i) {
        const uint32_t m = abs_bits(g_theta[i]);
        if (m > lo || (m == lo && ties > 0)) {
            if (m == lo) {
                --ties;
            }
            for (int b = 0; b < 4; ++b) {
                g_sel_idx[4 * j + (uint32_t)b] = (uint8_t)(i >> (8 * b));
            }
            g_theta[j++] = g_theta[i]; /* compact the kept values in place (j <= i) */
            vmin = g_theta[j - 1] < vmin ? g_theta[j - 1] : vmin;
            vmax = g_theta[j - 1] > vmax ? g_theta[j - 1] : vmax;
        }
    }
    float scale = vmax > vmin ? (float)(((double)vmax - (double)vmin) / 255.0) : 1.0f;
    scale = scale < FLT_MIN ? FLT_MIN : scale;
    double zp = nearbyint(-128.0 - (double)vmin / (double)scale);
    zp = zp < -128.0 ? -128.0 : (zp > 127.0 ? 127.0 : zp);
    for (uint32_t i = 0; i < keep; ++i) {
        float q = nearbyintf(g_theta[i] / scale) + (float)zp;
        q = q < -128.0f ? -128.0f : (q > 127.0f ? 127.0f : q);
        g_sel_q[i] = (int8_t)q;
    }
    a->dtype = TINYFLEET_DTYPE_INT8;
    a->sparse = 1;
    a->count = keep;
    a->scale = scale;
    a->zero_point = (int32_t)zp;
    a->indices = g_sel_idx;
    a->values = (const uint8_t *)g_sel_q;
    return TINYFLEET_OK;
}
#endif

static tinyfleet_status send_reply(const tinyfleet_port *port)
{
    tinyfleet_wire_message reply;
    memset(&reply, 0, sizeof reply);
    reply.type = TINYFLEET_MSG_REPLY;
    reply.round = g_round.round;
    reply.msg_id = g_round.msg_id;
    reply.device_id = g_round.device_id;
    reply.device_len = g_round.device_len;
    const double loss = g_round.k ? g_round.loss_sum / (double)g_round.k : 0.0;
    uint8_t loss_bytes[8], steps_bytes[8];
    uint64_t bits;
    memcpy(&bits, &loss, 8);
    for (int i = 0; i < 8; ++i) {
        loss_bytes[i] = (uint8_t)(bits >> (8 * i));
        steps_bytes[i] = (uint8_t)((uint64_t)g_round.k >> (8 * i));
    }
    reply.n_fields = 2;
    reply.fields[0] = (tinyfleet_wire_field){(const uint8_t *)"loss", 4, TINYFLEET_FIELD_FLOAT64, 8, loss_bytes};
    reply.fields[1] =
        (tinyfleet_wire_field){(const uint8_t *)"sgd-steps", 9, TINYFLEET_FIELD_INT64, 8, steps_bytes};
    reply.n_arrays = 1;
    tinyfleet_wire_array *a = &reply.arrays[0];
    a->name = g_round.name;
    a->name_len = g_round.name_len;
    a->dtype = TINYFLEET_DTYPE_FLOAT32;
    a->ndim = g_round.ndim;
    memcpy(a->dims, g_round.dims, sizeof a->dims);
    a->size = TINYFLEET_DEVICE_HEAD_PARAMS;
    a->count = TINYFLEET_DEVICE_HEAD_PARAMS;
    a->scale = 1.0f;
    /* float32 little-endian on the wire: the Cortex-M4 and x86 hosts are little-endian. */
    a->values = (const uint8_t *)g_params;
#if TINYFLEET_DEVICE_DELTA_UPLOAD
    if (g_round.delta) {
        tinyfleet_status st = make_update(a);
        if (st != TINYFLEET_OK) {
            return refuse(port, "cannot int8-quantise NaN or Inf values");
        }
    }
#endif
    size_t n = 0;
    tinyfleet_status st = tinyfleet_wire_encode(&reply, g_msg + 1, sizeof g_msg - 1, &n);
    g_round.training = 0;
    return st != TINYFLEET_OK ? st : send_frame(port, 'R', g_msg + 1, n);
}

static tinyfleet_status on_task(const tinyfleet_port *port, const uint8_t *data, size_t len)
{
    tinyfleet_wire_message task;
    tinyfleet_status st = tinyfleet_wire_decode(data, len, TINYFLEET_DEVICE_MAX_MESSAGE, &task);
    if (st != TINYFLEET_OK) {
        return refuse(port, tinyfleet_wire_error_code(st));
    }
    if (task.type != TINYFLEET_MSG_TRAIN || task.n_arrays != 1) {
        return refuse(port, "expected a TRAIN task with one parameter array");
    }
    int64_t k = -1, recon = 0, local = 0;
    double lr = -1.0, top_p = 1.0;
    int delta = 0, int8 = 0;
    for (uint8_t i = 0; i < task.n_fields; ++i) {
        const tinyfleet_wire_field *f = &task.fields[i];
        if (key_is(f, "k") && f->type == TINYFLEET_FIELD_INT64) {
            k = tinyfleet_wire_field_int64(f);
        } else if (key_is(f, "inner-lr") && f->type == TINYFLEET_FIELD_FLOAT64) {
            lr = tinyfleet_wire_field_float64(f);
        } else if (key_is(f, "recon-steps") && f->type == TINYFLEET_FIELD_INT64) {
            recon = tinyfleet_wire_field_int64(f);
        } else if (key_is(f, "local-layers") && f->type == TINYFLEET_FIELD_INT64) {
            local = tinyfleet_wire_field_int64(f);
        } else if (key_is(f, "top-p") && f->type == TINYFLEET_FIELD_FLOAT64) {
            top_p = tinyfleet_wire_field_float64(f);
        } else if (key_is(f, "upload-int8") && f->type == TINYFLEET_FIELD_BOOL) {
            int8 = f->value_len == 1 && f->value[0] != 0;
        } else if (key_is(f, "upload") && f->type == TINYFLEET_FIELD_STRING) {
            delta = f->value_len == 5 && memcmp(f->value, "delta", 5) == 0;
        } else if (key_is(f, "algorithm") &&
                   !(f->type == TINYFLEET_FIELD_STRING && f->value_len == 6 &&
                     memcmp(f->value, "online", 6) == 0)) {
            return refuse(port, "this firmware runs online rounds only");
        }
    }
    if (k < 0 || k > 1000000 || !(lr >= 0.0)) {
        return refuse(port, "task lacks k or inner-lr");
    }
    if (recon < 0 || recon > k || (recon > 0 && (local < 1 || local >= TINYFLEET_DEVICE_HEAD_LAYERS))) {
        return refuse(port, "recon-steps needs 1 <= local-layers < layers and <= k");
    }
    if (local < 0 || local >= TINYFLEET_DEVICE_HEAD_LAYERS) {
        return refuse(port, "local-layers out of range");
    }
    uint32_t shared = TINYFLEET_DEVICE_HEAD_PARAMS, keep = 0;
    for (int32_t layer = TINYFLEET_DEVICE_HEAD_LAYERS - (int32_t)local; layer < TINYFLEET_DEVICE_HEAD_LAYERS; ++layer) {
        shared -= (uint32_t)(g_sizes[layer] * g_sizes[layer + 1] + g_sizes[layer + 1]);
    }
#if TINYFLEET_DEVICE_DELTA_UPLOAD
    if (!delta || !int8 || (top_p >= 1.0 && local == 0)) {
        return refuse(port, "this build uploads the sparse int8 update only");
    }
    if (!(top_p > 0.0) || top_p > TINYFLEET_DEVICE_MAX_TOP_P) {
        return refuse(port, "top-p out of this build's range");
    }
    keep = (uint32_t)ceil(top_p * (double)shared);
    keep = keep < 1 ? 1 : keep;
#else
    /* This build replies phi, dense: the bridge host forms the update (the round keeps
     * TinyMetaFed's numbers, not its device RAM). */
    (void)top_p;
    (void)int8;
#endif
    const tinyfleet_wire_array *theta = &task.arrays[0];
    if (theta->size != TINYFLEET_DEVICE_HEAD_PARAMS ||
        tinyfleet_wire_array_dense(theta, g_params, TINYFLEET_DEVICE_HEAD_PARAMS) != TINYFLEET_OK) {
        return refuse(port, "parameter array does not fit this head");
    }
    g_round.training = 1;
    g_round.k = (uint32_t)k;
    g_round.remaining = (uint32_t)k;
    g_round.lr = (float)lr;
    g_round.recon_steps = (uint32_t)recon;
    g_round.local_layers = (int32_t)local;
    g_round.delta = delta;
    g_round.shared = shared;
    g_round.keep = keep;
#if TINYFLEET_DEVICE_DELTA_UPLOAD
    memcpy(g_theta, g_params, (size_t)shared * sizeof(float));
#endif
    g_round.loss_sum = 0.0;
    g_round.round = task.round;
    g_round.msg_id = task.msg_id;
    memcpy(g_round.device_id, task.device_id, task.device_len);
    g_round.device_len = task.device_len;
    memcpy(g_round.name, theta->name, theta->name_len);
    g_round.name_len = theta->name_len;
    g_round.ndim = theta->ndim;
    memcpy(g_round.dims, theta->dims, sizeof g_round.dims);
    return g_round.k == 0 ? send_reply(port) : TINYFLEET_OK;
}

#ifdef TINYFLEET_HAVE_KWS_FRONTEND
/* 1 s of little-endian int16 PCM -> q8.7 MFCCs (CMSIS-DSP) -> the backbone's int8 input,
 * quantised exactly as the Python device does (tinyfleet.device.wire.quant
 * quantize_half_away on float32 q / 128): round half away from zero, then clamp. */
static tinyfleet_status audio_to_input(const uint8_t *pcm)
{
    if (tinyfleet_kws_frontend_run_le(pcm, g_mfcc) != 0) {
        return TINYFLEET_ERR_SHAPE;
    }
    for (int32_t i = 0; i < TINYFLEET_KWS_FEATURES; ++i) {
        const float v = ((float)g_mfcc[i] / 128.0f) / TINYFLEET_MODEL_INPUT_SCALE;
        float r = floorf(fabsf(v) + 0.5f);
        if (v < 0.0f) {
            r = -r;
        }
        float q = r + (float)TINYFLEET_MODEL_INPUT_ZERO_POINT;
        q = q < -128.0f ? -128.0f : (q > 127.0f ? 127.0f : q);
        g_in[i] = (int8_t)q;
    }
    return TINYFLEET_OK;
}

/* 'X' + PCM: the front end and the backbone without training; replies 'X' + int16 MFCCs,
 * the int8 input, the int8 embedding (tests compare them with the Python device), then
 * uint32 instructions of the front end (incl. quantising its output) and of the backbone
 * (SysTick under QEMU -icount; 0 where the image has no counter). */
static tinyfleet_status on_probe(const tinyfleet_port *port, const uint8_t *data, size_t len)
{
    if (len != AUDIO_BYTES) {
        return refuse(port, "audio window has the wrong size");
    }
    const uint32_t t0 = COUNTER();
    tinyfleet_status st = audio_to_input(data);
    const uint32_t t1 = COUNTER();
    if (st == TINYFLEET_OK) {
        st = tinyfleet_model_invoke(g_in, g_emb);
    }
    const uint32_t t2 = COUNTER();
    if (st != TINYFLEET_OK) {
        return refuse(port, tinyfleet_status_name(st));
    }
    const uint32_t insns[2] = {INSNS(t0, t1), INSNS(t1, t2)};
    uint8_t *out = g_msg + 1;
    const size_t n = sizeof g_mfcc + sizeof g_in + sizeof g_emb + sizeof insns;
    if (n + 1 > sizeof g_msg) {
        return refuse(port, "probe reply does not fit");
    }
    memcpy(out, g_mfcc, sizeof g_mfcc);
    memcpy(out + sizeof g_mfcc, g_in, sizeof g_in);
    memcpy(out + sizeof g_mfcc + sizeof g_in, g_emb, sizeof g_emb);
    memcpy(out + sizeof g_mfcc + sizeof g_in + sizeof g_emb, insns, sizeof insns);
    return send_frame(port, 'X', out, n);
}
#endif

/* kind 'S': float32 head input; 'I': int8 backbone input; 'A': 1 s of int16 PCM. */
static tinyfleet_status on_sample(const tinyfleet_port *port, const uint8_t *data, size_t len, uint8_t kind)
{
    if (!g_round.training) {
        return refuse(port, "sample without a task");
    }
    size_t x_bytes = (size_t)N_IN * 4;
    if (kind == 'I') {
#ifdef TINYFLEET_HAVE_MODEL
        x_bytes = TINYFLEET_MODEL_INPUT_SIZE;
#else
        return refuse(port, "this firmware has no backbone");
#endif
    } else if (kind == 'A') {
#ifdef TINYFLEET_HAVE_KWS_FRONTEND
        x_bytes = AUDIO_BYTES;
#else
        return refuse(port, "this firmware has no audio front end");
#endif
    }
    const size_t y_bytes = TINYFLEET_DEVICE_HEAD_LOSS == TINYFLEET_LOSS_MSE ? (size_t)N_OUT * 4 : 4;
    if (len != x_bytes + y_bytes) {
        return refuse(port, "sample has the wrong size");
    }
    if (kind == 'S') {
        memcpy(g_x, data, x_bytes);
    }
#ifdef TINYFLEET_HAVE_MODEL
    else {
        if (TINYFLEET_MODEL_OUTPUT_SIZE != N_IN) {
            return refuse(port, "backbone output does not match the head input");
        }
        tinyfleet_status st = TINYFLEET_OK;
#ifdef TINYFLEET_HAVE_KWS_FRONTEND
        if (kind == 'A') {
            st = audio_to_input(data);
        } else
#endif
        {
            memcpy(g_in, data, x_bytes);
        }
        if (st == TINYFLEET_OK) {
            st = tinyfleet_model_invoke(g_in, g_emb);
        }
        if (st != TINYFLEET_OK) {
            return refuse(port, tinyfleet_status_name(st));
        }
        /* Dequantise exactly as the Python backbone does: (float(q) - zp) * scale. */
        for (int32_t i = 0; i < N_IN; ++i) {
            g_x[i] = ((float)g_emb[i] - (float)TINYFLEET_MODEL_OUTPUT_ZERO_POINT) * TINYFLEET_MODEL_OUTPUT_SCALE;
        }
    }
#endif
    int32_t label = 0;
    if (TINYFLEET_DEVICE_HEAD_LOSS == TINYFLEET_LOSS_MSE) {
        memcpy(g_y, data + x_bytes, y_bytes);
    } else {
        memcpy(&label, data + x_bytes, 4);
    }
    float loss = 0.0f;
    const uint32_t step = g_round.k - g_round.remaining;
    const int32_t train_layers = step < g_round.recon_steps ? g_round.local_layers : TINYFLEET_DEVICE_HEAD_LAYERS;
    tinyfleet_status st =
        tinyfleet_head_sgd_step_top(&g_head, g_x, g_y, label, g_round.lr, train_layers, &loss);
    if (st != TINYFLEET_OK) {
        return refuse(port, tinyfleet_status_name(st));
    }
    g_round.loss_sum += (double)loss;
    return --g_round.remaining == 0 ? send_reply(port) : TINYFLEET_OK;
}

tinyfleet_status tinyfleet_device_run(const tinyfleet_port *port)
{
    if (!port || !port->read || !port->write) {
        return TINYFLEET_ERR_NULL;
    }
    tinyfleet_status st = tinyfleet_head_init(&g_head, TINYFLEET_DEVICE_HEAD_LAYERS, g_sizes, TINYFLEET_DEVICE_HEAD_ACTIVATION,
                                TINYFLEET_DEVICE_HEAD_LOSS, g_params, TINYFLEET_DEVICE_HEAD_PARAMS, g_scratch,
                                TINYFLEET_DEVICE_HEAD_SCRATCH);
    if (st != TINYFLEET_OK) {
        return st;
    }
#ifdef TINYFLEET_HAVE_KWS_FRONTEND
    if (tinyfleet_kws_frontend_init() != 0) {
        return TINYFLEET_ERR_SHAPE;
    }
    COUNTER_INIT();
#endif
    tinyfleet_frame_rx rx;
    tinyfleet_frame_rx_init(&rx, g_rx, sizeof g_rx);
    uint8_t chunk[64];
    for (;;) {
        size_t got = 0;
        st = port->read(port->ctx, chunk, sizeof chunk, &got);
        if (st != TINYFLEET_OK) {
            return st;
        }
        for (size_t i = 0; i < got; ++i) {
            size_t len = 0;
            st = tinyfleet_frame_rx_push(&rx, chunk[i], &len);
            if (st == TINYFLEET_ERR_TRUNCATED) {
                continue; /* frame still incomplete */
            }
            if (st != TINYFLEET_OK || len == 0) {
                continue; /* line noise: drop the frame, keep listening */
            }
            const uint8_t kind = g_rx[0];
            if (kind == 'Q') {
                return TINYFLEET_OK;
            }
            if (kind == 'T') {
                st = on_task(port, g_rx + 1, len - 1);
            } else if (kind == 'S' || kind == 'I' || kind == 'A') {
                st = on_sample(port, g_rx + 1, len - 1, kind);
#ifdef TINYFLEET_HAVE_KWS_FRONTEND
            } else if (kind == 'X') {
                st = on_probe(port, g_rx + 1, len - 1);
#endif
            } else {
                st = refuse(port, "unknown frame kind");
            }
            if (st == TINYFLEET_ERR_IO) {
                return st;
            }
        }
    }
}
