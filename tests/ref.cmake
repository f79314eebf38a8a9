# The plain-C reference of the lightweight ISP nets (tests/ref/isp_nets_ref.c)
# against our PyTorch modules (tests/torch/isp_nets.py) on random weights.
# Skips (77) when LUMOS_PYTHON cannot import torch.
lumos_test(test_ref_nets SOURCES test_ref_nets.c ref/isp_nets_ref.c ref/st_min.c LABEL unit
           ARGS ${LUMOS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/torch/isp_nets.py)
target_link_libraries(test_ref_nets PRIVATE m)
set_tests_properties(test_ref_nets PROPERTIES TIMEOUT 600)
