/*
 * ed_layer_ops: the layer kernels (see ed_layer_ops.h for the contracts and the conv lowering).
 *
 * Together with ed_mlp.c this is where BLAS is called for the models: dense layers and the conv
 * lowering are cblas_sgemm calls; everything else is a single pass over the activations. Shapes are
 * taken from the ed_layer (validated by the parser), so kernels do no checking of their own.
 */
#include "ed_layer_ops.h"
#include "ed_simd.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Dense
 * --------------------------------------------------------------------------------------------- */

void ed_dense_forward(float *y, const float *x, const float *W, const float *b, int B,
                      const ed_layer *L)
{
    const int in = L->in.c, out = L->units;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, x, in, W, in, 0.0f, y,
                out);
    for (int i = 0; i < B; i++) {
        float *restrict row = y + (size_t)i * out;
        for (int j = 0; j < out; j++)
            row[j] += b[j];
    }
}

void ed_dense_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                       const float *W, int B, const ed_layer *L)
{
    const int in = L->in.c, out = L->units;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, dy, out, x, in, 0.0f, dW,
                in);
    memset(db, 0, (size_t)out * sizeof(float));
    for (int i = 0; i < B; i++) {
        const float *restrict row = dy + (size_t)i * out;
        for (int j = 0; j < out; j++)
            db[j] += row[j];
    }
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0f, dy, out, W, in,
                    0.0f, dx, in);
}

/* ------------------------------------------------------------------------------------------------
 * Convolution (im2col + sgemm)
 * --------------------------------------------------------------------------------------------- */

size_t ed_conv_col_size(const ed_layer *L, int chunk)
{
    return (size_t)L->in.c * L->k * L->k * (size_t)chunk * L->out.h * L->out.w;
}

size_t ed_conv_gemm_size(const ed_layer *L, int chunk)
{
    return (size_t)L->units * (size_t)chunk * L->out.h * L->out.w;
}

/* Output columns [*lo, *hi) whose input column ox*S - P + kj lies inside the input (0..W-1). */
static void s_valid_range(int kj, const ed_layer *L, int *lo, int *hi)
{
    const int S = L->stride, P = L->pad, W = L->in.w, OW = L->out.w;
    int a = P - kj > 0 ? (P - kj + S - 1) / S : 0;                /* first ox with ix >= 0 */
    int b = (W - 1 + P - kj) >= 0 ? (W - 1 + P - kj) / S + 1 : 0; /* one past the last ix <= W-1 */
    *lo = a < OW ? a : OW;
    *hi = b < OW ? b : OW;
    if (*hi < *lo)
        *hi = *lo;
}

/* col (C*k*k, G*OHW): row r = (c, ki, kj), column g*OHW + oy*OW + ox holds x[g][c][iy][ix] with
 * iy = oy*s - pad + ki, ix = ox*s - pad + kj, or 0 outside the input. */
static void s_im2col(float *restrict col, const float *restrict x, int G, const ed_layer *L)
{
    const int C = L->in.c, H = L->in.h, W = L->in.w, K = L->k, S = L->stride, P = L->pad;
    const int OH = L->out.h, OW = L->out.w;
    const size_t ohw = (size_t)OH * OW, ld = (size_t)G * ohw, chw = (size_t)C * H * W;
    for (int c = 0; c < C; c++)
        for (int ki = 0; ki < K; ki++)
            for (int kj = 0; kj < K; kj++) {
                float *restrict row = col + ((size_t)(c * K + ki) * K + kj) * ld;
                for (int g = 0; g < G; g++) {
                    const float *restrict plane = x + (size_t)g * chw + (size_t)c * H * W;
                    float *restrict dst = row + (size_t)g * ohw;
                    for (int oy = 0; oy < OH; oy++) {
                        const int iy = oy * S - P + ki;
                        float *restrict d = dst + (size_t)oy * OW;
                        if (iy < 0 || iy >= H) {
                            memset(d, 0, (size_t)OW * sizeof(float));
                            continue;
                        }
                        const float *restrict src = plane + (size_t)iy * W;
                        int lo, hi;
                        s_valid_range(kj, L, &lo, &hi);
                        for (int ox = 0; ox < lo; ox++)
                            d[ox] = 0.0f;
                        if (S == 1 && hi > lo)
                            memcpy(d + lo, src + (lo - P + kj), (size_t)(hi - lo) * sizeof(float));
                        else
                            for (int ox = lo; ox < hi; ox++)
                                d[ox] = src[ox * S - P + kj];
                        for (int ox = hi; ox < OW; ox++)
                            d[ox] = 0.0f;
                    }
                }
            }
}

/* dx (G, C, H, W) = col2im(col): the transpose of s_im2col (overlapping windows add up). */
static void s_col2im(float *restrict dx, const float *restrict col, int G, const ed_layer *L)
{
    const int C = L->in.c, H = L->in.h, W = L->in.w, K = L->k, S = L->stride, P = L->pad;
    const int OH = L->out.h, OW = L->out.w;
    const size_t ohw = (size_t)OH * OW, ld = (size_t)G * ohw, chw = (size_t)C * H * W;
    memset(dx, 0, (size_t)G * chw * sizeof(float));
    for (int c = 0; c < C; c++)
        for (int ki = 0; ki < K; ki++)
            for (int kj = 0; kj < K; kj++) {
                const float *restrict row = col + ((size_t)(c * K + ki) * K + kj) * ld;
                for (int g = 0; g < G; g++) {
                    float *restrict plane = dx + (size_t)g * chw + (size_t)c * H * W;
                    const float *restrict src = row + (size_t)g * ohw;
                    for (int oy = 0; oy < OH; oy++) {
                        const int iy = oy * S - P + ki;
                        if (iy < 0 || iy >= H)
                            continue;
                        float *restrict d = plane + (size_t)iy * W;
                        const float *restrict s = src + (size_t)oy * OW;
                        int lo, hi;
                        s_valid_range(kj, L, &lo, &hi);
                        for (int ox = lo; ox < hi; ox++)
                            d[ox * S - P + kj] += s[ox];
                    }
                }
            }
}

void ed_conv_forward(float *y, const float *x, const float *W, const float *b, float *col,
                     float *gemm, int B, int chunk, const ed_layer *L)
{
    const int OC = L->units, ckk = L->in.c * L->k * L->k;
    const size_t ohw = (size_t)L->out.h * L->out.w, in_sz = ed_shape_size(L->in);
    for (int n0 = 0; n0 < B; n0 += chunk) {
        const int G = B - n0 < chunk ? B - n0 : chunk;
        const size_t ld = (size_t)G * ohw;
        s_im2col(col, x + (size_t)n0 * in_sz, G, L);
        /* gemm (OC, G*OHW) = W (OC, ckk) col (ckk, G*OHW) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, (int)ld, ckk, 1.0f, W, ckk, col,
                    (int)ld, 0.0f, gemm, (int)ld);
        for (int g = 0; g < G; g++) {
            float *yo = y + (size_t)(n0 + g) * OC * ohw;
            for (int oc = 0; oc < OC; oc++) {
                float *restrict d = yo + (size_t)oc * ohw;
                const float *restrict s = gemm + (size_t)oc * ld + (size_t)g * ohw;
                const float bias = b[oc];
                for (size_t p = 0; p < ohw; p++)
                    d[p] = s[p] + bias;
            }
        }
    }
}

void ed_conv_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                      const float *W, float *col, float *gemm, int B, int chunk, const ed_layer *L)
{
    const int OC = L->units, ckk = L->in.c * L->k * L->k;
    const size_t ohw = (size_t)L->out.h * L->out.w, in_sz = ed_shape_size(L->in);
    memset(db, 0, (size_t)OC * sizeof(float));
    for (int n0 = 0; n0 < B; n0 += chunk) {
        const int G = B - n0 < chunk ? B - n0 : chunk;
        const size_t ld = (size_t)G * ohw;
        /* gemm (OC, G*OHW) <- dy (G, OC, OHW); db += its row sums */
        for (int g = 0; g < G; g++) {
            const float *dyo = dy + (size_t)(n0 + g) * OC * ohw;
            for (int oc = 0; oc < OC; oc++) {
                const float *restrict s = dyo + (size_t)oc * ohw;
                float *restrict d = gemm + (size_t)oc * ld + (size_t)g * ohw;
                float acc = 0.0f;
                for (size_t p = 0; p < ohw; p++) {
                    d[p] = s[p];
                    acc += s[p];
                }
                db[oc] += acc;
            }
        }
        s_im2col(col, x + (size_t)n0 * in_sz, G, L);
        /* dW (OC, ckk) (+)= gemm (OC, G*OHW) col^T (G*OHW, ckk) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, ckk, (int)ld, 1.0f, gemm, (int)ld,
                    col, (int)ld, n0 == 0 ? 0.0f : 1.0f, dW, ckk);
        if (!dx)
            continue;
        /* col (ckk, G*OHW) = W^T (ckk, OC) gemm (OC, G*OHW) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, (int)ld, OC, 1.0f, W, ckk, gemm,
                    (int)ld, 0.0f, col, (int)ld);
        s_col2im(dx + (size_t)n0 * in_sz, col, G, L);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Pools
 * --------------------------------------------------------------------------------------------- */

void ed_maxpool_forward(float *y, int32_t *argmax, const float *x, int B, const ed_layer *L)
{
    const int H = L->in.h, W = L->in.w, K = L->k, S = L->stride, OH = L->out.h, OW = L->out.w;
    const size_t planes = (size_t)B * L->in.c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *restrict xp = x + pl * H * W;
        float *restrict yp = y + pl * OH * OW;
        int32_t *ap = argmax ? argmax + pl * OH * OW : NULL;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int best = oy * S * W + ox * S;
                float m = xp[best];
                for (int ki = 0; ki < K; ki++)
                    for (int kj = 0; kj < K; kj++) {
                        const int i = (oy * S + ki) * W + ox * S + kj;
                        if (xp[i] > m) {
                            m = xp[i];
                            best = i;
                        }
                    }
                yp[oy * OW + ox] = m;
                if (ap)
                    ap[oy * OW + ox] = best;
            }
    }
}

void ed_maxpool_backward(float *dx, const float *dy, const int32_t *argmax, int B,
                         const ed_layer *L)
{
    const size_t hw = (size_t)L->in.h * L->in.w, ohw = (size_t)L->out.h * L->out.w;
    const size_t planes = (size_t)B * L->in.c;
    memset(dx, 0, planes * hw * sizeof(float));
    for (size_t pl = 0; pl < planes; pl++)
        for (size_t o = 0; o < ohw; o++)
            dx[pl * hw + (size_t)argmax[pl * ohw + o]] += dy[pl * ohw + o];
}

void ed_avgpool_forward(float *y, const float *x, int B, const ed_layer *L)
{
    const int H = L->in.h, W = L->in.w, K = L->k, S = L->stride, OH = L->out.h, OW = L->out.w;
    const size_t planes = (size_t)B * L->in.c;
    const float inv = 1.0f / (float)(K * K);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *restrict xp = x + pl * H * W;
        float *restrict yp = y + pl * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float s = 0.0f;
                for (int ki = 0; ki < K; ki++)
                    for (int kj = 0; kj < K; kj++)
                        s += xp[(oy * S + ki) * W + ox * S + kj];
                yp[oy * OW + ox] = s * inv;
            }
    }
}

void ed_avgpool_backward(float *dx, const float *dy, int B, const ed_layer *L)
{
    const int H = L->in.h, W = L->in.w, K = L->k, S = L->stride, OH = L->out.h, OW = L->out.w;
    const size_t planes = (size_t)B * L->in.c;
    const float inv = 1.0f / (float)(K * K);
    memset(dx, 0, planes * H * W * sizeof(float));
    for (size_t pl = 0; pl < planes; pl++) {
        float *restrict dp = dx + pl * H * W;
        const float *restrict gp = dy + pl * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const float g = gp[oy * OW + ox] * inv;
                for (int ki = 0; ki < K; ki++)
                    for (int kj = 0; kj < K; kj++)
                        dp[(oy * S + ki) * W + ox * S + kj] += g;
            }
    }
}

void ed_gap_forward(float *y, const float *x, int B, const ed_layer *L)
{
    const size_t hw = (size_t)L->in.h * L->in.w, planes = (size_t)B * L->in.c;
    const float inv = 1.0f / (float)hw;
    for (size_t pl = 0; pl < planes; pl++) {
        float s = 0.0f;
        for (size_t i = 0; i < hw; i++)
            s += x[pl * hw + i];
        y[pl] = s * inv;
    }
}

void ed_gap_backward(float *dx, const float *dy, int B, const ed_layer *L)
{
    const size_t hw = (size_t)L->in.h * L->in.w, planes = (size_t)B * L->in.c;
    const float inv = 1.0f / (float)hw;
    for (size_t pl = 0; pl < planes; pl++)
        for (size_t i = 0; i < hw; i++)
            dx[pl * hw + i] = dy[pl] * inv;
}

/* ------------------------------------------------------------------------------------------------
 * Element-wise
 * --------------------------------------------------------------------------------------------- */

ED_VECTOR_CLONES
void ed_relu_forward(float *restrict y, const float *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

ED_VECTOR_CLONES
void ed_relu_backward(float *restrict dx, const float *restrict dy, const float *restrict y,
                      size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

ED_VECTOR_CLONES
void ed_dropout_forward(float *restrict y, const float *restrict x, const float *restrict mask,
                        size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * mask[i];
}

ED_VECTOR_CLONES
void ed_dropout_backward(float *restrict dx, const float *restrict dy, const float *restrict mask,
                         size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * mask[i];
}

/* ------------------------------------------------------------------------------------------------
 * Batch norm: channel c of sample n is the plane x + (n*C + c)*HW.
 * --------------------------------------------------------------------------------------------- */

void ed_bn_forward_train(float *y, float *xhat, float *mean, float *var, float *istd,
                         const float *x, const float *gamma, const float *beta, int B,
                         const ed_layer *L)
{
    const int C = L->in.c;
    const size_t hw = (size_t)L->in.h * L->in.w;
    const double M = (double)B * (double)hw;
    for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (int n = 0; n < B; n++) {
            const float *p = x + ((size_t)n * C + c) * hw;
            for (size_t i = 0; i < hw; i++)
                s += p[i];
        }
        const double mu = s / M;
        double v = 0.0;
        for (int n = 0; n < B; n++) {
            const float *p = x + ((size_t)n * C + c) * hw;
            for (size_t i = 0; i < hw; i++)
                v += (p[i] - mu) * (p[i] - mu);
        }
        v /= M;
        mean[c] = (float)mu;
        var[c] = (float)v;
        const float is = (float)(1.0 / sqrt(v + (double)ED_BN_EPS));
        istd[c] = is;
        const float g = gamma[c], bt = beta[c], muf = (float)mu;
        for (int n = 0; n < B; n++) {
            const size_t o = ((size_t)n * C + c) * hw;
            for (size_t i = 0; i < hw; i++) {
                const float h = (x[o + i] - muf) * is;
                xhat[o + i] = h;
                y[o + i] = g * h + bt;
            }
        }
    }
}

void ed_bn_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                         const float *rmean, const float *rvar, int B, const ed_layer *L)
{
    const int C = L->in.c;
    const size_t hw = (size_t)L->in.h * L->in.w;
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++) {
            const float sc = gamma[c] / sqrtf(rvar[c] + ED_BN_EPS);
            const float sh = beta[c] - rmean[c] * sc;
            const size_t o = ((size_t)n * C + c) * hw;
            for (size_t i = 0; i < hw; i++)
                y[o + i] = x[o + i] * sc + sh;
        }
}

void ed_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *xhat,
                    const float *gamma, const float *istd, int B, const ed_layer *L)
{
    const int C = L->in.c;
    const size_t hw = (size_t)L->in.h * L->in.w;
    const float M = (float)((double)B * (double)hw);
    for (int c = 0; c < C; c++) {
        double sdy = 0.0, sdyx = 0.0;
        for (int n = 0; n < B; n++) {
            const size_t o = ((size_t)n * C + c) * hw;
            for (size_t i = 0; i < hw; i++) {
                sdy += dy[o + i];
                sdyx += (double)dy[o + i] * xhat[o + i];
            }
        }
        dgamma[c] = (float)sdyx;
        dbeta[c] = (float)sdy;
        if (!dx)
            continue;
        const float k = gamma[c] * istd[c] / M, a = (float)sdy, bq = (float)sdyx;
        for (int n = 0; n < B; n++) {
            const size_t o = ((size_t)n * C + c) * hw;
            for (size_t i = 0; i < hw; i++)
                dx[o + i] = k * (M * dy[o + i] - a - xhat[o + i] * bq);
        }
    }
}
