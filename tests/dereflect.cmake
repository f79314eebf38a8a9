# Classical reflection suppression (stages/dereflect_classic.c): against a
# naive dense solve of the same objective (sizes down to 1×1), h = 0 and
# in-place exactness, bad arguments, and a synthetic pair from skimage's
# photos (PSNR to the transmission up; skipped without the photos).
lumos_test(test_dereflect_classic SOURCES test_dereflect_classic.c LABEL stage
           ARGS ${LUMOS_PHOTOS})

# The UHD network's pipelines (stages/dereflect_net.c) against the PyTorch
# module of tests/torch/dereflect_nets.py: padded sizes, several tilings
# equal to one another, training's gradient (skips without torch).
lumos_test(test_dereflect_torch SOURCES test_dereflect_torch.c LABEL stage
           ARGS ${LUMOS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/torch/dereflect_nets.py)

# Training (train/dereflect_task.c): a short uhd run on skimage's photos
# lowers its loss, held-out pairs are reproducible, bad setups refused.
lumos_test(test_dereflect_train SOURCES test_dereflect_train.c LABEL train
           ARGS ${LUMOS_PHOTOS})
set_tests_properties(test_dereflect_train PROPERTIES TIMEOUT 600)

# lumos_dereflect_image (pipeline/dereflect.c) against the stages it wraps:
# 8/16-bit, gray, alpha, float and 1×1 images, the uhd network with random
# weights, and its refusals (bad options, size and memory limits).
lumos_test(test_dereflect_image SOURCES test_dereflect_image.c LABEL stage)

# `lumos dereflect`: formats, depths, profile and EXIF kept, bad inputs,
# batches, --skip-existing, --shard, --preview, exit codes (inputs made from
# skimage's photos by tools/dereflect_photos.py; skips without them).
add_test(NAME test_dereflect_cli
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_dereflect_cli.sh $<TARGET_FILE:lumos_cli>
                 ${LUMOS_PHOTOS} ${LUMOS_PYTHON})
set_tests_properties(test_dereflect_cli PROPERTIES SKIP_RETURN_CODE 77 LABELS cli)
