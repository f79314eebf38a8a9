# bench/isp_quality, the learned ISPs' quality table: its scores (PSNR,
# SSIM, CIEDE2000) against known values, the held-out samples, and the
# program on two skimage photos named into the test split (exit codes, the
# table, the CSV, the preview).
lumos_test(test_isp_quality SOURCES test_isp_quality.c ${PROJECT_SOURCE_DIR}/bench/quality.c
           LABEL bench ARGS $<TARGET_FILE:isp_quality> ${LUMOS_PHOTOS})
add_dependencies(test_isp_quality isp_quality)
