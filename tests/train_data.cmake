# Training data: unprocessing round trips through the classical ISP, each
# step against its forward, the noise model, crops, the dataset split and
# bad files.
lumos_test(test_unprocess SOURCES test_unprocess.c LABEL unit ARGS ${LUMOS_PHOTOS})
target_compile_options(test_unprocess PRIVATE -Wall -Wextra)
