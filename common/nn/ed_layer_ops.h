/*
 * ed_layer_ops: forward/backward kernels of the layer stack, as free functions over plain buffers
 * (llm.c style): `(out, in, params, scratch, B, layer)`. Activations are NCHW row-major, one sample
 * of shape L->in / L->out after another. Nothing here allocates; the caller (ed_net) owns every
 * buffer, sized once. Backward kernels overwrite (never accumulate into) their gradient outputs.
 *
 * Convolution is lowered onto cblas_sgemm (im2col). Forward, sample by sample, the samples split
 * over the BLAS threads' cores (ed_par), each sgemm on one OpenBLAS thread (ed_blas_single_begin):
 *     col_n (C*k*k + 1, OH*OW) = im2col(x_n) with a last row of ones (one L2-sized slot per thread)
 *     y_n   (OC, OH*OW)        = [W | b] (OC, C*k*k + 1) col_n          (written in place, no
 * scatter) where gemm holds [W | b]. Backward, `chunk` samples at a time on the threaded sgemm:
 * gathers dY into gemm (OC, chunk*OH*OW), dW += gemm col^T with col (C*k*k, chunk*OH*OW), db += row
 * sums, and, when dx is wanted, col = W^T gemm folded back by col2im.
 */
#ifndef ED_LAYER_OPS_H
#define ED_LAYER_OPS_H

#include <stdint.h>

#include "ed_layer.h"

/* Floats of the conv scratch buffers for `chunk` samples through conv layer L. */
size_t ed_conv_col_size(const ed_layer *L, int chunk);
size_t ed_conv_gemm_size(const ed_layer *L, int chunk);

/* y (B, out) = x (B, in) W^T (in, out) + b. */
void ed_dense_forward(float *y, const float *x, const float *W, const float *b, int B,
                      const ed_layer *L);
/* dW (out, in) = dy^T x; db (out) = column sums of dy; dx (B, in) = dy W unless dx is NULL. */
void ed_dense_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                       const float *W, int B, const ed_layer *L);

/* y (B, OC, OH, OW) = conv(x (B, C, H, W), W (OC, C, k, k)) + b (OC). col/gemm: scratch of
 * ed_conv_col_size / ed_conv_gemm_size for `chunk` samples. */
void ed_conv_forward(float *y, const float *x, const float *W, const float *b, float *col,
                     float *gemm, int B, int chunk, const ed_layer *L);
/* dW (OC, C, k, k), db (OC) from dy (B, OC, OH, OW) and x; dx (B, C, H, W) unless NULL. */
void ed_conv_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                      const float *W, float *col, float *gemm, int B, int chunk, const ed_layer *L);

/* Max pool: y (B, C, OH, OW); argmax (B, C, OH, OW) index into the input plane (H*W) of each
 * maximum (the first one on ties), or NULL when no backward will follow. */
void ed_maxpool_forward(float *y, int32_t *argmax, const float *x, int B, const ed_layer *L);
void ed_maxpool_backward(float *dx, const float *dy, const int32_t *argmax, int B,
                         const ed_layer *L);

/* Average pool over k x k windows (all inside the input: no padding). */
void ed_avgpool_forward(float *y, const float *x, int B, const ed_layer *L);
void ed_avgpool_backward(float *dx, const float *dy, int B, const ed_layer *L);

/* Global average pool: y (B, C) = mean over H*W. */
void ed_gap_forward(float *y, const float *x, int B, const ed_layer *L);
void ed_gap_backward(float *dx, const float *dy, int B, const ed_layer *L);

/* y (n) = max(x, 0); backward dx = dy where y > 0, else 0. */
void ed_relu_forward(float *y, const float *x, size_t n);
void ed_relu_backward(float *dx, const float *dy, const float *y, size_t n);

/* y (n) = x * mask; backward dx = dy * mask (mask from ed_rng_dropout_mask). */
void ed_dropout_forward(float *y, const float *x, const float *mask, size_t n);
void ed_dropout_backward(float *dx, const float *dy, const float *mask, size_t n);

/* Batch norm with batch statistics over (B, H, W) per channel: fills mean, var (biased), istd
 * = 1 / sqrt(var + eps) (C each) and xhat (B, C, H, W); y = gamma xhat + beta. */
void ed_bn_forward_train(float *y, float *xhat, float *mean, float *var, float *istd,
                         const float *x, const float *gamma, const float *beta, int B,
                         const ed_layer *L);
/* Batch norm with running statistics: y = gamma (x - rmean) / sqrt(rvar + eps) + beta. */
void ed_bn_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                         const float *rmean, const float *rvar, int B, const ed_layer *L);
/* Backward of ed_bn_forward_train: dgamma, dbeta (C); dx (B, C, H, W) unless NULL. */
void ed_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *xhat,
                    const float *gamma, const float *istd, int B, const ed_layer *L);

#endif
