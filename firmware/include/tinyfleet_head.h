/* tinyfleet firmware: the float32 MLP head with per-sample SGD.
 *
 * Same maths as tinyfleet.device.head.MLPHead: parameters W0, b0, W1, b1, ... in one
 * flat float array, W_i of shape (fan_in, fan_out) row-major; hidden layers tanh or
 * relu, linear output; loss mse = mean over outputs of (z - y)^2 or softmax
 * cross-entropy with an integer label; SGD p -= lr * grad.
 *
 * The update runs in place, layer by layer from the top: the delta for the layer
 * below is computed with the old weights, then the layer is updated, so the only
 * training memory besides the parameters is the scratch buffer (activations of one
 * sample and two delta vectors), never a full gradient copy.
 */
#ifndef TINYFLEET_HEAD_H
#define TINYFLEET_HEAD_H

#include <stdint.h>

#include "tinyfleet_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { TINYFLEET_ACT_TANH = 0, TINYFLEET_ACT_RELU = 1 } tinyfleet_activation;
typedef enum { TINYFLEET_LOSS_MSE = 0, TINYFLEET_LOSS_SOFTMAX_CE = 1 } tinyfleet_loss;

#define TINYFLEET_HEAD_MAX_LAYERS 8

typedef struct {
    int32_t n_layers;                         /* weight layers: len(sizes) - 1 */
    int32_t sizes[TINYFLEET_HEAD_MAX_LAYERS + 1];    /* input_dim, hidden..., output_dim */
    tinyfleet_activation activation;
    tinyfleet_loss loss;
    float *params;  /* caller-owned, tinyfleet_head_num_params() floats */
    float *scratch; /* caller-owned, tinyfleet_head_scratch_floats() floats */
} tinyfleet_head;

/* Number of parameters for layer sizes sizes[0..n_layers]; 0 if invalid. */
int32_t tinyfleet_head_num_params(int32_t n_layers, const int32_t *sizes);
/* Scratch floats needed by forward/SGD: activations + two delta vectors. */
int32_t tinyfleet_head_scratch_floats(int32_t n_layers, const int32_t *sizes);

/* Describe a head over caller-owned buffers; checks sizes and capacities. */
tinyfleet_status tinyfleet_head_init(tinyfleet_head *head, int32_t n_layers, const int32_t *sizes,
                       tinyfleet_activation activation, tinyfleet_loss loss, float *params,
                       int32_t params_capacity, float *scratch, int32_t scratch_capacity);

/* Outputs (regression values or logits) for one input of sizes[0] floats. */
tinyfleet_status tinyfleet_head_forward(const tinyfleet_head *head, const float *x, float *out);

/* One SGD step on one sample. For mse, `target` holds output_dim floats and `label`
 * is ignored; for softmax_ce, `label` is the class and `target` may be NULL.
 * `loss_out` (optional) receives the loss before the step. */
tinyfleet_status tinyfleet_head_sgd_step(tinyfleet_head *head, const float *x, const float *target, int32_t label,
                           float lr, float *loss_out);

/* The same step on the top `train_layers` weight layers only (1..n_layers); the layers
 * below keep their weights (TinyMetaFed's local reconstruction steps). With
 * train_layers == n_layers it is tinyfleet_head_sgd_step. */
tinyfleet_status tinyfleet_head_sgd_step_top(tinyfleet_head *head, const float *x, const float *target,
                                             int32_t label, float lr, int32_t train_layers, float *loss_out);

#ifdef __cplusplus
}
#endif
#endif
