/* Test/benchmark driver shared by the host and QEMU ports.
 *
 * Reads one job file, writes one result file (paths from argv, or tinyfleet_job.bin /
 * tinyfleet_result.bin in the current directory when there are no arguments, as under QEMU
 * semihosting). All integers little-endian. Job kinds (4-byte magic first):
 *   "INFR" n:i32, then n * TINYFLEET_MODEL_INPUT_SIZE int8   -> n * TINYFLEET_MODEL_OUTPUT_SIZE int8
 *   "HEAD" n_layers:i32, sizes:i32[n_layers+1], activation:i32, loss:i32, lr:f32,
 *          n_samples:i32, params:f32[P], then per sample x:f32[in] and either
 *          target:f32[out] (mse) or label:i32 (softmax_ce)
 *                                                      -> params:f32[P], losses:f32[n]
 *   "BNCH" reps:i32, head job body as for HEAD with n_samples = 1
 *          -> "insns" per inference and per SGD step as two u32 (port counter deltas
 *             divided by reps; 0 where the port has no counter)
 *   "CALB" n:i32 -> u32 counted instructions for a loop of exactly 2*n instructions
 *          (Cortex-M only: checks the port's counter scale)
 */
#include <stdio.h>
#include <string.h>

#include "tinyfleet_head.h"
#include "tinyfleet_job_port.h"
#include "tinyfleet_model.h"

/* Buffer capacities; the report build sets them to the head's exact sizes so that the
 * linked RAM figure is what a device with that head needs. */
#ifndef TINYFLEET_JOB_MAX_PARAMS
#define TINYFLEET_JOB_MAX_PARAMS 16384
#endif
#ifndef TINYFLEET_JOB_MAX_WIDTH
#define TINYFLEET_JOB_MAX_WIDTH 1024
#endif
#ifndef TINYFLEET_JOB_MAX_SCRATCH
#define TINYFLEET_JOB_MAX_SCRATCH (4 * TINYFLEET_JOB_MAX_WIDTH)
#endif
#ifndef TINYFLEET_JOB_MAX_SAMPLES
#define TINYFLEET_JOB_MAX_SAMPLES 4096
#endif

static float g_params[TINYFLEET_JOB_MAX_PARAMS];
static float g_scratch[TINYFLEET_JOB_MAX_SCRATCH];
static float g_x[TINYFLEET_JOB_MAX_WIDTH];
static float g_target[TINYFLEET_JOB_MAX_WIDTH];
static int8_t g_in[TINYFLEET_MODEL_INPUT_SIZE];
static int8_t g_out[TINYFLEET_MODEL_OUTPUT_SIZE];

static int read_exact(FILE *f, void *dst, size_t n) { return fread(dst, 1, n, f) == n ? 0 : -1; }

static int read_i32(FILE *f, int32_t *v) { return read_exact(f, v, 4); }

static int run_inference_job(FILE *in, FILE *out)
{
    int32_t n = 0;
    if (read_i32(in, &n) || n < 0) {
        return 10;
    }
    for (int32_t i = 0; i < n; ++i) {
        if (read_exact(in, g_in, sizeof g_in)) {
            return 11;
        }
        tinyfleet_status st = tinyfleet_model_invoke(g_in, g_out);
        if (st != TINYFLEET_OK) {
            printf("tinyfleet_model_invoke: %s\n", tinyfleet_status_name(st));
            return 12;
        }
        if (fwrite(g_out, 1, sizeof g_out, out) != sizeof g_out) {
            return 13;
        }
    }
    return 0;
}

/* Reads the head description and initial params; n_samples into *n_samples. */
static int read_head(FILE *in, tinyfleet_head *head, float *lr, int32_t *n_samples)
{
    int32_t n_layers = 0, sizes[TINYFLEET_HEAD_MAX_LAYERS + 1], act = 0, loss = 0;
    if (read_i32(in, &n_layers) || n_layers < 1 || n_layers > TINYFLEET_HEAD_MAX_LAYERS) {
        return 20;
    }
    for (int32_t i = 0; i <= n_layers; ++i) {
        if (read_i32(in, &sizes[i]) || sizes[i] < 1 || sizes[i] > TINYFLEET_JOB_MAX_WIDTH) {
            return 21;
        }
    }
    if (read_i32(in, &act) || read_i32(in, &loss) || read_exact(in, lr, 4) ||
        read_i32(in, n_samples) || *n_samples < 0) {
        return 22;
    }
    tinyfleet_status st = tinyfleet_head_init(head, n_layers, sizes, (tinyfleet_activation)act, (tinyfleet_loss)loss,
                                g_params, TINYFLEET_JOB_MAX_PARAMS, g_scratch,
                                (int32_t)(sizeof g_scratch / sizeof g_scratch[0]));
    if (st != TINYFLEET_OK) {
        printf("tinyfleet_head_init: %s\n", tinyfleet_status_name(st));
        return 23;
    }
    const int32_t n_params = tinyfleet_head_num_params(n_layers, sizes);
    if (read_exact(in, g_params, (size_t)n_params * 4)) {
        return 24;
    }
    return 0;
}

static int read_sample(FILE *in, const tinyfleet_head *head, int32_t *label)
{
    const int32_t n_in = head->sizes[0], n_out = head->sizes[head->n_layers];
    if (read_exact(in, g_x, (size_t)n_in * 4)) {
        return 30;
    }
    if (head->loss == TINYFLEET_LOSS_MSE) {
        return read_exact(in, g_target, (size_t)n_out * 4) ? 31 : 0;
    }
    return read_i32(in, label) ? 32 : 0;
}

static int run_head_job(FILE *in, FILE *out)
{
    tinyfleet_head head;
    float lr = 0.0f;
    int32_t n = 0;
    int rc = read_head(in, &head, &lr, &n);
    if (rc) {
        return rc;
    }
    static float losses[TINYFLEET_JOB_MAX_SAMPLES];
    if (n > TINYFLEET_JOB_MAX_SAMPLES) {
        return 33;
    }
    for (int32_t i = 0; i < n; ++i) {
        int32_t label = 0;
        rc = read_sample(in, &head, &label);
        if (rc) {
            return rc;
        }
        tinyfleet_status st = tinyfleet_head_sgd_step(&head, g_x, g_target, label, lr, &losses[i]);
        if (st != TINYFLEET_OK) {
            printf("tinyfleet_head_sgd_step: %s\n", tinyfleet_status_name(st));
            return 34;
        }
    }
    const int32_t n_params = tinyfleet_head_num_params(head.n_layers, head.sizes);
    if (fwrite(g_params, 4, (size_t)n_params, out) != (size_t)n_params ||
        fwrite(losses, 4, (size_t)n, out) != (size_t)n) {
        return 35;
    }
    return 0;
}

static int run_bench_job(FILE *in, FILE *out)
{
    int32_t reps = 0;
    if (read_i32(in, &reps) || reps < 1) {
        return 40;
    }
    tinyfleet_head head;
    float lr = 0.0f;
    int32_t n = 0, label = 0;
    int rc = read_head(in, &head, &lr, &n);
    if (rc || n != 1 || (rc = read_sample(in, &head, &label)) != 0) {
        return rc ? rc : 41;
    }
    memset(g_in, 0, sizeof g_in);
    /* Warm up once so that both loops measure steady-state code paths. */
    (void)tinyfleet_model_invoke(g_in, g_out);
    uint32_t t0 = tinyfleet_job_port_counter();
    for (int32_t i = 0; i < reps; ++i) {
        (void)tinyfleet_model_invoke(g_in, g_out);
    }
    uint32_t t1 = tinyfleet_job_port_counter();
    for (int32_t i = 0; i < reps; ++i) {
        (void)tinyfleet_head_sgd_step(&head, g_x, g_target, label, lr, NULL);
    }
    uint32_t t2 = tinyfleet_job_port_counter();
    uint32_t result[2] = {tinyfleet_job_port_insns(t0, t1) / (uint32_t)reps,
                          tinyfleet_job_port_insns(t1, t2) / (uint32_t)reps};
    printf("insns_per_inference=%lu insns_per_sgd_step=%lu\n", (unsigned long)result[0],
           (unsigned long)result[1]);
    return fwrite(result, 4, 2, out) == 2 ? 0 : 42;
}

static int run_calibration_job(FILE *in, FILE *out)
{
    int32_t n = 0;
    if (read_i32(in, &n) || n < 1) {
        return 50;
    }
#if defined(__arm__)
    uint32_t t0 = tinyfleet_job_port_counter();
    uint32_t count = (uint32_t)n;
    /* Exactly two instructions per iteration. */
    __asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(count) : : "cc");
    uint32_t insns = tinyfleet_job_port_insns(t0, tinyfleet_job_port_counter());
#else
    uint32_t insns = 0;
#endif
    return fwrite(&insns, 4, 1, out) == 1 ? 0 : 51;
}

int main(int argc, char **argv)
{
    tinyfleet_job_port_init();
    const char *job_path = argc > 2 ? argv[1] : "tinyfleet_job.bin";
    const char *result_path = argc > 2 ? argv[2] : "tinyfleet_result.bin";
    FILE *in = fopen(job_path, "rb");
    if (!in) {
        printf("cannot open %s\n", job_path);
        return 2;
    }
    FILE *out = fopen(result_path, "wb");
    if (!out) {
        fclose(in);
        printf("cannot open %s\n", result_path);
        return 3;
    }
    char magic[4];
    int rc = 4;
    if (read_exact(in, magic, 4) == 0) {
        if (memcmp(magic, "INFR", 4) == 0) {
            rc = run_inference_job(in, out);
        } else if (memcmp(magic, "HEAD", 4) == 0) {
            rc = run_head_job(in, out);
        } else if (memcmp(magic, "BNCH", 4) == 0) {
            rc = run_bench_job(in, out);
        } else if (memcmp(magic, "CALB", 4) == 0) {
            rc = run_calibration_job(in, out);
        }
    }
    fclose(in);
    if (fclose(out) != 0 && rc == 0) {
        rc = 5;
    }
    if (rc) {
        printf("job failed with code %d\n", rc);
    }
    return rc;
}
