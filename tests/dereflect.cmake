# Classical reflection suppression (stages/dereflect_classic.c): against a
# naive dense solve of the same objective (sizes down to 1×1), h = 0 and
# in-place exactness, bad arguments, and a synthetic pair from skimage's
# photos (PSNR to the transmission up; skipped without the photos).
lumos_test(test_dereflect_classic SOURCES test_dereflect_classic.c LABEL stage
           ARGS ${LUMOS_PHOTOS})
