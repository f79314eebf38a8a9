# The learned ISPs' Halide pipelines against the plain-C reference.
lumos_test(test_learned SOURCES test_learned.c ref/isp_nets_ref.c LABEL stage)
