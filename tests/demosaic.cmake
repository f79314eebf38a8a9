# Demosaic quality: real photos mosaicked into synthetic DNGs (camera space =
# linear sRGB), through LibRaw and lumos_isp_classic, against the photo and a
# bilinear reference. Also builds mkdng, which the benchmarks in bench/ use.

add_executable(mkdng tools/mkdng.c tools/dng_writer.c)
target_link_libraries(mkdng PRIVATE lumos)
target_include_directories(mkdng PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_definitions(mkdng PRIVATE _POSIX_C_SOURCE=200809L)
target_compile_options(mkdng PRIVATE -Wall -Wextra)

lumos_test(test_demosaic SOURCES test_demosaic.c tools/dng_writer.c LABEL stage
           ARGS ${LUMOS_PHOTOS})
target_compile_options(test_demosaic PRIVATE -Wall -Wextra)
