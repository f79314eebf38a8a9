# Hand-written gradients of the layer vocabulary against finite differences
# and a naive C adjoint.
foreach(s 1 2)
  add_halide_library(lumos_conv_backward_s${s} FROM train.generator GENERATOR train
                     TARGETS ${LUMOS_HALIDE_TARGETS} FEATURES ${LUMOS_HALIDE_FEATURES}
                     PARAMS stride=${s} ${LUMOS_GENERATOR_TIMEOUT}
                     USE_RUNTIME lumos_isp_full_u8.runtime)
endforeach()
lumos_test(test_grads SOURCES test_grads.c ref/isp_nets_ref.c LABEL train
           ARGS ${LUMOS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/torch/isp_nets.py)
target_link_libraries(test_grads PRIVATE lumos_conv_backward_s1 lumos_conv_backward_s2)
