# Classical reflection suppression (stages/dereflect_classic.c): against a
# naive dense solve of the same objective (sizes down to 1×1), h = 0 and
# in-place exactness, bad arguments, and a synthetic pair from skimage's
# photos (PSNR to the transmission up; skipped without the photos).
lumos_test(test_dereflect_classic SOURCES test_dereflect_classic.c LABEL stage
           ARGS ${LUMOS_PHOTOS})

# The UHD network's pipelines (stages/dereflect_net.c) against the PyTorch
# module of tests/torch/dereflect_nets.py: padded sizes, several tilings
# equal to one another (skips without torch).
lumos_test(test_dereflect_torch SOURCES test_dereflect_torch.c LABEL stage
           ARGS ${LUMOS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/torch/dereflect_nets.py)
