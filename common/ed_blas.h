/*
 * ed_blas: OpenBLAS set-up for a process: kernel selection and thread count.
 *
 * Debian 12's OpenBLAS (0.3.21) does not recognise recent Intel server CPUs (Sapphire Rapids and
 * later) and falls back to its generic "Prescott" kernels, about 5x slower than its AVX-512 ones on
 * the same machine. OPENBLAS_CORETYPE is read when the library loads, before main(), so the only
 * fix from inside the program is to re-execute it with the variable set. ed_blas_setup() does that,
 * once, when all of these hold: the variable is unset, OpenBLAS chose a generic kernel, and the CPU
 * has the instructions of a better one (AVX-512 F/BW/DQ/VL -> SkylakeX, AVX2+FMA -> Haswell).
 * Set OPENBLAS_CORETYPE yourself (any value) to opt out.
 */
#ifndef ED_BLAS_H
#define ED_BLAS_H

/* Call first thing in main(). May not return (re-exec); returns normally otherwise. */
void ed_blas_setup(char **argv);

/* Sets OpenBLAS's thread count when n > 0. */
void ed_blas_set_threads(int n);

/* "OpenBLAS 0.3.21 (SkylakeX kernels, 2 threads)" for logs. */
const char *ed_blas_describe(void);

#endif
