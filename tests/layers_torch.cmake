# The layers of generators/layers_norm.h, layers_resample.h and
# layers_attention.h (LayerNorm, GELU, linear, the Swin block, transposed
# conv, resizes, pooling, group / instance norm), forward and hand-written
# backward, one test-only pipeline each (layer_test_generator.cpp, tensors in
# layer_tests.def), against PyTorch autograd in float64 (torch/layers.py).
add_halide_generator(layer_test.generator SOURCES layer_test_generator.cpp)
target_include_directories(layer_test.generator PRIVATE ${PROJECT_SOURCE_DIR}/generators
                           ${CMAKE_CURRENT_SOURCE_DIR})
set(LUMOS_LAYER_TESTS
  ln gelu linear swin_w4 swin_w4_s2 swin_w8_s4 convt_k4s2 convt_k3s2 convt_k3s1
  nearest nearest_by_a nearest_by_b bilinear bilinear_by_a bilinear_by_b
  avg_pool_k3s2p1 avg_pool_k4 avg_pool_k2s1 global_mean global_max group_norm instance_norm)
lumos_test(test_layers_torch SOURCES test_layers_torch.c LABEL train
           ARGS ${LUMOS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/torch/layers.py)
foreach(net IN LISTS LUMOS_LAYER_TESTS)
  add_halide_library(lumos_lt_${net} FROM layer_test.generator GENERATOR layer_test
                     TARGETS ${LUMOS_HALIDE_TARGETS} FEATURES ${LUMOS_HALIDE_FEATURES}
                     PARAMS net=${net} ${LUMOS_GENERATOR_TIMEOUT}
                     USE_RUNTIME lumos_isp_full_u8.runtime)
  target_link_libraries(test_layers_torch PRIVATE lumos_lt_${net})
endforeach()
set_tests_properties(test_layers_torch PROPERTIES TIMEOUT 300)
