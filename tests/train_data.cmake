# Training data: unprocessing round trips through the classical ISP, each
# step against its forward, the noise model, crops, the dataset split and
# bad files.
lumos_test(test_unprocess SOURCES test_unprocess.c LABEL unit ARGS ${LUMOS_PHOTOS})
target_compile_options(test_unprocess PRIVATE -Wall -Wextra)
# Reflection pairs (train/reflect_synth.h): each synthesis model against a
# naive reference and against numpy/PyTorch (tests/torch/reflect_synth.py),
# the parameter draws and the mixture, Zhang's rejection, random views.
lumos_test(test_reflect_synth SOURCES test_reflect_synth.c LABEL unit
           ARGS ${LUMOS_PHOTOS} ${LUMOS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/torch/reflect_synth.py)
