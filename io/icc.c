/* icc.c — the ICC profiles written with lumos images, built with lcms2, and
 * the check of a profile read from a file.
 *
 * Every profile is built from scratch on each call with the NULL (default)
 * lcms2 context, so there is no state to share or lock. The profiles are
 * lcms2's default version (4.3): compact parametric curves, a few hundred
 * bytes each. */
#include <lcms2.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

/* sRGB: D65 white, ITU-R BT.709 primaries, the IEC 61966-2-1 curve. */
static const cmsCIExyY d65 = {0.3127, 0.3290, 1.0};
static const cmsCIExyYTRIPLE srgb_primaries = {
    {0.6400, 0.3300, 1.0}, {0.3000, 0.6000, 1.0}, {0.1500, 0.0600, 1.0}};

static cmsToneCurve *transfer(lumos_space space)
{
    /* Type 4: Y = (aX + b)^g for X >= d, else cX. */
    static const cmsFloat64Number srgb[5] = {2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045};
    return space == LUMOS_SPACE_SRGB ? cmsBuildParametricToneCurve(NULL, 4, srgb)
                                     : cmsBuildGamma(NULL, 1.0);
}

static cmsHPROFILE build(lumos_space space, int gray)
{
    cmsToneCurve *curve = transfer(space);
    if (!curve) return NULL;
    cmsHPROFILE h;
    if (gray) {
        h = cmsCreateGrayProfile(&d65, curve);
    } else if (space == LUMOS_SPACE_SRGB) {
        h = cmsCreate_sRGBProfile();
    } else {
        cmsToneCurve *curves[3] = {curve, curve, curve};
        h = cmsCreateRGBProfile(&d65, &srgb_primaries, curves);
    }
    cmsFreeToneCurve(curve);
    if (!h) return NULL;

    static const char *const names[2][2] = {{"lumos sRGB", "lumos linear sRGB"},
                                            {"lumos sRGB gray", "lumos linear gray"}};
    cmsMLU *desc = cmsMLUalloc(NULL, 1);
    int ok = desc && cmsMLUsetASCII(desc, "en", "US", names[gray][space == LUMOS_SPACE_LINEAR_SRGB]) &&
             cmsWriteTag(h, cmsSigProfileDescriptionTag, desc);
    if (desc) cmsMLUfree(desc);
    /* The profile ID lets colour-managed viewers cache the profile. */
    if (!ok || !cmsMD5computeID(h)) {
        cmsCloseProfile(h);
        return NULL;
    }
    return h;
}

uint8_t *lumos__icc_profile_for(lumos_space space, int channels, size_t *size)
{
    *size = 0;
    if ((space != LUMOS_SPACE_SRGB && space != LUMOS_SPACE_LINEAR_SRGB) ||
        (channels != 1 && channels != 3))
        return NULL;
    cmsHPROFILE h = build(space, channels == 1);
    if (!h) return NULL;
    cmsUInt32Number n = 0;
    uint8_t *buf = NULL;
    if (cmsSaveProfileToMem(h, NULL, &n) && n > 0 && (buf = malloc(n)) &&
        !cmsSaveProfileToMem(h, buf, &n)) {
        free(buf);
        buf = NULL;
    }
    cmsCloseProfile(h);
    if (buf) *size = n;
    return buf;
}

uint8_t *lumos__icc_profile(lumos_space space, size_t *size)
{
    return lumos__icc_profile_for(space, 3, size);
}

/* ------------------------------------------------- profiles read from files */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint32_t lumos__icc_space(const uint8_t *icc) { return be32(icc + 16); }

const char *lumos__icc_check(const uint8_t *icc, size_t n, size_t *used)
{
    *used = 0;
    if (!icc || n < 132) return "shorter than an ICC header";
    size_t size = be32(icc);
    if (size > n) return "truncated (its header claims more bytes)";
    if (size < 132) return "its header gives a size below 132 bytes";
    if (memcmp(icc + 36, "acsp", 4)) return "no 'acsp' signature";
    uint32_t tags = be32(icc + 128);
    if (tags > (size - 132) / 12) return "its tag table runs past its end";
    for (uint32_t i = 0; i < tags; i++) {
        const uint8_t *t = icc + 132 + 12 * (size_t)i;
        uint64_t off = be32(t + 4), len = be32(t + 8);
        if (off < 132 || off + len > size) return "a tag lies outside it";
    }
    /* lcms2 checks the rest of the header (version, class, PCS) and the
     * table's consistency; it reads tags only when asked. */
    cmsHPROFILE h = cmsOpenProfileFromMem(icc, (cmsUInt32Number)size);
    if (!h) return "lcms2 cannot open it";
    cmsCloseProfile(h);
    *used = size;
    return NULL;
}
