/*
 * ed_loss: softmax / log-softmax with temperature, the hard and soft distillation losses with their
 * gradients, and the combination of ensemble members' outputs into soft targets.
 *
 * Every row is normalised by its maximum before exponentiating (log-sum-exp), so logits of any
 * magnitude and temperatures well below 1 stay finite. Per-row sums are accumulated in double;
 * losses are accumulated in double over rows and returned as float.
 */
#include "ed_loss.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Maximum of one row (C >= 1). */
static float s_row_max(const float *row, int C)
{
    float m = row[0];
    for (int c = 1; c < C; c++)
        if (row[c] > m)
            m = row[c];
    return m;
}

/* log sum_c exp((row_c - m) / T), with m the row maximum; returns it and stores m in *pm. */
static double s_row_lse(const float *row, int C, float T, float *pm)
{
    const float m = s_row_max(row, C);
    const double invT = 1.0 / (double)T;
    double s = 0.0;
    for (int c = 0; c < C; c++)
        s += exp(((double)row[c] - (double)m) * invT);
    *pm = m;
    return log(s);
}

void ed_softmax_temp(const float *z, float *p, int B, int C, float T)
{
    if (B < 1 || C < 1)
        return;
    const float invT = 1.0f / T;
    for (int i = 0; i < B; i++) {
        const float *zr = z + (size_t)i * C;
        float *pr = p + (size_t)i * C;
        const float m = s_row_max(zr, C);
        double s = 0.0;
        for (int c = 0; c < C; c++) {
            float e = expf((zr[c] - m) * invT);
            pr[c] = e;
            s += e;
        }
        const float inv = (float)(1.0 / s);
        for (int c = 0; c < C; c++)
            pr[c] *= inv;
    }
}

void ed_log_softmax_temp(const float *z, float *lp, int B, int C, float T)
{
    if (B < 1 || C < 1)
        return;
    const double invT = 1.0 / (double)T;
    for (int i = 0; i < B; i++) {
        const float *zr = z + (size_t)i * C;
        float *lr = lp + (size_t)i * C;
        float m;
        const double lse = s_row_lse(zr, C, T, &m);
        for (int c = 0; c < C; c++)
            lr[c] = (float)(((double)zr[c] - (double)m) * invT - lse);
    }
}

float ed_loss_hard_ce(const float *z, const int32_t *y, int B, int C, float eps, float weight,
                      float *dz)
{
    if (B < 1 || C < 1)
        return 0.0f;
    int n = 0;
    for (int i = 0; i < B; i++)
        if (y[i] >= 0 && y[i] < C)
            n++;
    if (n == 0)
        return 0.0f;
    const double off = (double)eps / C;        /* target of every class */
    const double on = 1.0 - (double)eps + off; /* target of the label */
    const double gscale = (double)weight / n;
    double total = 0.0;
    for (int i = 0; i < B; i++) {
        const int yi = y[i];
        if (yi < 0 || yi >= C) /* unlabeled, or an out-of-range label: skipped, never read */
            continue;
        const float *zr = z + (size_t)i * C;
        float m;
        const double lse = s_row_lse(zr, C, 1.0f, &m);
        /* loss_i = -sum_c t_c (z_c - m - lse) */
        double sum_lp = 0.0;
        for (int c = 0; c < C; c++)
            sum_lp += (double)zr[c] - m - lse;
        const double lp_y = (double)zr[yi] - m - lse;
        total += -(1.0 - (double)eps) * lp_y - off * sum_lp;
        if (dz) {
            float *dr = dz + (size_t)i * C;
            for (int c = 0; c < C; c++) {
                double p = exp((double)zr[c] - m - lse);
                double t = c == yi ? on : off;
                dr[c] += (float)(gscale * (p - t));
            }
        }
    }
    return (float)(total / n);
}

/* Shared body of the soft CE and KL: the two differ only by the targets' entropy term. */
static float s_soft(const float *z, const float *q, int B, int C, float T, float weight, float *dz,
                    bool kl)
{
    if (B < 1 || C < 1)
        return 0.0f;
    const double invT = 1.0 / (double)T;
    const double gscale = (double)weight * (double)T / B;
    double total = 0.0;
    for (int i = 0; i < B; i++) {
        const float *zr = z + (size_t)i * C;
        const float *qr = q + (size_t)i * C;
        float m;
        const double lse = s_row_lse(zr, C, T, &m);
        double row = 0.0;
        for (int c = 0; c < C; c++) {
            const double lp = ((double)zr[c] - m) * invT - lse;
            const double qc = qr[c];
            row -= qc * lp;
            if (kl && qc > 0.0)
                row += qc * log(qc);
        }
        total += row;
        if (dz) {
            float *dr = dz + (size_t)i * C;
            for (int c = 0; c < C; c++) {
                const double p = exp(((double)zr[c] - m) * invT - lse);
                dr[c] += (float)(gscale * (p - (double)qr[c]));
            }
        }
    }
    return (float)((double)T * (double)T * total / B);
}

float ed_loss_soft_ce(const float *z, const float *q, int B, int C, float T, float weight,
                      float *dz)
{
    return s_soft(z, q, B, C, T, weight, dz, false);
}

float ed_loss_soft_kl(const float *z, const float *q, int B, int C, float T, float weight,
                      float *dz)
{
    return s_soft(z, q, B, C, T, weight, dz, true);
}

float ed_loss_l2_logits(const float *z, const float *t, int B, int C, float weight, float *dz)
{
    if (B < 1 || C < 1)
        return 0.0f;
    const size_t n = (size_t)B * (size_t)C;
    const float gscale = weight / (float)B;
    double total = 0.0;
    for (size_t k = 0; k < n; k++) {
        const double d = (double)z[k] - (double)t[k];
        total += 0.5 * d * d;
    }
    if (dz)
        for (size_t k = 0; k < n; k++)
            dz[k] += gscale * (z[k] - t[k]);
    return (float)(total / B);
}

int ed_argmax(const float *row, int C)
{
    int best = 0;
    for (int c = 1; c < C; c++)
        if (row[c] > row[best])
            best = c;
    return best;
}

int ed_count_correct(const float *z, const int32_t *y, int B, int C)
{
    int n = 0;
    for (int i = 0; i < B; i++)
        if (y[i] >= 0 && ed_argmax(z + (size_t)i * C, C) == y[i])
            n++;
    return n;
}

static const char *const s_combine_names[ED_COMBINE_COUNT] = {
    [ED_COMBINE_PROB] = "prob",
    [ED_COMBINE_LOGIT] = "logit",
};

int ed_combine_parse(const char *text)
{
    if (!text)
        return -1;
    for (int k = 0; k < ED_COMBINE_COUNT; k++)
        if (strcmp(text, s_combine_names[k]) == 0)
            return k;
    return -1;
}

const char *ed_combine_name(ed_combine_mode mode)
{
    if ((int)mode < 0 || mode >= ED_COMBINE_COUNT)
        return "unknown";
    return s_combine_names[mode];
}

void ed_combine_mean_logits(const float *const *logits, int K, int B, int C, float *out)
{
    if (B < 1 || C < 1)
        return;
    const size_t n = (size_t)B * (size_t)C;
    if (K < 1) {
        memset(out, 0, n * sizeof(float));
        return;
    }
    memcpy(out, logits[0], n * sizeof(float));
    for (int k = 1; k < K; k++) {
        const float *lk = logits[k];
        for (size_t j = 0; j < n; j++)
            out[j] += lk[j];
    }
    const float invK = 1.0f / (float)K;
    for (size_t j = 0; j < n; j++)
        out[j] *= invK;
}

void ed_combine(ed_combine_mode mode, const float *const *logits, int K, int B, int C, float T,
                float *q, float *scratch)
{
    if (B < 1 || C < 1)
        return;
    const size_t n = (size_t)B * (size_t)C;
    if (K < 1) { /* no members: uniform targets */
        for (size_t j = 0; j < n; j++)
            q[j] = 1.0f / (float)C;
        return;
    }
    if (mode == ED_COMBINE_LOGIT) {
        ed_combine_mean_logits(logits, K, B, C, q);
        ed_softmax_temp(q, q, B, C, T);
        return;
    }
    /* ED_COMBINE_PROB (and the fallback for an unknown mode). */
    ed_softmax_temp(logits[0], q, B, C, T);
    for (int k = 1; k < K; k++) {
        ed_softmax_temp(logits[k], scratch, B, C, T);
        for (size_t j = 0; j < n; j++)
            q[j] += scratch[j];
    }
    const float invK = 1.0f / (float)K;
    for (size_t j = 0; j < n; j++)
        q[j] *= invK;
}

int ed_soft_loss_parse(const char *text)
{
    if (!strcmp(text, "ce"))
        return ED_SOFT_CE;
    if (!strcmp(text, "l2"))
        return ED_SOFT_L2;
    return -1;
}

const char *ed_soft_loss_name(ed_soft_loss kind)
{
    return kind == ED_SOFT_L2 ? "l2" : "ce";
}

void ed_loss_targets(const ed_loss_config *cfg, const float *const *logits, int K, int B, int C,
                     float *targets, float *scratch)
{
    if (cfg->soft_loss == ED_SOFT_L2)
        ed_combine_mean_logits(logits, K, B, C, targets);
    else
        ed_combine(cfg->combine, logits, K, B, C, cfg->temperature, targets, scratch);
}
