/* lumos.h — the public C API of liblumos.
 *
 * Data flow: a RAW file (or a mosaic held in memory) is opened into a
 * lumos_raw; an ISP turns it into a lumos_image; a writer stores the image as
 * JPEG, PNG or TIFF tagged sRGB. lumos_convert_file() does all three.
 *
 * Conventions
 *  - Every call that can fail returns a lumos_status: 0 is success, errors are
 *    negative. lumos_strerror() names the code; lumos_last_error() on the
 *    context that made the call gives the detail (file name and reason).
 *  - A lumos_ctx holds the thread count and the last error. It is not shared
 *    between threads; two contexts may run at once on two threads.
 *  - Objects returned through an out-pointer belong to the caller, who frees
 *    them with the matching _free() call.
 */
#ifndef LUMOS_H
#define LUMOS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(LUMOS_BUILDING)
#define LUMOS_API __attribute__((visibility("default")))
#else
#define LUMOS_API
#endif

#define LUMOS_VERSION_MAJOR 0
#define LUMOS_VERSION_MINOR 1
#define LUMOS_VERSION_PATCH 0
#define LUMOS_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------- status */

typedef enum lumos_status {
    LUMOS_OK = 0,
    LUMOS_E_ARG = -1,         /* a bad argument or option value */
    LUMOS_E_NOMEM = -2,       /* out of memory */
    LUMOS_E_IO = -3,          /* the OS refused a read or write (errno in detail) */
    LUMOS_E_FORMAT = -4,      /* not a file of the expected kind, or damaged */
    LUMOS_E_UNSUPPORTED = -5, /* a valid file lumos cannot process */
    LUMOS_E_ORDER = -6,       /* a call made out of order */
    LUMOS_E_PIPELINE = -7,    /* a generated pipeline reported an error */
    LUMOS_E_EXISTS = -8       /* the output exists and overwriting was not asked for */
} lumos_status;

/* A short, static name for a status code; never NULL. */
LUMOS_API const char *lumos_strerror(int status);

/* "0.1.0" */
LUMOS_API const char *lumos_version(void);

/* --------------------------------------------------------------- context */

typedef struct lumos_ctx lumos_ctx;

/* A new context using every core. NULL only when out of memory. */
LUMOS_API lumos_ctx *lumos_ctx_new(void);
LUMOS_API void lumos_ctx_free(lumos_ctx *ctx);

/* Threads this context's pipelines may use (>= 1; 0 means every core). */
LUMOS_API void lumos_ctx_set_threads(lumos_ctx *ctx, int threads);
LUMOS_API int lumos_ctx_threads(const lumos_ctx *ctx);

/* The detail of the last error on this context ("" if none). Valid until the
 * next call on the same context. */
LUMOS_API const char *lumos_last_error(const lumos_ctx *ctx);

/* Notices (e.g. "non-Bayer sensor: using LibRaw's own processing") go to
 * this callback; by default they are dropped. */
typedef void (*lumos_notice_fn)(void *user, const char *message);
LUMOS_API void lumos_ctx_set_notice(lumos_ctx *ctx, lumos_notice_fn fn, void *user);

/* Limits on what a file may make this context's readers (lumos_image_read,
 * lumos_image_read_meta; max_alloc also lumos_net_load's weights file)
 * allocate. The size a file's header claims is
 * checked before anything is allocated: against max_pixels (width × height;
 * default LUMOS_DEFAULT_MAX_PIXELS, 2^30 = 32768 × 32768) and max_alloc (the
 * bytes of the decoded image plus the reader's scratch; default the
 * machine's physical memory), either failing with LUMOS_E_NOMEM; and
 * against what the file's own bytes can decode to (uncompressed strips
 * that cover the image, at most 1032 bytes a byte of Deflate, ...): a file
 * that cannot hold what it claims fails with LUMOS_E_FORMAT. Each message
 * names the file, the claimed size and the limit. 0 restores a default;
 * the getters give the limit in force. */
#define LUMOS_DEFAULT_MAX_PIXELS ((uint64_t)1 << 30)
LUMOS_API void lumos_ctx_set_max_pixels(lumos_ctx *ctx, uint64_t pixels);
LUMOS_API uint64_t lumos_ctx_max_pixels(const lumos_ctx *ctx);
LUMOS_API void lumos_ctx_set_max_alloc(lumos_ctx *ctx, uint64_t bytes);
LUMOS_API uint64_t lumos_ctx_max_alloc(const lumos_ctx *ctx);

/* ----------------------------------------------------------------- image */

typedef enum lumos_space {
    LUMOS_SPACE_SRGB = 0,        /* sRGB primaries, sRGB transfer (the default) */
    LUMOS_SPACE_LINEAR_SRGB = 1, /* sRGB primaries, linear (no transfer) */
    LUMOS_SPACE_CAMERA = 2       /* the sensor's own primaries: no profile is written */
} lumos_space;

/* An interleaved image of 8- or 16-bit unsigned or 32-bit float samples.
 * stride is in bytes between rows. Integer samples span 0..2^bits-1; float
 * samples are in the image's space as they are (0..1 for the ISPs' output,
 * linear light may exceed 1). */
typedef struct lumos_image {
    int width, height;
    int channels;     /* >= 1: 1 gray, 3 RGB; 2 and 4 are gray and RGB with
                         alpha; others are planes (aux data) */
    int bits;         /* 8, 16 (uint8_t, uint16_t) or 32 (float, IEEE 754) */
    size_t stride;    /* bytes from one row to the next */
    void *data;       /* owned by the image when allocated by lumos */
    lumos_space space;
} lumos_image;

/* Allocates a zeroed image (bits 8, 16 or 32, channels >= 1); *img is
 * overwritten. LUMOS_E_NOMEM also for more bytes than the machine's
 * physical memory (so a file claiming a huge size is refused, not
 * overcommitted). */
LUMOS_API lumos_status lumos_image_alloc(lumos_image *img, int width, int height, int channels,
                                         int bits);
/* Frees the pixels of an image that lumos allocated and zeroes *img. */
LUMOS_API void lumos_image_free(lumos_image *img);

/* Rotates/flips the image in place (a new buffer) so that an image stored
 * with EXIF orientation 1..8 becomes upright. */
LUMOS_API lumos_status lumos_image_orient(lumos_ctx *ctx, lumos_image *img, int orientation);

/* ------------------------------------------------------------------- raw */

typedef enum lumos_cfa {
    LUMOS_CFA_NONE = 0, /* not a 2×2 Bayer mosaic (X-Trans, Foveon, linear DNG) */
    LUMOS_CFA_RGGB,     /* names read row by row from the top-left 2×2 block */
    LUMOS_CFA_BGGR,
    LUMOS_CFA_GRBG,
    LUMOS_CFA_GBRG
} lumos_cfa;

/* Basic EXIF, also written into JPEG output. Unknown numbers are 0. */
typedef struct lumos_exif {
    char make[64];
    char model[64];
    float iso;
    float exposure_s;   /* shutter time in seconds */
    float aperture;     /* f-number */
    float focal_mm;
    char datetime[20];  /* "YYYY:MM:DD HH:MM:SS" or "" */
} lumos_exif;

typedef struct lumos_raw_info {
    int width, height;      /* the active (visible) area */
    lumos_cfa cfa;
    float black[4];         /* black level of each site of the 2×2 block, row by row */
    float white;            /* saturation level */
    float wb_as_shot[3];    /* R, G, B multipliers, G = 1 */
    float cam_to_srgb[3][3];/* white-balanced camera RGB -> linear sRGB; rows sum to 1 */
    int orientation;        /* EXIF orientation 1..8 */
    int is_bayer;           /* 1: a mosaic lumos's ISPs can process */
    lumos_exif exif;
} lumos_raw_info;

typedef struct lumos_raw lumos_raw;

/* Opens and decodes a RAW file (anything LibRaw reads). */
LUMOS_API lumos_status lumos_raw_open_file(lumos_ctx *ctx, const char *path, lumos_raw **out);
/* The same for a file held in memory; buf must outlive the call only. */
LUMOS_API lumos_status lumos_raw_open_memory(lumos_ctx *ctx, const void *buf, size_t size,
                                             lumos_raw **out);
/* Wraps a Bayer mosaic held in memory (a camera app's buffer): width×height
 * 16-bit samples, stride in bytes; info gives the CFA and levels (its width,
 * height and is_bayer are taken from the arguments). The samples are copied. */
LUMOS_API lumos_status lumos_raw_from_mosaic(lumos_ctx *ctx, const uint16_t *samples, int width,
                                             int height, size_t stride,
                                             const lumos_raw_info *info, lumos_raw **out);
LUMOS_API void lumos_raw_free(lumos_raw *raw);
LUMOS_API const lumos_raw_info *lumos_raw_get_info(const lumos_raw *raw);
/* The mosaic of the active area (NULL for a non-Bayer file); *stride in bytes. */
LUMOS_API const uint16_t *lumos_raw_mosaic(const lumos_raw *raw, size_t *stride);

/* ------------------------------------------------------------------- ISP */

typedef enum lumos_wb {
    LUMOS_WB_CAMERA = 0, /* as shot */
    LUMOS_WB_AUTO,       /* gray world over unclipped samples */
    LUMOS_WB_USER        /* options.wb_user */
} lumos_wb;

typedef struct lumos_isp_options {
    lumos_wb wb;
    float wb_user[3];   /* R, G, B multipliers for LUMOS_WB_USER */
    float exposure_ev;  /* 0 = as shot; no automatic brightening */
    float tone;         /* strength of the tone curve, 0 (none) .. 1; default 0.5 */
    float sharpen;      /* unsharp-mask amount, 0 = off */
    int half;           /* 1: half-size output, one pixel per 2×2 block, no demosaic */
    int linear;         /* 1: scene-linear output, no tone curve and no transfer */
    int camera_space;   /* 1: skip the colour matrix (output in camera RGB) */
    int bits;           /* 8, 16, or 32: float, the 0..1 values the integer
                           outputs quantise (scene-linear with `linear`) */
} lumos_isp_options;

LUMOS_API void lumos_isp_options_init(lumos_isp_options *opt);

/* Runs the classical ISP; *out is allocated (free with lumos_image_free;
 * its rows may be padded: use out->stride). The result is in sensor
 * orientation: see lumos_image_orient(). Non-Bayer files go through LibRaw's
 * own processing, with a notice; such a lumos_raw must not be developed by
 * two threads at once (a Bayer one may). */
LUMOS_API lumos_status lumos_isp_classic(lumos_ctx *ctx, const lumos_raw *raw,
                                         const lumos_isp_options *opt, lumos_image *out);

/* ----------------------------------------------------------- learned ISP */

/* The learned networks, by name. The ISPs (task "isp") are the lightweight
 * networks of the unpaired smartphone-ISP method: "efficient" (EfficientISP,
 * 3,060 parameters), "robust" (RobustISP, 1,616), "rmfa-tiny" (RMFA-Net
 * tiny, 29,223), run as fused Halide pipelines. */
typedef struct lumos_net lumos_net; /* a network and its weights */

/* The i-th network name of `task` ("isp"; NULL: any task) in this build,
 * NULL past the last: for listing them. */
LUMOS_API const char *lumos_net_list(const char *task, int i);

/* Loads network `name`'s weights from a safetensors file holding exactly
 * the tensors of the reference PyTorch module's state_dict() (names and
 * shapes; float32, float16 or bfloat16). weights_path NULL asks for the
 * shipped default (data/weights/NAME.safetensors, or under
 * $LUMOS_DATA_DIR/weights): LUMOS_E_UNSUPPORTED when none ships. An unknown
 * name is LUMOS_E_ARG. */
LUMOS_API lumos_status lumos_net_load(lumos_ctx *ctx, const char *name,
                                      const char *weights_path, lumos_net **out);
LUMOS_API void lumos_net_free(lumos_net *net);

/* Its name ("efficient") and task ("isp"). */
LUMOS_API const char *lumos_net_name(const lumos_net *net);
LUMOS_API const char *lumos_net_task(const lumos_net *net);

/* What a network was trained to see (its weights' "lumos_input" metadata):
 * the sensor's mosaic as is (weights for one sensor: its colour response is
 * learned), or the camera-agnostic mosaic (levelled, white-balanced as shot
 * and mapped by the camera's matrix to linear sRGB first: any Bayer camera).
 * lumos_isp_learned prepares the input accordingly. */
typedef enum lumos_net_input { LUMOS_INPUT_SENSOR = 0, LUMOS_INPUT_AGNOSTIC } lumos_net_input;
LUMOS_API lumos_net_input lumos_net_get_input(const lumos_net *net);
/* "sensor", "agnostic". */
LUMOS_API const char *lumos_net_input_name(lumos_net_input input);

/* Whether the network was trained with the exposure in its input (its
 * weights' "lumos_exposure" metadata is "input"): the levelled mosaic
 * brightened by 2^exposure_ev, as the classical ISP's exposure option does,
 * so that a network and the classical ISP get the same information. Weights
 * without it take 0 EV only. */
LUMOS_API int lumos_net_takes_exposure(const lumos_net *net);

/* Runs a learned ISP (a network of task "isp") on a Bayer mosaic (a RAW file's or a caller's, see
 * lumos_raw_from_mosaic), normalised with its black and white levels, any
 * CFA pattern, brightened by exposure_ev stops (0: as shot; nonzero needs
 * lumos_net_takes_exposure). *out: sRGB at `bits` (8 or 16), the mosaic's
 * size, sensor orientation (see lumos_image_orient). A lumos_net may be
 * used by several threads at once. */
LUMOS_API lumos_status lumos_isp_learned(lumos_ctx *ctx, const lumos_net *net,
                                         const lumos_raw *raw, float exposure_ev, int bits,
                                         lumos_image *out);

/* ------------------------------------------------------------- image I/O */

typedef enum lumos_format {
    LUMOS_FORMAT_AUTO = 0, /* from the file name's suffix */
    LUMOS_FORMAT_JPEG,
    LUMOS_FORMAT_PNG,
    LUMOS_FORMAT_TIFF,
    LUMOS_FORMAT_EXR       /* OpenEXR: scene-linear float */
} lumos_format;

/* What an image file carries besides its pixels: its ICC profile, its EXIF
 * block and its orientation, as lumos_image_read_meta() found them, for
 * writing back with lumos_write_options.meta (an edited photo keeps its
 * profile and EXIF). Kept per format:
 *  - JPEG: the ICC profile (APP2 "ICC_PROFILE" chunks, any number,
 *    reassembled), the EXIF block (the first APP1 "Exif\0\0" segment, less
 *    that prefix) and the orientation from its IFD0.
 *  - PNG: iCCP (decompressed), eXIf, the orientation from eXIf.
 *  - TIFF: the ICC profile tag and the Orientation tag only; the EXIF IFD
 *    and other tags are not kept (no EXIF block).
 *  - OpenEXR: nothing (orientation 1).
 * XMP, IPTC and other segments or chunks are not kept. Damaged metadata (an
 * EXIF block whose IFDs or values lie outside it, a profile whose header or
 * tag table lies, incomplete ICC chunks, an orientation outside 1..8) is
 * dropped with a notice (lumos_ctx_set_notice): the pixels are still read.
 * Not shared between threads while one of them changes it. */
typedef struct lumos_meta lumos_meta;

/* An empty record (no profile, no EXIF, orientation 1, format AUTO), for a
 * caller that has its own metadata (a camera app). NULL only when out of
 * memory. */
LUMOS_API lumos_meta *lumos_meta_new(void);
LUMOS_API void lumos_meta_free(lumos_meta *meta);

/* The format of the file it was read from (AUTO for lumos_meta_new): the
 * one to write back by default. */
LUMOS_API lumos_format lumos_meta_format(const lumos_meta *meta);

/* The EXIF orientation, 1..8, of the pixels as lumos_image_read gives them
 * (it never rotates them): lumos_image_orient(ctx, img, o) makes them
 * upright. A caller who did so sets it to 1, so that the file written says
 * so. LUMOS_E_ARG for a value outside 1..8. */
LUMOS_API int lumos_meta_orientation(const lumos_meta *meta);
LUMOS_API lumos_status lumos_meta_set_orientation(lumos_meta *meta, int orientation);

/* The ICC profile's bytes (*size of them), or NULL with *size 0 when there
 * is none. Valid until the meta is changed or freed. */
LUMOS_API const uint8_t *lumos_meta_icc(const lumos_meta *meta, size_t *size);
/* The EXIF block: TIFF-structured ("II*\0" or "MM\0*" first), without
 * JPEG's "Exif\0\0" prefix, exactly as the file holds it; NULL with *size 0
 * when there is none. Valid until the meta is changed or freed. */
LUMOS_API const uint8_t *lumos_meta_exif(const lumos_meta *meta, size_t *size);

/* Replace the profile or the EXIF block with a copy of size bytes (NULL or
 * size 0: remove it). A damaged one is refused with LUMOS_E_FORMAT, the meta
 * unchanged. Setting the EXIF block also sets the orientation to its
 * Orientation tag's (1 without one). */
LUMOS_API lumos_status lumos_meta_set_icc(lumos_ctx *ctx, lumos_meta *meta, const void *icc,
                                          size_t size);
LUMOS_API lumos_status lumos_meta_set_exif(lumos_ctx *ctx, lumos_meta *meta, const void *exif,
                                           size_t size);

typedef struct lumos_write_options {
    lumos_format format;
    int quality;          /* JPEG 1..100, default 92 */
    int subsampling;      /* JPEG 444 or 420, default 444 */
    const lumos_exif *exif; /* optional; JPEG gets an EXIF block, TIFF its tags */
    int overwrite;        /* 0: fail with LUMOS_E_EXISTS if path exists */
    const lumos_meta *meta; /* optional: a file's metadata to write back (see
                               lumos_image_write); NULL by default */
} lumos_write_options;

LUMOS_API void lumos_write_options_init(lumos_write_options *opt);

/* The format a suffix names (".jpg", ".jpeg", ".png", ".tif", ".tiff",
 * ".exr"), or AUTO. */
LUMOS_API lumos_format lumos_format_from_path(const char *path);

/* Writes img to path atomically: a temporary file in the same directory,
 * renamed into place only when complete. The profile follows img->space
 * (sRGB or linear sRGB ICC; none for camera space).
 *  - JPEG: 8-bit gray or RGB. PNG: 8/16-bit gray or RGB. Other images are
 *    refused (LUMOS_E_ARG) before anything is written.
 *  - TIFF: any image. 32-bit is IEEE float; a 2nd (gray) or 4th (RGB)
 *    channel is marked as unassociated alpha, further ones as unspecified
 *    extra samples; the ICC profile describes the gray or RGB samples.
 *  - OpenEXR: any image, stored as 32-bit float channels (ZIP) named Y, Y A,
 *    R G B, R G B A, or "0", "1", ... for other counts; 8/16-bit samples
 *    become 0..1. EXR holds linear light, so an image in LUMOS_SPACE_SRGB
 *    (transfer-encoded) is refused with LUMOS_E_ARG: develop with linear
 *    output. Linear sRGB is tagged with sRGB's (Rec.709) chromaticities;
 *    camera space gets none (readers then assume Rec.709). EXIF date,
 *    exposure time, f-number and ISO go into EXR's standard attributes.
 * With opt->meta (a file's metadata, lumos_image_read_meta):
 *  - ICC: the meta's profile is embedded instead of lumos's own when
 *    img->space is LUMOS_SPACE_SRGB (what lumos_image_read gives: the
 *    samples as the file encoded them, whatever its profile) and the
 *    profile's colour space fits the image (GRAY for 1 or 2 channels, RGB
 *    for 3 or more). Otherwise (the caller made the image linear or camera
 *    RGB, or changed its channels) the profile follows img->space as
 *    without meta, with a notice.
 *  - EXIF (JPEG and PNG): the meta's block, instead of the one opt->exif
 *    would give a JPEG, with its Orientation tag set to the meta's
 *    orientation (added if missing and not 1), PixelXDimension and
 *    PixelYDimension, where present, set to the image's size, and the
 *    thumbnail (IFD1) always dropped: it shows the input's pixels, not
 *    these. Every other byte is kept. Without a block, an orientation other
 *    than 1 is written as a block holding just that tag (a JPEG's opt->exif
 *    block with it, if given). A block too large for JPEG's 64 KB APP1
 *    segment is left out with a notice.
 *  - TIFF: the profile as above and the meta's orientation as its
 *    Orientation tag; no EXIF block (opt->exif still gives Make, Model and
 *    DateTime). OpenEXR ignores the meta.
 * So an edited photo written to its own format (lumos_meta_format) keeps
 * its profile and EXIF; one made upright with lumos_image_orient() needs
 * lumos_meta_set_orientation(meta, 1) first. */
LUMOS_API lumos_status lumos_image_write(lumos_ctx *ctx, const lumos_image *img, const char *path,
                                         const lumos_write_options *opt);

/* Reads a JPEG, PNG, TIFF or OpenEXR file (the content decides, not the name).
 *  - JPEG: 8-bit gray or RGB; CMYK and YCCK JPEGs are refused
 *    (LUMOS_E_UNSUPPORTED).
 *  - PNG: 8/16-bit gray or RGB at the file's depth (alpha dropped, palettes
 *    expanded, 1/2/4-bit gray widened to 8).
 *  - TIFF: 8/16-bit unsigned and 16/32/64-bit float gray or RGB keep every
 *    sample (extra samples included); floats become 32-bit. Other kinds
 *    (palette, CMYK, ...) become 8-bit gray or RGB.
 *  - Rows and columns as stored: an EXIF or TIFF orientation is not applied
 *    (lumos_image_read_meta gives it).
 *  - OpenEXR: the first part, scanline or tiled (full resolution), its data
 *    window; every channel (HALF, FLOAT or UINT) as 32-bit float, in the
 *    order R/Y, G, B, A, then channels named by index, then the rest by
 *    name. Space: linear sRGB, or camera (no profile) when the file's
 *    chromaticities are not sRGB's.
 * A file claiming more than the context's limits, or more than its own
 * bytes can hold, is refused before anything is allocated (see
 * lumos_ctx_set_max_pixels). */
LUMOS_API lumos_status lumos_image_read(lumos_ctx *ctx, const char *path, lumos_image *out);

/* lumos_image_read, and the file's metadata (see lumos_meta): *meta is
 * allocated on success (free with lumos_meta_free), also when the file
 * carries none; NULL on failure. The pixels are as lumos_image_read gives
 * them, in stored orientation; JPEG and PNG samples stay in the encoding of
 * the file's profile (space LUMOS_SPACE_SRGB whatever the profile says).
 * A CMYK JPEG is LUMOS_E_UNSUPPORTED, as with lumos_image_read. */
LUMOS_API lumos_status lumos_image_read_meta(lumos_ctx *ctx, const char *path, lumos_image *out,
                                             lumos_meta **meta);

/* --------------------------------------------------------------- convert */

/* OpenEXR output needs the classical ISP with isp.linear (EXR holds
 * scene-linear light; LUMOS_E_ARG otherwise) and is always developed at 32
 * bits, whatever isp.bits says. PNG and JPEG take isp.bits 8/16 and 8. */
typedef struct lumos_convert_options {
    lumos_isp_options isp;    /* the classical ISP's options; .bits for every ISP */
    lumos_write_options write;
    const char *isp_name;     /* "classic" (the default, also NULL) or a learned ISP's name */
    const char *weights;      /* learned ISPs: a safetensors file, NULL = default */
    const lumos_net *net;     /* or a network already loaded (takes precedence) */
} lumos_convert_options;

LUMOS_API void lumos_convert_options_init(lumos_convert_options *opt);

/* RAW file -> upright image file: open, ISP (classical or learned), orient,
 * write. */
LUMOS_API lumos_status lumos_convert_file(lumos_ctx *ctx, const char *in_path,
                                          const char *out_path, const lumos_convert_options *opt);

/* ------------------------------------------------------------- dereflect */

/* Single-image reflection removal (a photo taken through glass): the
 * classical method (gradient thresholding and a screened Poisson solve,
 * after Arvanitopoulos et al., CVPR 2017) or a learned network of task
 * "dereflect" (lumos_net_list("dereflect", i): "uhd").
 *
 * The default method. "classic" until trained weights for "uhd" ship in
 * data/weights/ (lumos_net_load's default for it fails until then). */
#define LUMOS_DEREFLECT_DEFAULT "classic"

typedef struct lumos_dereflect_options {
    const char *net_name;  /* "classic" (LUMOS_DEREFLECT_DEFAULT; also NULL) or a
                              network of task "dereflect" */
    const char *weights;   /* its safetensors file; NULL: the shipped default */
    const lumos_net *net;  /* or a network already loaded (takes precedence: load
                              it once for many images) */
    int tile;              /* a network's tile side, a multiple of 8; 0: its default */
    float h;               /* classic: gradient threshold, >= 0; 0: 0.03 */
    float eps;             /* classic: fidelity weight, >= 0; 0: 1e-8 */
    int bits;              /* output sample depth 8, 16 or 32; 0: the input's
                              (lumos_dereflect_file: the nearest the format holds) */
    lumos_write_options write; /* lumos_dereflect_file's output: format (AUTO: from
                              out_path's suffix, else the input's format),
                              quality, overwrite; its meta is the input's */
} lumos_dereflect_options;

LUMOS_API void lumos_dereflect_options_init(lumos_dereflect_options *opt);

/* Removes reflections from in, an 8/16-bit or float image of 1 (gray) to
 * N channels in stored orientation, transfer-encoded (not
 * LUMOS_SPACE_LINEAR_SRGB: LUMOS_E_UNSUPPORTED). Gray (1 or 2 channels) is
 * processed as RGB with three equal channels and written back as their
 * mean; of 3 or more channels the first three are RGB; further channels
 * (alpha) are copied. Float samples are taken clamped to 0..1 (NaN as 0).
 * *out (allocated; free with lumos_image_free) has in's size, channels and
 * space, at opt->bits (0: in's). The method works on whole images: the
 * classical one needs about 16 bytes a pixel beside in and out, a network
 * about 26; an image needing more than the machine's physical memory is
 * refused with LUMOS_E_NOMEM before anything is allocated. Larger than the
 * method can take (classic: 715 megapixels; networks: 65536 a side):
 * LUMOS_E_UNSUPPORTED. */
LUMOS_API lumos_status lumos_dereflect_image(lumos_ctx *ctx, const lumos_image *in,
                                             const lumos_dereflect_options *opt,
                                             lumos_image *out);

/* in_path (JPEG, PNG or TIFF, lumos_image_read_meta) -> lumos_dereflect_image
 * -> out_path, written atomically with the input's ICC profile, EXIF block
 * and orientation (lumos_write_options.meta). The pixels keep their stored
 * orientation, so the Orientation tag written back stays true. Format:
 * opt->write.format, else out_path's suffix, else the input's; depth:
 * opt->bits, else the input's where the format holds it (JPEG: 8; PNG: 8
 * or 16; TIFF: any). OpenEXR in or out is LUMOS_E_UNSUPPORTED (linear
 * light). Errors name in_path (or out_path for a write); nothing is left at
 * out_path on failure. */
LUMOS_API lumos_status lumos_dereflect_file(lumos_ctx *ctx, const char *in_path,
                                            const char *out_path,
                                            const lumos_dereflect_options *opt);

#ifdef __cplusplus
}
#endif
#endif /* LUMOS_H */
