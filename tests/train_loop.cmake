# The training loop: the loss terms against finite differences; a few dozen
# EfficientISP steps on four photos (the loss falls), resume bit-identical,
# 1 vs 2 threads identical, stop requests, bad data files, damaged and
# mismatched checkpoints, the weights file read back; `lumos train` usage
# errors, interruption and resume from the command line.
lumos_test(test_pixel_losses SOURCES test_pixel_losses.c LABEL unit)
# The gradient L1 and exclusion losses vs PyTorch's autograd (skips without torch).
lumos_test(test_pixel_losses_torch SOURCES test_pixel_losses_torch.c LABEL unit
           ARGS ${LUMOS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/torch/pixel_losses.py)
lumos_test(test_trainer SOURCES test_trainer.c LABEL train
           ARGS ${LUMOS_PHOTOS} ${LUMOS_PYTHON} ${LUMOS_CR2})
add_test(NAME test_train_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_train_cli.sh
                                     $<TARGET_FILE:lumos_cli> ${LUMOS_PHOTOS})
set_tests_properties(test_train_cli PROPERTIES SKIP_RETURN_CODE 77 LABELS cli)
# Training across two MPI ranks against one process (skips without Open MPI).
add_test(NAME test_train_mpi COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_train_mpi.sh
                                     $<TARGET_FILE:lumos_cli> ${LUMOS_PHOTOS})
set_tests_properties(test_train_mpi PROPERTIES SKIP_RETURN_CODE 77 LABELS train TIMEOUT 600)
# `lumos train` built without MPI (lumos-nompi, the same sources, when the
# build has MPI; else lumos itself): --help, and one process training as the
# MPI build's one process does, under a launcher's environment too.
if(TARGET lumos_cli_nompi)
  set(LUMOS_NOMPI_CLI $<TARGET_FILE:lumos_cli_nompi>)
else()
  set(LUMOS_NOMPI_CLI $<TARGET_FILE:lumos_cli>)
endif()
add_test(NAME test_train_nompi COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_train_nompi.sh
                                       ${LUMOS_NOMPI_CLI} $<TARGET_FILE:lumos_cli> ${LUMOS_PHOTOS})
set_tests_properties(test_train_nompi PROPERTIES SKIP_RETURN_CODE 77 LABELS cli TIMEOUT 120)
