# The learned ISPs' Halide pipelines against the plain-C reference.
lumos_test(test_learned SOURCES test_learned.c ref/isp_nets_ref.c LABEL stage)

# The chain runtime (stages/chain.c): band map, statistics, RMFA in bands.
lumos_test(test_tiler SOURCES test_tiler.c LABEL stage)

# The overlapping-tile runner (stages/tiler.c): blended seams, statistics pass, bounds.
lumos_test(test_tile_blend SOURCES test_tile_blend.c LABEL stage)

# The same pipelines against PyTorch's modules, on weights PyTorch wrote
# (skips when LUMOS_PYTHON cannot import torch; .ci/run installs python3-torch).
lumos_test(test_learned_torch SOURCES test_learned_torch.c LABEL stage
           ARGS ${LUMOS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/torch/isp_nets.py)
set_tests_properties(test_learned_torch PROPERTIES TIMEOUT 600)

# The layers no ISP uses yet, through the test-only layer_zoo network.
add_halide_library(lumos_layer_zoo_f32 FROM learned_isp.generator GENERATOR learned_isp
                   TARGETS ${LUMOS_HALIDE_TARGETS} FEATURES ${LUMOS_HALIDE_FEATURES}
                   PARAMS net=layer_zoo pass=2 output.type=float32 ${LUMOS_GENERATOR_TIMEOUT}
                   USE_RUNTIME lumos_isp_full_u8.runtime)
lumos_test(test_layers SOURCES test_layers.c ref/isp_nets_ref.c LABEL stage)
target_link_libraries(test_layers PRIVATE lumos_layer_zoo_f32)

# The camera-agnostic input: the canonical mosaic, and the weights' mode.
lumos_test(test_agnostic SOURCES test_agnostic.c LABEL unit)
