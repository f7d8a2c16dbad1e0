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
 *
 * Threads: idle OpenBLAS threads busy-wait about 0.1 s (2^28 cycles) after each call before they
 * sleep. Processes that share a few cores (a trainer and its teacher workers) would burn each
 * other's cores that way, so ed_blas_setup also sets OPENBLAS_THREAD_TIMEOUT=18 (2^18 cycles) when
 * the variable is unset and OpenBLAS runs more than one thread, in the same single re-execution.
 */
#ifndef ED_BLAS_H
#define ED_BLAS_H

/* Call first thing in main(). May not return (re-execs at most once, guarded by an environment
 * variable); returns normally otherwise. */
void ed_blas_setup(char **argv);

/* Sets OpenBLAS's thread count when n > 0. */
void ed_blas_set_threads(int n);

/* OpenBLAS's current thread count (>= 1); the element-wise loops of ed_par follow it. */
int ed_blas_threads(void);

/* Single-threaded BLAS calls on several threads of our own (the conv forward: one sample's sgemm
 * per ed_par thread). ed_blas_single_begin returns the process's thread count before the first
 * open section (the cores the caller may spread its own work over) and keeps OpenBLAS at 1
 * thread until the last open section ends (ed_blas_single_end, once per begin), which restores
 * that count. Sections may overlap on several threads: the count stays 1 while any is open.
 * Meanwhile every OpenBLAS call in the process runs on one thread; results are the same (OpenBLAS
 * splits C, not the sums, over its threads). */
int ed_blas_single_begin(void);
void ed_blas_single_end(void);

/* "OpenBLAS 0.3.21 (SkylakeX kernels, 2 threads)" for logs. */
const char *ed_blas_describe(void);

#endif
