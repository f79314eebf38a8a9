# The learned ISPs' Halide pipelines against the plain-C reference.
lumos_test(test_learned SOURCES test_learned.c ref/isp_nets_ref.c LABEL stage)

# The same pipelines against PyTorch's modules, on weights PyTorch wrote
# (skips when LUMOS_PYTHON cannot import torch; .ci/run installs python3-torch).
lumos_test(test_learned_torch SOURCES test_learned_torch.c LABEL stage
           ARGS ${LUMOS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/torch/isp_nets.py)
set_tests_properties(test_learned_torch PROPERTIES TIMEOUT 600)
