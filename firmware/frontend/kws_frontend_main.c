/* Front-end runner: reads kws_clips.bin (n x 16000 int16), writes kws_mfcc.bin
 * (n x 490 int16) and kws_insns.bin (one uint32 per clip: instructions counted by
 * SysTick under qemu -icount shift=0, 40 per tick; 0 on the host). File I/O is stdio on
 * the host and semihosting in QEMU. */
#include <stdio.h>

#include "kws_frontend.h"

#ifdef TINYFLEET_KWS_QEMU
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
static void counter_init(void)
{
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5u;
}
static uint32_t counter(void) { return SYST_CVR; }
static uint32_t insns(uint32_t start, uint32_t end) { return ((start - end) & 0x00FFFFFFu) * 40u; }
#else
static void counter_init(void) {}
static uint32_t counter(void) { return 0; }
static uint32_t insns(uint32_t start, uint32_t end) { return start - end; }
#endif

static int16_t clip[TINYFLEET_KWS_CLIP_SAMPLES];
static int16_t mfcc[TINYFLEET_KWS_FEATURES];

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    FILE *in = fopen("kws_clips.bin", "rb");
    FILE *out = fopen("kws_mfcc.bin", "wb");
    FILE *cost = fopen("kws_insns.bin", "wb");
    if (!in || !out || !cost) {
        printf("kws_frontend: cannot open files\n");
        return 3;
    }
    if (tinyfleet_kws_frontend_init() != 0) {
        printf("kws_frontend: init failed\n");
        return 4;
    }
    counter_init();
    int clips = 0;
    while (fread(clip, sizeof(clip), 1, in) == 1) {
        uint32_t start = counter();
        int status = tinyfleet_kws_frontend_run(clip, mfcc);
        uint32_t used = insns(start, counter());
        if (status != 0) {
            printf("kws_frontend: arm_mfcc_q15 status %d\n", status);
            return 5;
        }
        fwrite(mfcc, sizeof(mfcc), 1, out);
        fwrite(&used, sizeof(used), 1, cost);
        clips++;
    }
    fclose(in);
    fclose(out);
    fclose(cost);
    printf("kws_frontend: %d clips\n", clips);
    return 0;
}
