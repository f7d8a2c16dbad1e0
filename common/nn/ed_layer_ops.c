/*
 * ed_layer_ops: the layer kernels (see ed_layer_ops.h for the contracts and the conv lowering).
 *
 * Together with ed_mlp.c this is where BLAS is called for the models: dense layers and the conv
 * lowering are cblas_sgemm calls; everything else is a single pass over the activations. Shapes are
 * taken from the ed_layer (validated by the parser), so kernels do no checking of their own.
 */
#include "ed_layer_ops.h"
#include "ed_blas.h"
#include "ed_par.h"
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
 * Parallel items: the non-GEMM passes run on the cores OpenBLAS was given (ed_par), split into
 * independent items (rows, samples, channels, planes) so every split gives bit-identical results.
 * ed_par_for splits on multiples of 16 elements: an item is 16 of its elements.
 * --------------------------------------------------------------------------------------------- */

typedef void (*s_item_fn)(int lo, int hi, const void *a);

typedef struct {
    s_item_fn fn;
    const void *a;
} s_items;

static void s_items_body(size_t lo, size_t hi, void *ctx)
{
    const s_items *it = ctx;
    it->fn((int)(lo / 16), (int)(hi / 16), it->a);
}

/* fn over items [0, count) on <= threads threads, in parallel when each part gets >= min_items. */
static void s_par_items_on(int count, int min_items, int threads, s_item_fn fn, const void *a)
{
    s_items it = {fn, a};
    if (count > 0)
        ed_par_for_threads((size_t)count * 16, (size_t)(min_items < 1 ? 1 : min_items) * 16,
                           threads, s_items_body, &it);
}

/* The same on the process's BLAS threads. */
static void s_par_items(int count, int min_items, s_item_fn fn, const void *a)
{
    s_par_items_on(count, min_items, ed_blas_threads(), fn, a);
}

/* ------------------------------------------------------------------------------------------------
 * Convolution (im2col + sgemm)
 * --------------------------------------------------------------------------------------------- */

size_t ed_conv_col_size(const ed_layer *L, int chunk)
{
    /* C*k*k rows, plus the forward's row of ones (the bias's column of [W | b]) */
    return ((size_t)L->in.c * L->k * L->k + 1) * (size_t)chunk * L->out.h * L->out.w;
}

size_t ed_conv_gemm_size(const ed_layer *L, int chunk)
{
    /* the backward's (OC, chunk*OHW), or the forward's [W | b] (OC, C*k*k + 1) */
    const size_t back = (size_t)L->units * (size_t)chunk * L->out.h * L->out.w;
    const size_t wb = (size_t)L->units * ((size_t)L->in.c * L->k * L->k + 1);
    return back > wb ? back : wb;
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

/* Arguments of the conv passes run as parallel items. */
typedef struct {
    float *col, *out, *db;
    const float *x, *in, *b;
    int G, n0;
    bool zeroed; /* im2col: col already holds zeros wherever the row falls outside the input */
    const ed_layer *L;
} s_conv_job;

/* One im2col row of a stride-1 conv as wide as its input (OW == W, e.g. k3p1): over the output rows
 * that see the input, the row is the input plane shifted by a constant, so it is one contiguous
 * copy per sample, then the lo/hi border columns (which the copy filled from neighbouring rows) are
 * zeroed; the rows outside the input are zeroed (skipped when `zeroed`: they already are, as in
 * the forward's per-thread slot). Border columns go column by column (strided: no memset call per
 * output row). planes: channel c of sample 0, stride chw. */
static void s_im2col_row_same(float *restrict row, const float *restrict planes, size_t chw, int G,
                              int ki, int off, int lo, int hi, bool zeroed, const ed_layer *L)
{
    const int H = L->in.h, W = L->in.w, P = L->pad, OH = L->out.h;
    const size_t ohw = (size_t)OH * W;
    const int oy_lo = P - ki > 0 ? P - ki : 0, oy_end = H + P - ki < OH ? H + P - ki : OH;
    for (int g = 0; g < G; g++) {
        float *restrict d = row + (size_t)g * ohw;
        if (oy_end <= oy_lo || hi <= lo) {
            if (!zeroed)
                memset(d, 0, ohw * sizeof(float));
            continue;
        }
        const float *restrict src = planes + (size_t)g * chw;
        /* d[oy*W + ox] = src[(oy + ki - P)*W + ox + off]: first to last valid element */
        const long first = (long)oy_lo * W + lo, last = (long)(oy_end - 1) * W + hi;
        const long shift = (long)(ki - P) * W + off;
        if (!zeroed) {
            memset(d, 0, (size_t)first * sizeof(float));
            memset(d + last, 0, (ohw - (size_t)last) * sizeof(float));
        }
        memcpy(d + first, src + first + shift, (size_t)(last - first) * sizeof(float));
        for (int ox = 0; ox < lo; ox++)
            for (int oy = oy_lo; oy < oy_end; oy++)
                d[(size_t)oy * W + ox] = 0.0f;
        for (int ox = hi; ox < W; ox++)
            for (int oy = oy_lo; oy < oy_end; oy++)
                d[(size_t)oy * W + ox] = 0.0f;
    }
}

/* Rows [r0, r1) of im2col: col (C*k*k, G*OHW), row r = (c, ki, kj), column g*OHW + oy*OW + ox
 * holds x[g][c][iy][ix] with iy = oy*s - pad + ki, ix = ox*s - pad + kj, or 0 outside the input.
 * The border columns of a row are zeroed, the inside is a straight copy (no per-element test). */
static void s_im2col_rows(int r0, int r1, const void *a)
{
    const s_conv_job *j = a;
    const ed_layer *L = j->L;
    const int H = L->in.h, W = L->in.w, K = L->k, S = L->stride, P = L->pad;
    const int OH = L->out.h, OW = L->out.w, G = j->G;
    const size_t ohw = (size_t)OH * OW, ld = (size_t)G * ohw, chw = (size_t)L->in.c * H * W;
    for (int r = r0; r < r1; r++) {
        const int c = r / (K * K), ki = r / K % K, kj = r % K;
        int lo, hi;
        s_valid_range(kj, L, &lo, &hi);
        const int off = kj - P;
        float *restrict row = j->col + (size_t)r * ld;
        if (S == 1 && OW == W) {
            s_im2col_row_same(row, j->x + (size_t)c * H * W, chw, G, ki, off, lo, hi, j->zeroed, L);
            continue;
        }
        for (int g = 0; g < G; g++) {
            const float *restrict plane = j->x + (size_t)g * chw + (size_t)c * H * W;
            float *restrict dst = row + (size_t)g * ohw;
            for (int oy = 0; oy < OH; oy++) {
                const int iy = oy * S - P + ki;
                float *restrict d = dst + (size_t)oy * OW;
                if (iy < 0 || iy >= H) {
                    for (int ox = 0; ox < OW; ox++)
                        d[ox] = 0.0f;
                    continue;
                }
                const float *restrict src = plane + (size_t)iy * W;
                for (int ox = 0; ox < lo; ox++)
                    d[ox] = 0.0f;
                if (S == 1)
                    for (int ox = lo; ox < hi; ox++)
                        d[ox] = src[ox + off];
                else
                    for (int ox = lo; ox < hi; ox++)
                        d[ox] = src[ox * S + off];
                for (int ox = hi; ox < OW; ox++)
                    d[ox] = 0.0f;
            }
        }
    }
}

static void s_im2col(float *col, const float *x, int G, const ed_layer *L)
{
    const s_conv_job j = {.col = col, .x = x, .G = G, .L = L};
    const int rows = L->in.c * L->k * L->k;
    /* a part is worth a thread wake-up from about 4k floats on */
    const size_t per_row = (size_t)G * L->out.h * L->out.w;
    s_par_items(rows, (int)(4096 / per_row + 1), s_im2col_rows, &j);
}

/* Samples [g0, g1) of col2im: dx (G, C, H, W), the transpose of im2col (windows add up). */
static void s_col2im_samples(int g0, int g1, const void *a)
{
    const s_conv_job *j = a;
    const ed_layer *L = j->L;
    const int C = L->in.c, H = L->in.h, W = L->in.w, K = L->k, S = L->stride, P = L->pad;
    const int OH = L->out.h, OW = L->out.w;
    const size_t ohw = (size_t)OH * OW, ld = (size_t)j->G * ohw, chw = (size_t)C * H * W;
    memset(j->out + (size_t)g0 * chw, 0, (size_t)(g1 - g0) * chw * sizeof(float));
    for (int g = g0; g < g1; g++)
        for (int r = 0; r < C * K * K; r++) {
            const int c = r / (K * K), ki = r / K % K, kj = r % K, off = kj - P;
            int lo, hi;
            s_valid_range(kj, L, &lo, &hi);
            float *restrict plane = j->out + (size_t)g * chw + (size_t)c * H * W;
            const float *restrict src = j->col + (size_t)r * ld + (size_t)g * ohw;
            for (int oy = 0; oy < OH; oy++) {
                const int iy = oy * S - P + ki;
                if (iy < 0 || iy >= H)
                    continue;
                float *restrict d = plane + (size_t)iy * W;
                const float *restrict s = src + (size_t)oy * OW;
                if (S == 1)
                    for (int ox = lo; ox < hi; ox++)
                        d[ox + off] += s[ox];
                else
                    for (int ox = lo; ox < hi; ox++)
                        d[ox * S + off] += s[ox];
            }
        }
}

/* Channels [o0, o1) of the backward's gather: gemm (OC, G*OHW) <- dy (n0.., OC, OHW), and db +=
 * the channel's sums (sample by sample, in order). */
static void s_conv_gather_channels(int o0, int o1, const void *a)
{
    const s_conv_job *j = a;
    const int OC = j->L->units, G = j->G;
    const size_t ohw = (size_t)j->L->out.h * j->L->out.w, ld = (size_t)G * ohw;
    for (int oc = o0; oc < o1; oc++)
        for (int g = 0; g < G; g++) {
            const float *restrict s = j->in + ((size_t)(j->n0 + g) * OC + oc) * ohw;
            float *restrict d = j->col + (size_t)oc * ld + (size_t)g * ohw;
            float acc = 0.0f;
            for (size_t p = 0; p < ohw; p++) {
                d[p] = s[p];
                acc += s[p];
            }
            j->db[oc] += acc;
        }
}

/* Arguments of the forward's per-sample passes. */
typedef struct {
    float *y, *col;
    const float *x, *Wb;
    const ed_layer *L;
} s_conv_fwd_job;

/* Samples [g0, g1) of the forward, one after the other in this thread: each sample's im2col (in
 * the slot of sample g0: one L2-sized buffer per thread) with a row of ones, then y_g (OC, OHW) =
 * [W | b] (OC, ckk + 1) col_g (ckk + 1, OHW): the sgemm adds the bias and writes y in place. */
static void s_conv_fwd_samples(int g0, int g1, const void *a)
{
    const s_conv_fwd_job *j = a;
    const ed_layer *L = j->L;
    const int OC = L->units, ckk = L->in.c * L->k * L->k, ohw = L->out.h * L->out.w;
    const size_t in_sz = ed_shape_size(L->in), out_sz = (size_t)OC * ohw;
    float *col = j->col + (size_t)g0 * (ckk + 1) * ohw;
    /* the zeros im2col leaves alone are the same for every sample: written once */
    memset(col, 0, (size_t)ckk * ohw * sizeof(float));
    for (int p = 0; p < ohw; p++)
        col[(size_t)ckk * ohw + p] = 1.0f;
    for (int g = g0; g < g1; g++) {
        const s_conv_job one = {
            .col = col, .x = j->x + (size_t)g * in_sz, .G = 1, .zeroed = true, .L = L};
        s_im2col_rows(0, ckk, &one);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, ohw, ckk + 1, 1.0f, j->Wb,
                    ckk + 1, col, ohw, 0.0f, j->y + (size_t)g * out_sz, ohw);
    }
}

void ed_conv_forward(float *y, const float *x, const float *W, const float *b, float *col,
                     float *gemm, int B, int chunk, const ed_layer *L)
{
    const int OC = L->units, ckk = L->in.c * L->k * L->k;
    const size_t in_sz = ed_shape_size(L->in), out_sz = ed_shape_size(L->out);
    float *Wb = gemm; /* [W | b] (OC, ckk + 1) */
    for (int oc = 0; oc < OC; oc++) {
        memcpy(Wb + (size_t)oc * (ckk + 1), W + (size_t)oc * ckk, (size_t)ckk * sizeof(float));
        Wb[(size_t)oc * (ckk + 1) + ckk] = b[oc];
    }
    /* the samples split over the process's BLAS threads, each sgemm on one thread (ed_blas.h) */
    const int threads = ed_blas_single_begin();
    /* by chunks, so that a thread's slot (its first sample's) stays inside col's `chunk` slots */
    for (int n0 = 0; n0 < B; n0 += chunk) {
        const int G = B - n0 < chunk ? B - n0 : chunk;
        const s_conv_fwd_job j = {y + (size_t)n0 * out_sz, col, x + (size_t)n0 * in_sz, Wb, L};
        s_par_items_on(G, 1, threads, s_conv_fwd_samples, &j);
    }
    ed_blas_single_end();
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
        const s_conv_job gj = {.col = gemm, .in = dy, .db = db, .G = G, .n0 = n0, .L = L};
        s_par_items(OC, 1, s_conv_gather_channels, &gj);
        s_im2col(col, x + (size_t)n0 * in_sz, G, L);
        /* dW (OC, ckk) (+)= gemm (OC, G*OHW) col^T (G*OHW, ckk) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, ckk, (int)ld, 1.0f, gemm, (int)ld,
                    col, (int)ld, n0 == 0 ? 0.0f : 1.0f, dW, ckk);
        if (!dx)
            continue;
        /* col (ckk, G*OHW) = W^T (ckk, OC) gemm (OC, G*OHW) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, (int)ld, OC, 1.0f, W, ckk, gemm,
                    (int)ld, 0.0f, col, (int)ld);
        const s_conv_job cj = {.out = dx + (size_t)n0 * in_sz, .col = col, .G = G, .L = L};
        s_par_items(G, 1, s_col2im_samples, &cj);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Pools
 * --------------------------------------------------------------------------------------------- */

/* Arguments of the pooling and batch-norm passes run as parallel items. */
typedef struct {
    float *y, *xhat, *mean, *var, *istd, *dgamma, *dbeta;
    const float *x, *dy, *gamma, *beta, *hat, *sd; /* hat, sd: backward's x_hat and istd */
    int32_t *argmax;
    int B;
    const ed_layer *L;
} s_plane_job;

/* Planes [p0, p1) of the max pool (one plane = one channel of one sample). */
static void s_maxpool_planes(int p0, int p1, const void *a)
{
    const s_plane_job *j = a;
    const ed_layer *L = j->L;
    const int H = L->in.h, W = L->in.w, K = L->k, S = L->stride, OH = L->out.h, OW = L->out.w;
    for (int pl = p0; pl < p1; pl++) {
        const float *restrict xp = j->x + (size_t)pl * H * W;
        float *restrict yp = j->y + (size_t)pl * OH * OW;
        int32_t *ap = j->argmax ? j->argmax + (size_t)pl * OH * OW : NULL;
        if (K == 2 && S == 2 && ap) { /* the usual pool: the same comparisons, unrolled */
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    const int i0 = 2 * oy * W + 2 * ox, i[4] = {i0, i0 + 1, i0 + W, i0 + W + 1};
                    int best = i0;
                    for (int q = 1; q < 4; q++)
                        best = xp[i[q]] > xp[best] ? i[q] : best;
                    yp[oy * OW + ox] = xp[best];
                    ap[oy * OW + ox] = best;
                }
            continue;
        }
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

void ed_maxpool_forward(float *y, int32_t *argmax, const float *x, int B, const ed_layer *L)
{
    const s_plane_job j = {.y = y, .argmax = argmax, .x = x, .L = L};
    const int hw = L->in.h * L->in.w;
    s_par_items(B * L->in.c, 4096 / hw + 1, s_maxpool_planes, &j);
}

/* Planes [p0, p1) of the max pool's backward: each plane zeroed, then its maxima get dy. */
static void s_maxpool_back_planes(int p0, int p1, const void *a)
{
    const s_plane_job *j = a;
    const size_t hw = (size_t)j->L->in.h * j->L->in.w, ohw = (size_t)j->L->out.h * j->L->out.w;
    for (size_t pl = (size_t)p0; pl < (size_t)p1; pl++) {
        float *restrict d = j->y + pl * hw;
        const float *restrict g = j->dy + pl * ohw;
        const int32_t *restrict am = j->argmax + pl * ohw;
        memset(d, 0, hw * sizeof(float));
        for (size_t o = 0; o < ohw; o++)
            d[am[o]] += g[o];
    }
}

void ed_maxpool_backward(float *dx, const float *dy, const int32_t *argmax, int B,
                         const ed_layer *L)
{
    const s_plane_job j = {.y = dx, .dy = dy, .argmax = (int32_t *)argmax, .L = L};
    const int hw = L->in.h * L->in.w;
    s_par_items(B * L->in.c, 4096 / hw + 1, s_maxpool_back_planes, &j);
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

/* Element-wise passes of large activations are split over the cores from this many floats on. */
#define S_PAR_ELEMS ((size_t)1 << 15)

typedef struct {
    float *out;
    const float *a, *b;
} s_ew_job;

ED_VECTOR_CLONES
static void s_relu_range(size_t lo, size_t hi, void *ctx)
{
    const s_ew_job *j = ctx;
    float *restrict y = j->out;
    const float *restrict x = j->a;
    for (size_t i = lo; i < hi; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

ED_VECTOR_CLONES
static void s_relu_back_range(size_t lo, size_t hi, void *ctx)
{
    const s_ew_job *j = ctx;
    float *restrict dx = j->out;
    const float *restrict dy = j->a, *restrict y = j->b;
    for (size_t i = lo; i < hi; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void ed_relu_forward(float *y, const float *x, size_t n)
{
    s_ew_job j = {y, x, NULL};
    ed_par_for(n, S_PAR_ELEMS, s_relu_range, &j);
}

void ed_relu_backward(float *dx, const float *dy, const float *y, size_t n)
{
    s_ew_job j = {dx, dy, y};
    ed_par_for(n, S_PAR_ELEMS, s_relu_back_range, &j);
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

/* Sum of p[0..n) (and of (p[i] - mu)^2 when sq): float lanes inside one plane, so the loop
 * vectorizes; the caller adds the planes up in double. */
static float s_plane_sum(const float *restrict p, size_t n, bool sq, float mu)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            const float v = sq ? (p[i + k] - mu) * (p[i + k] - mu) : p[i + k];
            acc[k] += v;
        }
    float s = 0.0f;
    for (; i < n; i++)
        s += sq ? (p[i] - mu) * (p[i] - mu) : p[i];
    for (int k = 0; k < 8; k++)
        s += acc[k];
    return s;
}

/* Channels [c0, c1) of the training batch norm. */
static void s_bn_train_channels(int c0, int c1, const void *a)
{
    const s_plane_job *j = a;
    const int C = j->L->in.c, B = j->B;
    const size_t hw = (size_t)j->L->in.h * j->L->in.w;
    const double M = (double)B * (double)hw;
    for (int c = c0; c < c1; c++) {
        double s = 0.0;
        for (int n = 0; n < B; n++)
            s += s_plane_sum(j->x + ((size_t)n * C + c) * hw, hw, false, 0.0f);
        const double mu = s / M;
        const float muf = (float)mu;
        double v = 0.0;
        for (int n = 0; n < B; n++)
            v += s_plane_sum(j->x + ((size_t)n * C + c) * hw, hw, true, muf);
        v /= M;
        j->mean[c] = muf;
        j->var[c] = (float)v;
        const float is = (float)(1.0 / sqrt(v + (double)ED_BN_EPS));
        j->istd[c] = is;
        const float g = j->gamma[c], bt = j->beta[c];
        for (int n = 0; n < B; n++) {
            const size_t o = ((size_t)n * C + c) * hw;
            const float *restrict xp = j->x + o;
            float *restrict hp = j->xhat + o, *restrict yp = j->y + o;
            for (size_t i = 0; i < hw; i++) {
                const float h = (xp[i] - muf) * is;
                hp[i] = h;
                yp[i] = g * h + bt;
            }
        }
    }
}

void ed_bn_forward_train(float *y, float *xhat, float *mean, float *var, float *istd,
                         const float *x, const float *gamma, const float *beta, int B,
                         const ed_layer *L)
{
    const s_plane_job j = {.y = y,
                           .xhat = xhat,
                           .mean = mean,
                           .var = var,
                           .istd = istd,
                           .x = x,
                           .gamma = gamma,
                           .beta = beta,
                           .B = B,
                           .L = L};
    s_par_items(L->in.c, 1, s_bn_train_channels, &j);
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

/* Channels [c0, c1) of the batch-norm backward (dx = j->y, or none when NULL). */
static void s_bn_backward_channels(int c0, int c1, const void *a)
{
    const s_plane_job *j = a;
    const int C = j->L->in.c, B = j->B;
    const size_t hw = (size_t)j->L->in.h * j->L->in.w;
    const float M = (float)((double)B * (double)hw);
    for (int c = c0; c < c1; c++) {
        double sdy = 0.0, sdyx = 0.0;
        for (int n = 0; n < B; n++) {
            const size_t o = ((size_t)n * C + c) * hw;
            const float *restrict dp = j->dy + o, *restrict hp = j->hat + o;
            float a1[8] = {0}, a2[8] = {0}, s1 = 0.0f, s2 = 0.0f;
            size_t i = 0;
            for (; i + 8 <= hw; i += 8)
                for (int k = 0; k < 8; k++) {
                    a1[k] += dp[i + k];
                    a2[k] += dp[i + k] * hp[i + k];
                }
            for (; i < hw; i++) {
                s1 += dp[i];
                s2 += dp[i] * hp[i];
            }
            for (int k = 0; k < 8; k++) {
                s1 += a1[k];
                s2 += a2[k];
            }
            sdy += s1;
            sdyx += s2;
        }
        j->dgamma[c] = (float)sdyx;
        j->dbeta[c] = (float)sdy;
        if (!j->y)
            continue;
        const float k = j->gamma[c] * j->sd[c] / M, a0 = (float)sdy, bq = (float)sdyx;
        for (int n = 0; n < B; n++) {
            const size_t o = ((size_t)n * C + c) * hw;
            const float *restrict dp = j->dy + o, *restrict hp = j->hat + o;
            float *restrict xp = j->y + o;
            for (size_t i = 0; i < hw; i++)
                xp[i] = k * (M * dp[i] - a0 - hp[i] * bq);
        }
    }
}

void ed_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *xhat,
                    const float *gamma, const float *istd, int B, const ed_layer *L)
{
    const s_plane_job j = {.y = dx,
                           .dgamma = dgamma,
                           .dbeta = dbeta,
                           .dy = dy,
                           .hat = xhat,
                           .gamma = gamma,
                           .sd = istd,
                           .B = B,
                           .L = L};
    s_par_items(L->in.c, 1, s_bn_backward_channels, &j);
}
