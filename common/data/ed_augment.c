/* ed_augment: random shifts, horizontal flips and erasing of training images (see ed_augment.h). */
#include "ed_augment.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_rng.h"

#define S_TEXT_MAX 128 /* longest option text quoted in full in a message */

/* One token of the option text: [*beg, *end) with blanks trimmed. */
static void s_trim(const char **beg, const char **end)
{
    while (*beg < *end && isspace((unsigned char)**beg))
        (*beg)++;
    while (*end > *beg && isspace((unsigned char)(*end)[-1]))
        (*end)--;
}

/* Parses the digits of "shift:S" (the part after the colon, len bytes at p) into 1..MAX. */
static int s_parse_shift(const char *p, size_t len, int *out)
{
    if (len == 0 || len > 3)
        return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)p[i]))
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v < 1 || v > ED_AUGMENT_MAX_SHIFT)
        return -1;
    *out = v;
    return 0;
}

/* Parses the P of "erase:P" (len bytes at p): a decimal in (0, 1] with at most 3 decimals
 * ("0.5", ".25", "1"), kept as a whole number of thousandths so that the canonical text parses
 * back to the same value. */
static int s_parse_prob(const char *p, size_t len, double *out)
{
    long whole = 0, frac = 0;
    int decimals = 0, digits = 0;
    bool dot = false;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '.' && !dot) {
            dot = true;
        } else if (isdigit((unsigned char)p[i]) && !dot && digits < 4) {
            whole = whole * 10 + (p[i] - '0');
            digits++;
        } else if (isdigit((unsigned char)p[i]) && dot && decimals < 3) {
            frac = frac * 10 + (p[i] - '0');
            decimals++;
            digits++;
        } else {
            return -1;
        }
    }
    for (int i = decimals; i < 3; i++)
        frac *= 10;
    const long thousandths = whole * 1000 + frac;
    if (digits == 0 || thousandths < 1 || thousandths > 1000)
        return -1;
    *out = (double)thousandths / 1000.0;
    return 0;
}

static void s_canonical(ed_augment *a)
{
    char shift[24] = "", erase[24] = "";
    if (a->shift > 0)
        snprintf(shift, sizeof shift, "shift:%d", a->shift);
    if (a->erase > 0)
        snprintf(erase, sizeof erase, "erase:%g", a->erase);
    if (!ed_augment_on(a)) {
        snprintf(a->text, sizeof a->text, "none");
        return;
    }
    const char *parts[3] = {shift, a->flip ? "flip" : "", erase};
    size_t used = 0;
    a->text[0] = '\0';
    for (int i = 0; i < 3; i++)
        if (parts[i][0])
            used += (size_t)snprintf(a->text + used, sizeof a->text - used, "%s%s", used ? "," : "",
                                     parts[i]);
}

int ed_augment_parse(const char *text, ed_augment *a, ed_err *err)
{
    ed_augment r = {0};
    const char *shown = text ? text : "";
    const int shown_len = (int)strnlen(shown, S_TEXT_MAX);
    const char *tail = strlen(shown) > S_TEXT_MAX ? "..." : "";
    const char *p = shown, *text_end = shown + strlen(shown);
    bool seen_shift = false, seen_none = false, seen_erase = false;
    int n_tokens = 0;
    {
        const char *b = p, *e = text_end;
        s_trim(&b, &e);
        if (b == e) { /* NULL, "" or blanks: off */
            s_canonical(&r);
            *a = r;
            return ED_OK;
        }
    }
    for (int tok = 1;; tok++) {
        const char *comma = memchr(p, ',', (size_t)(text_end - p));
        const char *b = p, *e = comma ? comma : text_end;
        s_trim(&b, &e);
        const int len = (int)(e - b);
        const int show = len > 32 ? 32 : len;
        n_tokens++;
        if (len == 0)
            return ed_err_set(err, ED_EINVAL,
                              "\"%.*s%s\": token %d is empty (shift:S, flip, erase:P, none)",
                              shown_len, shown, tail, tok);
        if (len == 4 && memcmp(b, "flip", 4) == 0) {
            if (r.flip)
                return ed_err_set(err, ED_EINVAL, "\"%.*s%s\": token %d \"flip\" is given twice",
                                  shown_len, shown, tail, tok);
            r.flip = true;
        } else if (len == 4 && memcmp(b, "none", 4) == 0) {
            seen_none = true;
        } else if (len >= 6 && memcmp(b, "shift:", 6) == 0) {
            if (seen_shift)
                return ed_err_set(err, ED_EINVAL,
                                  "\"%.*s%s\": token %d \"%.*s\": shift is given "
                                  "twice",
                                  shown_len, shown, tail, tok, show, b);
            if (s_parse_shift(b + 6, (size_t)len - 6, &r.shift))
                return ed_err_set(err, ED_EINVAL,
                                  "\"%.*s%s\": token %d \"%.*s\": the shift must be a whole "
                                  "number of pixels in 1..%d",
                                  shown_len, shown, tail, tok, show, b, ED_AUGMENT_MAX_SHIFT);
            seen_shift = true;
        } else if (len >= 6 && memcmp(b, "erase:", 6) == 0) {
            if (seen_erase)
                return ed_err_set(err, ED_EINVAL,
                                  "\"%.*s%s\": token %d \"%.*s\": erase is given twice", shown_len,
                                  shown, tail, tok, show, b);
            if (s_parse_prob(b + 6, (size_t)len - 6, &r.erase))
                return ed_err_set(err, ED_EINVAL,
                                  "\"%.*s%s\": token %d \"%.*s\": the erasing probability must "
                                  "be a decimal in (0, 1] with at most 3 decimals",
                                  shown_len, shown, tail, tok, show, b);
            seen_erase = true;
        } else {
            return ed_err_set(
                err, ED_EINVAL,
                "\"%.*s%s\": token %d \"%.*s%s\" is not known (shift:S, flip, erase:P, "
                "none)",
                shown_len, shown, tail, tok, show, b, len > show ? "..." : "");
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    if (seen_none && n_tokens > 1)
        return ed_err_set(err, ED_EINVAL,
                          "\"%.*s%s\": \"none\" cannot be combined with other "
                          "augmentations",
                          shown_len, shown, tail);
    s_canonical(&r);
    *a = r;
    return ED_OK;
}

int ed_augment_check(const ed_augment *a, int c, int h, int w, ed_err *err)
{
    if (!ed_augment_on(a))
        return ED_OK;
    if (c < 1 || h < 2 || w < 2)
        return ed_err_set(
            err, ED_ESHAPE,
            "augmentation %s needs image samples (CxHxW with H, W >= 2), not %dx%dx%d", a->text, c,
            h, w);
    if (a->shift >= h || a->shift >= w)
        return ed_err_set(err, ED_ESHAPE,
                          "augmentation %s: a shift of %d does not fit %dx%d images", a->text,
                          a->shift, h, w);
    return ED_OK;
}

/* splitmix64's finalizer: a bijective 64-bit mix. */
static uint64_t s_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The erased rectangle of a draw (torchvision's RandomErasing geometry, see ed_augment.h). */
static void s_draw_erase(ed_rng *rng, int h, int w, ed_augment_draw *d)
{
    static const double min_area = 0.02, max_area = 0.33, min_ratio = 0.3, max_ratio = 3.3;
    const double log_lo = log(min_ratio), log_hi = log(max_ratio);
    for (int attempt = 0; attempt < 10; attempt++) {
        const double area =
            (double)h * w * (min_area + (max_area - min_area) * ed_rng_uniform(rng));
        const double ratio = exp(log_lo + (log_hi - log_lo) * ed_rng_uniform(rng));
        const long eh = lround(sqrt(area * ratio)), ew = lround(sqrt(area / ratio));
        if (eh >= 1 && ew >= 1 && eh < h && ew < w) {
            d->eh = (int)eh;
            d->ew = (int)ew;
            d->ey = (int)ed_rng_below(rng, (uint64_t)(h - eh + 1));
            d->ex = (int)ed_rng_below(rng, (uint64_t)(w - ew + 1));
            return;
        }
    }
}

ed_augment_draw ed_augment_draw_at(const ed_augment *a, uint64_t seed, uint64_t step, uint64_t row,
                                   int h, int w)
{
    ed_augment_draw d = {0};
    if (!ed_augment_on(a))
        return d;
    uint64_t k = s_mix(seed ^ 0x6175676d656e7421ULL); /* "augment!" */
    k = s_mix(k ^ (step + 0x9e3779b97f4a7c15ULL));
    k = s_mix(k ^ (row + 0x3c6ef372fe94f82aULL));
    ed_rng rng;
    ed_rng_seed(&rng, k);
    if (a->shift > 0) {
        const uint64_t span = 2 * (uint64_t)a->shift + 1;
        d.dy = (int)ed_rng_below(&rng, span) - a->shift;
        d.dx = (int)ed_rng_below(&rng, span) - a->shift;
    }
    if (a->flip)
        d.flip = (ed_rng_next(&rng) >> 63) != 0;
    if (a->erase > 0 && ed_rng_uniform(&rng) < a->erase)
        s_draw_erase(&rng, h, w, &d);
    return d;
}

static bool s_identity(ed_augment_draw d)
{
    return d.dy == 0 && d.dx == 0 && !d.flip && d.eh == 0;
}

/* Sets d's erased rectangle of one sample (c, h, w; elements of es bytes) to *fill. */
static void s_erase_bytes(unsigned char *out, size_t es, int c, int h, int w, ed_augment_draw d,
                          const void *fill)
{
    for (int ch = 0; ch < c; ch++)
        for (int y = d.ey; y < d.ey + d.eh; y++) {
            unsigned char *p = out + (((size_t)ch * (size_t)h + (size_t)y) * (size_t)w) * es;
            for (int x = d.ex; x < d.ex + d.ew; x++)
                memcpy(p + (size_t)x * es, fill, es);
        }
}

/* Applies d to one sample of c*h*w elements of es bytes each; pixels from outside get *fill. */
static void s_apply_bytes(const unsigned char *restrict in, unsigned char *restrict out, size_t es,
                          int c, int h, int w, ed_augment_draw d, const void *fill)
{
    /* Output columns [x0, x1) and rows [y0, y1) come from inside the image; the rest is fill. */
    const int x0 = d.dx > 0 ? d.dx : 0, x1 = d.dx < 0 ? w + d.dx : w;
    const int y0 = d.dy > 0 ? d.dy : 0, y1 = d.dy < 0 ? h + d.dy : h;
    const size_t row = (size_t)w * es;
    for (int ch = 0; ch < c; ch++) {
        const unsigned char *ip = in + (size_t)ch * (size_t)h * row;
        unsigned char *op = out + (size_t)ch * (size_t)h * row;
        for (int y = 0; y < h; y++) {
            unsigned char *orow = op + (size_t)y * row;
            const bool inside = y >= y0 && y < y1 && x0 < x1;
            for (int x = 0; x < w; x++)
                if (!inside || x < x0 || x >= x1)
                    memcpy(orow + (size_t)x * es, fill, es);
            if (!inside)
                continue;
            const unsigned char *irow = ip + (size_t)(y - d.dy) * row;
            if (d.flip)
                for (int x = x0; x < x1; x++)
                    memcpy(orow + (size_t)x * es, irow + (size_t)(w - 1 - (x - d.dx)) * es, es);
            else
                memcpy(orow + (size_t)x0 * es, irow + (size_t)(x0 - d.dx) * es,
                       (size_t)(x1 - x0) * es);
        }
    }
    s_erase_bytes(out, es, c, h, w, d, fill);
}

void ed_augment_apply(const float *restrict in, float *restrict out, int c, int h, int w,
                      ed_augment_draw d, float fill)
{
    s_apply_bytes((const unsigned char *)in, (unsigned char *)out, sizeof(float), c, h, w, d,
                  &fill);
}

void ed_augment_raw_batch(const ed_augment *a, uint64_t seed, uint64_t step, const ed_batch *in,
                          int c, int h, int w, void *out)
{
    const size_t es = ed_dtype_size(in->dtype), bytes = (size_t)in->dim * es;
    static const unsigned char zero[sizeof(float)] = {0}; /* a raw 0 in either dtype */
    for (int i = 0; i < in->n; i++) {
        const unsigned char *src = (const unsigned char *)in->x + (size_t)i * bytes;
        unsigned char *dst = (unsigned char *)out + (size_t)i * bytes;
        const ed_augment_draw d = ed_augment_draw_at(a, seed, step, (uint64_t)i, h, w);
        if (s_identity(d))
            memcpy(dst, src, bytes);
        else
            s_apply_bytes(src, dst, es, c, h, w, d, zero);
    }
}

void ed_augment_batch(const ed_augment *a, uint64_t seed, uint64_t step, float *x, int n, int c,
                      int h, int w, float fill, float *scratch)
{
    if (!ed_augment_on(a))
        return;
    const size_t per = (size_t)c * (size_t)h * (size_t)w;
    for (int i = 0; i < n; i++) {
        ed_augment_draw d = ed_augment_draw_at(a, seed, step, (uint64_t)i, h, w);
        if (s_identity(d))
            continue;
        float *row = x + (size_t)i * per;
        memcpy(scratch, row, sizeof(float) * per);
        ed_augment_apply(scratch, row, c, h, w, d, fill);
    }
}
