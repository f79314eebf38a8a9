# The safetensors weights reader (io/weights.c): files written byte by byte,
# exact F32/F16/BF16 values, a file laid out as safetensors.torch.save_file
# writes it, and every kind of damaged or unsupported file.
lumos_test(test_weights SOURCES test_weights.c LABEL io)
target_compile_options(test_weights PRIVATE -Wall -Wextra)
