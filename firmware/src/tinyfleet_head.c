/* The float32 MLP head; see tinyfleet_head.h. Build with -ffp-contract=off so that the
 * compiler does not fuse multiply-adds and the results track NumPy's float32. */
#include "tinyfleet_head.h"

#include <math.h>
#include <stddef.h>

int32_t tinyfleet_head_num_params(int32_t n_layers, const int32_t *sizes)
{
    if (!sizes || n_layers < 1 || n_layers > TINYFLEET_HEAD_MAX_LAYERS) {
        return 0;
    }
    int32_t total = 0;
    for (int32_t i = 0; i < n_layers; ++i) {
        if (sizes[i] < 1 || sizes[i + 1] < 1) {
            return 0;
        }
        total += sizes[i] * sizes[i + 1] + sizes[i + 1];
    }
    return total;
}

int32_t tinyfleet_head_scratch_floats(int32_t n_layers, const int32_t *sizes)
{
    if (tinyfleet_head_num_params(n_layers, sizes) == 0) {
        return 0;
    }
    int32_t acts = 0;
    int32_t widest = 0;
    for (int32_t i = 0; i <= n_layers; ++i) {
        if (i > 0) {
            acts += sizes[i];
        }
        if (sizes[i] > widest) {
            widest = sizes[i];
        }
    }
    return acts + 2 * widest;
}

tinyfleet_status tinyfleet_head_init(tinyfleet_head *head, int32_t n_layers, const int32_t *sizes,
                       tinyfleet_activation activation, tinyfleet_loss loss, float *params,
                       int32_t params_capacity, float *scratch, int32_t scratch_capacity)
{
    if (!head || !sizes || !params || !scratch) {
        return TINYFLEET_ERR_NULL;
    }
    const int32_t n_params = tinyfleet_head_num_params(n_layers, sizes);
    if (n_params == 0) {
        return TINYFLEET_ERR_SHAPE;
    }
    if (activation != TINYFLEET_ACT_TANH && activation != TINYFLEET_ACT_RELU) {
        return TINYFLEET_ERR_RANGE;
    }
    if (loss != TINYFLEET_LOSS_MSE && loss != TINYFLEET_LOSS_SOFTMAX_CE) {
        return TINYFLEET_ERR_RANGE;
    }
    if (params_capacity < n_params || scratch_capacity < tinyfleet_head_scratch_floats(n_layers, sizes)) {
        return TINYFLEET_ERR_BUFFER;
    }
    head->n_layers = n_layers;
    for (int32_t i = 0; i <= n_layers; ++i) {
        head->sizes[i] = sizes[i];
    }
    head->activation = activation;
    head->loss = loss;
    head->params = params;
    head->scratch = scratch;
    return TINYFLEET_OK;
}

/* Activations of layer i (i >= 1) live in scratch; layer 0 is the caller's x. */
static float *tinyfleet_head_acts(const tinyfleet_head *head, int32_t layer)
{
    float *p = head->scratch;
    for (int32_t i = 1; i < layer; ++i) {
        p += head->sizes[i];
    }
    return p;
}

static void tinyfleet_head_forward_all(const tinyfleet_head *head, const float *x)
{
    const float *w = head->params;
    const float *h_in = x;
    for (int32_t layer = 0; layer < head->n_layers; ++layer) {
        const int32_t fan_in = head->sizes[layer];
        const int32_t fan_out = head->sizes[layer + 1];
        const float *b = w + fan_in * fan_out;
        float *h_out = tinyfleet_head_acts(head, layer + 1);
        const int hidden = layer < head->n_layers - 1;
        for (int32_t o = 0; o < fan_out; ++o) {
            float z = 0.0f;
            for (int32_t i = 0; i < fan_in; ++i) {
                z += h_in[i] * w[i * fan_out + o];
            }
            z += b[o];
            if (hidden) {
                z = head->activation == TINYFLEET_ACT_TANH ? tanhf(z) : (z > 0.0f ? z : 0.0f);
            }
            h_out[o] = z;
        }
        w = b + fan_out;
        h_in = h_out;
    }
}

tinyfleet_status tinyfleet_head_forward(const tinyfleet_head *head, const float *x, float *out)
{
    if (!head || !x || !out || !head->params || !head->scratch) {
        return TINYFLEET_ERR_NULL;
    }
    tinyfleet_head_forward_all(head, x);
    const int32_t n_out = head->sizes[head->n_layers];
    const float *z = tinyfleet_head_acts(head, head->n_layers);
    for (int32_t o = 0; o < n_out; ++o) {
        out[o] = z[o];
    }
    return TINYFLEET_OK;
}

/* dL/dz at the output into delta; returns the loss. */
static float tinyfleet_head_output_delta(const tinyfleet_head *head, const float *z, const float *target,
                                  int32_t label, float *delta)
{
    const int32_t n_out = head->sizes[head->n_layers];
    if (head->loss == TINYFLEET_LOSS_MSE) {
        const float scale = (float)(2.0 / (double)n_out);
        float sum_sq = 0.0f;
        for (int32_t o = 0; o < n_out; ++o) {
            const float diff = z[o] - target[o];
            sum_sq += diff * diff;
            delta[o] = scale * diff;
        }
        return sum_sq / (float)n_out;
    }
    float zmax = z[0];
    for (int32_t o = 1; o < n_out; ++o) {
        if (z[o] > zmax) {
            zmax = z[o];
        }
    }
    float total = 0.0f;
    for (int32_t o = 0; o < n_out; ++o) {
        delta[o] = expf(z[o] - zmax);
        total += delta[o];
    }
    for (int32_t o = 0; o < n_out; ++o) {
        delta[o] = delta[o] / total;
    }
    const float p = delta[label] > 1e-12f ? delta[label] : 1e-12f;
    delta[label] -= 1.0f;
    return -logf(p);
}

tinyfleet_status tinyfleet_head_sgd_step(tinyfleet_head *head, const float *x, const float *target, int32_t label,
                           float lr, float *loss_out)
{
    return tinyfleet_head_sgd_step_top(head, x, target, label, lr, head ? head->n_layers : 0, loss_out);
}

tinyfleet_status tinyfleet_head_sgd_step_top(tinyfleet_head *head, const float *x, const float *target,
                                             int32_t label, float lr, int32_t train_layers, float *loss_out)
{
    if (!head || !x || !head->params || !head->scratch) {
        return TINYFLEET_ERR_NULL;
    }
    const int32_t n_layers = head->n_layers;
    if (train_layers < 1 || train_layers > n_layers) {
        return TINYFLEET_ERR_RANGE;
    }
    /* Layers below `lowest` are frozen: the walk down stops there, so a local-only step
     * costs only the top layers' backward pass. */
    const int32_t lowest = n_layers - train_layers;
    const int32_t n_out = head->sizes[n_layers];
    if (head->loss == TINYFLEET_LOSS_MSE && !target) {
        return TINYFLEET_ERR_NULL;
    }
    if (head->loss == TINYFLEET_LOSS_SOFTMAX_CE && (label < 0 || label >= n_out)) {
        return TINYFLEET_ERR_RANGE;
    }
    tinyfleet_head_forward_all(head, x);

    float *delta = tinyfleet_head_acts(head, n_layers + 1);
    int32_t widest = 0;
    for (int32_t i = 0; i <= n_layers; ++i) {
        widest = head->sizes[i] > widest ? head->sizes[i] : widest;
    }
    float *delta_below = delta + widest;
    const float loss =
        tinyfleet_head_output_delta(head, tinyfleet_head_acts(head, n_layers), target, label, delta);

    /* Offsets of each layer's W in params, walking down from the top. */
    int32_t offset = tinyfleet_head_num_params(n_layers, head->sizes);
    for (int32_t layer = n_layers - 1; layer >= lowest; --layer) {
        const int32_t fan_in = head->sizes[layer];
        const int32_t fan_out = head->sizes[layer + 1];
        offset -= fan_in * fan_out + fan_out;
        float *w = head->params + offset;
        float *b = w + fan_in * fan_out;
        const float *h_in = layer == 0 ? x : tinyfleet_head_acts(head, layer);
        if (layer > lowest) {
            /* delta_below = (delta @ W^T) * act'(h_in), with the weights before the step. */
            for (int32_t i = 0; i < fan_in; ++i) {
                float s = 0.0f;
                for (int32_t o = 0; o < fan_out; ++o) {
                    s += delta[o] * w[i * fan_out + o];
                }
                const float h = h_in[i];
                const float grad =
                    head->activation == TINYFLEET_ACT_TANH ? 1.0f - h * h : (h > 0.0f ? 1.0f : 0.0f);
                delta_below[i] = s * grad;
            }
        }
        for (int32_t i = 0; i < fan_in; ++i) {
            for (int32_t o = 0; o < fan_out; ++o) {
                const float g = h_in[i] * delta[o];
                w[i * fan_out + o] -= lr * g;
            }
        }
        for (int32_t o = 0; o < fan_out; ++o) {
            b[o] -= lr * delta[o];
        }
        float *tmp = delta;
        delta = delta_below;
        delta_below = tmp;
    }
    if (loss_out) {
        *loss_out = loss;
    }
    (void)n_out;
    return TINYFLEET_OK;
}
