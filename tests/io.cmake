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

# Metadata passthrough (lumos_image_read_meta, lumos_write_options.meta): ICC
# profiles and EXIF blocks kept byte for byte through JPEG, PNG and TIFF
# round trips, orientation read and reset, a profile over several APP2
# chunks, damaged metadata dropped with a notice, CMYK JPEG refused, 16-bit
# gray PNG. test_meta_io_photos does the same on real JPEGs with EXIF found
# under the wallpaper directories (skipped, 77, when there are none).
lumos_test(test_meta_io SOURCES test_meta_io.c LABEL io)
add_test(NAME test_meta_io_photos COMMAND test_meta_io --photos /usr/share/backgrounds
         /usr/share/wallpapers)
set_tests_properties(test_meta_io_photos PROPERTIES SKIP_RETURN_CODE 77 LABELS io)

# Hostile files: TIFF, PNG, JPEG, OpenEXR and safetensors headers of a few
# hundred bytes claiming gigabytes, each read in a forked child capped at 256
# MiB more address space: refused naming the file, in under a second, with
# under 256 MiB of RSS growth; valid images still read (the banded RGBA path
# against libtiff's whole-image one), and lowered context limits refuse them.
lumos_test(test_hostile_files SOURCES test_hostile_files.c LABEL io)
