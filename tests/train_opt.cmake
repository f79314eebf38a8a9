# Training state: Adam against a naive double loop and torch.optim.Adam (that
# part skips without torch), a toy fit; checkpoints: resume bit-identical,
# damaged and mismatched files refused, failed writes keep the old file.
lumos_test(test_adam SOURCES test_adam.c LABEL train ARGS ${LUMOS_PYTHON})
target_link_libraries(test_adam PRIVATE m)
lumos_test(test_checkpoint SOURCES test_checkpoint.c LABEL train)
