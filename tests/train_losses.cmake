# The feature-space losses of unpaired training (stages/train_losses.h) and
# the discriminators' R1/R2 gradient (train/adversarial.c) against PyTorch
# autograd in float64 (tests/torch/losses.py); finite differences only when
# the interpreter lacks torch.
lumos_test(test_losses SOURCES test_losses.c LABEL train
           ARGS ${LUMOS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/torch/losses.py)
