# Image I/O: allocation and orientation, JPEG/PNG/TIFF round trips, ICC and
# EXIF read back, atomic-write and bad-input failures.
lumos_test(test_io SOURCES test_io.c LABEL io)
# Full disk and read-only directory: needs a tmpfs mount in a private mount
# namespace (as root, or via `unshare -rm`); exits 77 (skipped) without one.
lumos_test(test_io_full_disk SOURCES test_io_full_disk.c LABEL io)

# Images of any kind: float32 and any channel count through TIFF and
# OpenEXR, damaged files, PNG/JPEG refusing them; the classical ISP's float
# output and conversions to .exr and 32-bit .tif on the CR2.
lumos_test(test_float_io SOURCES test_float_io.c LABEL io ARGS ${LUMOS_CR2})
