/*
 * ed_simd: ED_VECTOR_CLONES compiles a hot element-wise loop for AVX-512, AVX2 and baseline x86-64
 * and picks the best at load time (gcc target_clones / ifunc), so binaries stay portable while the
 * optimizer, activation and loss loops use the wide vectors of the machine they run on.
 * Not under ThreadSanitizer: the ifunc resolvers run during relocation, before the TSan runtime
 * is up, and its instrumentation of them crashes the program at load.
 */
#ifndef ED_SIMD_H
#define ED_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ED_NO_CLONES) &&   \
    !defined(__SANITIZE_THREAD__)
#define ED_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ED_VECTOR_CLONES
#endif

#endif
