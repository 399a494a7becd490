/* See kws_frontend.h. */
#include "kws_frontend.h"

#include <string.h>

#include "arm_math.h"

static arm_mfcc_instance_q15 mfcc;
/* arm_mfcc_q15 scales its input in place: each frame is copied here first. */
static q15_t frame[TINYFLEET_KWS_FFT_LEN];
static q31_t scratch[2 * TINYFLEET_KWS_FFT_LEN];

#if TINYFLEET_KWS_FFT_LEN != 512
#error "the front end links only the 512-point FFT tables (arm_mfcc_init_512_q15)"
#endif

int tinyfleet_kws_frontend_init(void)
{
    /* The length-specific init keeps the other FFT sizes' twiddle tables out of flash;
     * it fills the same instance as arm_mfcc_init_q15(&mfcc, 512, ...). */
    return (int)arm_mfcc_init_512_q15(&mfcc, TINYFLEET_KWS_MEL, TINYFLEET_KWS_MFCC,
                                      tinyfleet_kws_dct, tinyfleet_kws_filter_pos,
                                      tinyfleet_kws_filter_len, tinyfleet_kws_filter_coefs,
                                      tinyfleet_kws_window);
}

int tinyfleet_kws_frontend_run(const int16_t *clip, int16_t *out)
{
    return tinyfleet_kws_frontend_run_le((const uint8_t *)clip, out);
}

int tinyfleet_kws_frontend_run_le(const uint8_t *pcm, int16_t *out)
{
    for (uint32_t f = 0; f < TINYFLEET_KWS_FRAMES; f++) {
        /* memcpy, not an int16 load: a serial frame's samples may sit at an odd address. */
        memcpy(frame, pcm + f * TINYFLEET_KWS_HOP * sizeof(q15_t), sizeof(frame));
        arm_status status = arm_mfcc_q15(&mfcc, frame, out + f * TINYFLEET_KWS_MFCC, scratch);
        if (status != ARM_MATH_SUCCESS) {
            return (int)status;
        }
    }
    return 0;
}
