# The classical ISP against plain-C references (synthetic mosaics).
lumos_test(test_isp SOURCES test_isp.c LABEL stage)
# The same on the SSE4.1 fallback of the multi-target build.
add_test(NAME test_isp_sse41 COMMAND test_isp --baseline)
set_tests_properties(test_isp_sse41 PROPERTIES LABELS stage)

# The real Canon EOS 30D CR2: metadata, file vs memory, vs LibRaw's rendering.
lumos_test(test_cr2 SOURCES test_cr2.c LABEL stage ARGS ${LUMOS_CR2})

# Two contexts on two threads at once.
lumos_test(test_threads SOURCES test_threads.c LABEL stage ARGS ${LUMOS_CR2})

# The command line: bad inputs, batches, exit codes, shards, no partial files.
add_test(NAME test_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_cli.sh $<TARGET_FILE:lumos_cli>
                                ${LUMOS_CR2} ${LUMOS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/torch/isp_nets.py
                                $<TARGET_FILE:mkdng>)
set_tests_properties(test_cli PROPERTIES SKIP_RETURN_CODE 77 LABELS cli)

# A crash (a fuzzed CR2), a hang (--file-timeout) or a stop signal during a
# batch: each file's worker process takes the blow, only complete outputs remain.
add_test(NAME test_cli_isolation COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_cli_isolation.sh
                                          $<TARGET_FILE:lumos_cli> ${LUMOS_CR2})
set_tests_properties(test_cli_isolation PROPERTIES SKIP_RETURN_CODE 77 LABELS cli)

# The README's C API example, run on the CR2.
add_executable(example_convert example_convert.c)
target_link_libraries(example_convert PRIVATE lumos_shared)
add_test(NAME example_convert COMMAND example_convert ${LUMOS_CR2}
         ${CMAKE_CURRENT_BINARY_DIR}/example_convert.jpg)
set_tests_properties(example_convert PROPERTIES LABELS cli)

# Orientation and the non-Bayer (LinearRaw DNG) fallback.
lumos_test(test_dng_paths SOURCES test_dng_paths.c tools/dng_writer.c LABEL stage)
