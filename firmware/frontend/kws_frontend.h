/* Keyword-audio front end: 1 s of 16 kHz int16 audio -> 49 x 10 q8.7 MFCCs.
 *
 * CMSIS-DSP's arm_mfcc_q15 (the sources of the cmsisdsp 1.10.3 source distribution,
 * fetched at build time) with the q15 tables tinyfleet.device.frontend makes
 * (generated into kws_mfcc_tables.c), so the result equals the Python front end bit
 * for bit. */
#ifndef TINYFLEET_KWS_FRONTEND_H
#define TINYFLEET_KWS_FRONTEND_H

#include <stdint.h>

#include "kws_mfcc_tables.h"

#define TINYFLEET_KWS_CLIP_SAMPLES 16000
#define TINYFLEET_KWS_FEATURES (TINYFLEET_KWS_FRAMES * TINYFLEET_KWS_MFCC)

/* Returns 0 on success (the arm_status of arm_mfcc_init_q15 otherwise). */
int tinyfleet_kws_frontend_init(void);

/* clip: TINYFLEET_KWS_CLIP_SAMPLES samples; mfcc: TINYFLEET_KWS_FEATURES q8.7 values,
 * frame-major. Returns 0 on success. */
int tinyfleet_kws_frontend_run(const int16_t *clip, int16_t *mfcc);

/* The same from TINYFLEET_KWS_CLIP_SAMPLES little-endian int16 samples at any alignment
 * (a serial frame's body: the device loop decodes the frame in place). */
int tinyfleet_kws_frontend_run_le(const uint8_t *pcm, int16_t *mfcc);

#endif
