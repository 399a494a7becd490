/* tinyfleet firmware: the device loop that takes part in federated rounds.
 *
 * Serial protocol (every frame COBS + CRC-16, see tinyfleet_framing.h; first payload byte is
 * the frame kind):
 *   host -> device  'T' + wire TRAIN message (docs/protocol.md): theta + round config
 *                   'S' + one sample: float32 x[in_dim], then float32 y[out_dim] (mse)
 *                       or int32 label (softmax_ce)
 *                   'I' + one raw sample: int8 input[TINYFLEET_MODEL_INPUT_SIZE] for the
 *                       backbone (builds with a model only), then the target as for 'S'
 *                   'A' + one raw audio window (builds with the keyword front end only):
 *                       int16 little-endian PCM[16000] (1 s at 16 kHz), then the target as
 *                       for 'S'; the device computes the MFCCs (CMSIS-DSP), quantises them
 *                       to the backbone's int8 input, runs the backbone and the head step
 *                   'X' + int16 PCM[16000]: probe (front-end builds), no training: the
 *                       device answers 'X' + int16 MFCC[490] + int8 input[490] + int8
 *                       embedding + uint32 instructions of the front end and of the
 *                       backbone (SysTick under QEMU -icount, else 0)
 *                   'Q' quit (tests end the emulator this way)
 *   device -> host  'R' + wire REPLY message: phi (same name and shape as theta) and
 *                       fields loss (mean over the k samples), sgd-steps
 *                   'E' + UTF-8 reason: the task was refused
 * Samples are learned from as they arrive (one SGD step each) and then dropped: the
 * device never stores its data, exactly TinyReptile's online round.
 */
#ifndef TINYFLEET_DEVICE_H
#define TINYFLEET_DEVICE_H

#include "tinyfleet_port.h"
#include "tinyfleet_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Run the device loop on `port` until a 'Q' frame (TINYFLEET_OK) or a port error. */
tinyfleet_status tinyfleet_device_run(const tinyfleet_port *port);

#ifdef __cplusplus
}
#endif
#endif
