/* quality.h — full-reference image quality scores for bench/isp_quality
 * (and its test): PSNR, SSIM and CIEDE2000, written plainly.
 *
 * Images are width×height×3 floats, rows packed, sRGB-encoded values in
 * [0, 1] (the trainer's layout). Every score leaves out `border` pixels on
 * each side. */
#ifndef LUMOS_BENCH_QUALITY_H
#define LUMOS_BENCH_QUALITY_H

/* 10 log10(1 / MSE) over R, G and B (peak 1), in dB; INFINITY when the
 * images are identical, NAN when the region is empty. */
double quality_psnr(const float *a, const float *b, int width, int height, int border);

/* Mean SSIM (Wang et al. 2004) on luma Y' = 0.299 R' + 0.587 G' + 0.114 B'
 * of the encoded values: an 11×11 Gaussian window of σ 1.5 (normalised to
 * sum 1), C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = 1, averaged over every
 * window that lies wholly inside the region (the reference code's "valid"
 * map). 1 for identical images; NAN when the region is under 11×11. */
double quality_ssim(const float *a, const float *b, int width, int height, int border);

/* Mean CIEDE2000 (kL = kC = kH = 1) between the images, both converted by
 * quality_srgb_to_lab. NAN when the region is empty. */
double quality_delta_e(const float *a, const float *b, int width, int height, int border);

/* sRGB (IEC 61966-2-1 transfer and primaries, values clamped to [0, 1]) to
 * CIE L*a*b* relative to D65 (X 0.95047, Y 1, Z 1.08883). */
void quality_srgb_to_lab(const float rgb[3], double lab[3]);

/* CIEDE2000 colour difference (Sharma, Wu and Dalal 2005). */
double quality_ciede2000(const double lab1[3], const double lab2[3]);

#endif
