/*
 * ed_layer: architecture strings of layer stacks: the tokenizer/parser, shape inference, the
 * canonical formatter, and the table of named tensors (see ed_layer.h for the syntax).
 *
 * The parser works token by token on a copy of the text, so every error can quote the token at
 * fault and its 1-based position among the layer tokens. Shapes, parameter counts and block offsets
 * are derived in the same pass (s_layer_shape), which is the single place that knows what each
 * layer kind does to a shape.
 */
#include "ed_layer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* No dimension, channel count or unit count above this: it cannot be meant, and it keeps every
 * product of a few of them far from overflow. */
#define S_MAX_DIM (1 << 20)
/* Floats per sample of any activation, and floats of any block. */
#define S_MAX_ACT ((size_t)1 << 26)
#define S_MAX_BLOCK ((size_t)1 << 31)

static const char *const s_kind_names[ED_LAYER_KIND_COUNT] = {
    [ED_LAYER_DENSE] = "dense",     [ED_LAYER_CONV] = "conv",       [ED_LAYER_MAXPOOL] = "maxpool",
    [ED_LAYER_AVGPOOL] = "avgpool", [ED_LAYER_GAP] = "gap",         [ED_LAYER_FLATTEN] = "flatten",
    [ED_LAYER_RELU] = "relu",       [ED_LAYER_DROPOUT] = "dropout", [ED_LAYER_BN] = "bn",
};

const char *ed_layer_kind_name(ed_layer_kind kind)
{
    if ((int)kind < 0 || kind >= ED_LAYER_KIND_COUNT)
        return "?";
    return s_kind_names[kind];
}

/* Reads a positive decimal integer at *p (advancing it); -1 when there are no digits or it exceeds
 * S_MAX_DIM. */
static int s_read_int(const char **p)
{
    const char *s = *p;
    long v = 0;
    int n = 0;
    while (*s >= '0' && *s <= '9') {
        if (v <= S_MAX_DIM)
            v = v * 10 + (*s - '0');
        s++;
        n++;
    }
    *p = s;
    if (n == 0 || v > S_MAX_DIM)
        return -1;
    return (int)v;
}

/* Derives out shape, parameter and state sizes of L from L->in; NULL on success, else a static
 * description of why the layer does not fit its input. */
static const char *s_layer_shape(ed_layer *L)
{
    ed_shape in = L->in, o = in;
    L->n_params = 0;
    L->n_state = 0;
    switch (L->kind) {
    case ED_LAYER_DENSE:
        if (in.h != 1 || in.w != 1)
            return "dense needs a flat input (add flatten or gap before it)";
        o = (ed_shape){L->units, 1, 1};
        L->n_params = (size_t)L->units * (size_t)in.c + (size_t)L->units;
        break;
    case ED_LAYER_CONV:
        if (in.h + 2 * L->pad < L->k || in.w + 2 * L->pad < L->k)
            return "kernel larger than the padded input";
        o = (ed_shape){L->units, (in.h + 2 * L->pad - L->k) / L->stride + 1,
                       (in.w + 2 * L->pad - L->k) / L->stride + 1};
        L->n_params =
            (size_t)L->units * (size_t)in.c * (size_t)L->k * (size_t)L->k + (size_t)L->units;
        break;
    case ED_LAYER_MAXPOOL:
    case ED_LAYER_AVGPOOL:
        if (in.h < L->k || in.w < L->k)
            return "pool window larger than the input";
        o = (ed_shape){in.c, (in.h - L->k) / L->stride + 1, (in.w - L->k) / L->stride + 1};
        break;
    case ED_LAYER_GAP:
        o = (ed_shape){in.c, 1, 1};
        break;
    case ED_LAYER_FLATTEN:
        if (ed_shape_size(in) > (size_t)S_MAX_DIM)
            return "flattened size too large";
        o = (ed_shape){(int)ed_shape_size(in), 1, 1};
        break;
    case ED_LAYER_BN:
        L->n_params = 2 * (size_t)in.c;
        L->n_state = 2 * (size_t)in.c;
        break;
    case ED_LAYER_RELU:
    case ED_LAYER_DROPOUT:
    case ED_LAYER_KIND_COUNT:
        break;
    }
    if (ed_shape_size(o) > S_MAX_ACT)
        return "output too large";
    if (L->n_params > S_MAX_BLOCK)
        return "too many parameters";
    L->out = o;
    return NULL;
}

/* Parses one layer token (already trimmed, NUL-terminated) into L's hyper-parameters; NULL on
 * success, else a static description. */
static const char *s_parse_token(const char *t, ed_layer *L)
{
    memset(L, 0, sizeof *L);
    const char *p = t;
    if (strncmp(t, "conv", 4) == 0) {
        L->kind = ED_LAYER_CONV;
        p = t + 4;
        if ((L->units = s_read_int(&p)) < 1)
            return "expected convC (C output channels >= 1)";
        bool seen[3] = {false, false, false};
        L->stride = 1;
        while (*p) {
            const char *opts = "ksp", *o = strchr(opts, *p);
            if (!o || *p == '\0')
                return "expected k, s or p after the channel count (conv32k3s1p1)";
            int i = (int)(o - opts);
            if (seen[i])
                return "k, s and p may appear once each";
            seen[i] = true;
            p++;
            int v = s_read_int(&p);
            if (v < 0 || (i < 2 && v < 1))
                return "k and s need an integer >= 1, p an integer >= 0";
            if (i == 0)
                L->k = v;
            else if (i == 1)
                L->stride = v;
            else
                L->pad = v;
        }
        if (!seen[0])
            return "conv needs a kernel size (conv32k3)";
        if (L->pad >= L->k)
            return "padding must be smaller than the kernel";
        return NULL;
    }
    if (strncmp(t, "maxpool", 7) == 0 || strncmp(t, "avgpool", 7) == 0) {
        L->kind = t[0] == 'm' ? ED_LAYER_MAXPOOL : ED_LAYER_AVGPOOL;
        p = t + 7;
        if ((L->k = s_read_int(&p)) < 1)
            return "expected a window size >= 1 (maxpool2)";
        L->stride = L->k;
        if (*p == 's') {
            p++;
            if ((L->stride = s_read_int(&p)) < 1)
                return "stride must be an integer >= 1 (maxpool3s2)";
        }
        return *p ? "unexpected characters after the window (maxpool2 or maxpool3s2)" : NULL;
    }
    if (strncmp(t, "dense", 5) == 0) {
        L->kind = ED_LAYER_DENSE;
        p = t + 5;
        if ((L->units = s_read_int(&p)) < 1 || *p)
            return "expected denseN with N >= 1";
        return NULL;
    }
    if (strncmp(t, "dropout", 7) == 0) {
        L->kind = ED_LAYER_DROPOUT;
        p = t + 7;
        if (!(*p >= '0' && *p <= '9') && *p != '.')
            return "expected dropoutP with a rate P in [0, 1)";
        char *end;
        float r = strtof(p, &end);
        if (*end || !(r >= 0.0f && r < 1.0f))
            return "expected dropoutP with a rate P in [0, 1)";
        L->rate = r;
        return NULL;
    }
    static const struct {
        const char *name;
        ed_layer_kind kind;
    } plain[] = {{"gap", ED_LAYER_GAP},
                 {"flatten", ED_LAYER_FLATTEN},
                 {"relu", ED_LAYER_RELU},
                 {"bn", ED_LAYER_BN}};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (strcmp(t, plain[i].name) == 0) {
            L->kind = plain[i].kind;
            return NULL;
        }
    return "unknown layer (conv, maxpool, avgpool, gap, flatten, dense, relu, dropout, bn)";
}

/* Parses "CxHxW" or "N"; 0 on success. */
static int s_parse_input(const char *t, ed_shape *s)
{
    const char *p = t;
    int d[3] = {1, 1, 1}, n = 0;
    for (;;) {
        if (n == 3 || (d[n] = s_read_int(&p)) < 1)
            return -1;
        n++;
        if (*p == '\0')
            break;
        if (*p != 'x')
            return -1;
        p++;
    }
    if (n == 2)
        return -1;
    *s = (ed_shape){d[0], d[1], d[2]};
    return ed_shape_size(*s) > S_MAX_ACT ? -1 : 0;
}

/* Copies [b, e) trimmed of blanks into buf (size ED_STACK_TEXT_MAX). */
static void s_trim_copy(const char *b, const char *e, char *buf)
{
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    size_t n = (size_t)(e - b);
    memcpy(buf, b, n);
    buf[n] = '\0';
}

/* Sets offsets and totals from the layers' sizes; ED_OK or ED_EINVAL when a block is too big. */
static int s_finish(ed_stack *s)
{
    s->n_params = 0;
    s->n_state = 0;
    for (int l = 0; l < s->n_layers; l++) {
        s->layers[l].param_off = s->n_params;
        s->layers[l].state_off = s->n_state;
        s->n_params += s->layers[l].n_params;
        s->n_state += s->layers[l].n_state;
    }
    return s->n_params > S_MAX_BLOCK || s->n_state > S_MAX_BLOCK ? ED_EINVAL : ED_OK;
}

int ed_stack_from_mlp(const ed_arch *arch, ed_stack *out, ed_err *err)
{
    if (!arch || !out || arch->n_layers < 1 || arch->n_layers > ED_MLP_MAX_LAYERS ||
        2 * arch->n_layers - 1 > ED_STACK_MAX_LAYERS)
        return ed_err_set(err, ED_EINVAL, "arch: invalid MLP architecture");
    ed_stack *s = calloc(1, sizeof *s);
    if (!s)
        return ed_err_set(err, ED_ENOMEM, "arch: out of memory");
    s->input = (ed_shape){arch->widths[0], 1, 1};
    s->mlp = true;
    s->mlp_arch = *arch;
    ed_shape cur = s->input;
    for (int l = 0; l < arch->n_layers; l++) {
        ed_layer *L = &s->layers[s->n_layers++];
        L->kind = ED_LAYER_DENSE;
        L->units = arch->widths[l + 1];
        L->in = cur;
        const char *why = s_layer_shape(L);
        if (why) {
            free(s);
            return ed_err_set(err, ED_EINVAL, "arch: layer %d: %s", l + 1, why);
        }
        cur = L->out;
        if (l + 1 < arch->n_layers) {
            ed_layer *R = &s->layers[s->n_layers++];
            R->kind = ED_LAYER_RELU;
            R->in = R->out = cur;
        }
    }
    int rc = s_finish(s);
    if (rc == ED_OK)
        *out = *s;
    free(s);
    return rc == ED_OK ? ED_OK : ed_err_set(err, rc, "arch: too many parameters");
}

/* Parses the layer tokens of `body` (after "input:") onto s, whose input is set. */
static int s_parse_layers(const char *text, const char *body, ed_stack *s, ed_err *err)
{
    char tok[ED_STACK_TEXT_MAX];
    ed_shape cur = s->input;
    const char *p = body;
    for (int n = 1;; n++) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        s_trim_copy(p, end, tok);
        if (n > ED_STACK_MAX_LAYERS)
            return ed_err_set(err, ED_EINVAL, "arch \"%s\": more than %d layers", text,
                              ED_STACK_MAX_LAYERS);
        if (!tok[0])
            return ed_err_set(err, ED_EINVAL, "arch \"%s\": token %d is empty", text, n);
        ed_layer *L = &s->layers[s->n_layers];
        const char *why = s_parse_token(tok, L);
        if (why)
            return ed_err_set(err, ED_EINVAL, "arch \"%s\": token %d \"%s\": %s", text, n, tok,
                              why);
        L->in = cur;
        why = s_layer_shape(L);
        if (why)
            return ed_err_set(err, ED_ESHAPE, "arch \"%s\": token %d \"%s\" on input %dx%dx%d: %s",
                              text, n, tok, cur.c, cur.h, cur.w, why);
        cur = L->out;
        s->n_layers++;
        if (!*end)
            break;
        p = end + 1;
    }
    if (cur.h != 1 || cur.w != 1)
        return ed_err_set(err, ED_ESHAPE,
                          "arch \"%s\": the last layer's output %dx%dx%d is not flat (end with "
                          "flatten or gap and a dense layer)",
                          text, cur.c, cur.h, cur.w);
    if (s_finish(s) != ED_OK)
        return ed_err_set(err, ED_EINVAL, "arch \"%s\": too many parameters", text);
    return ED_OK;
}

int ed_stack_parse(const char *text, ed_stack *out, ed_err *err)
{
    if (!text || !out)
        return ed_err_set(err, ED_EINVAL, "arch: NULL argument");
    if (strlen(text) >= ED_STACK_TEXT_MAX)
        return ed_err_set(err, ED_EINVAL, "arch: longer than %d characters", ED_STACK_TEXT_MAX - 1);
    const char *colon = strchr(text, ':');
    if (!colon) {
        ed_arch a;
        int rc = ed_arch_parse(text, &a, err);
        if (rc != ED_OK)
            return rc;
        return ed_stack_from_mlp(&a, out, err);
    }
    ed_stack *s = calloc(1, sizeof *s);
    if (!s)
        return ed_err_set(err, ED_ENOMEM, "arch: out of memory");
    char tok[ED_STACK_TEXT_MAX];
    s_trim_copy(text, colon, tok);
    int rc;
    if (s_parse_input(tok, &s->input) != 0)
        rc = ed_err_set(err, ED_EINVAL,
                        "arch \"%s\": input \"%s\" is not CxHxW or N (positive integers, e.g. "
                        "1x28x28 or 784)",
                        text, tok);
    else
        rc = s_parse_layers(text, colon + 1, s, err);
    if (rc == ED_OK)
        *out = *s;
    free(s);
    return rc;
}

/* Appends a formatted piece; stops (truncating) when buf is full. */
static void s_append(char *buf, size_t size, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void s_append(char *buf, size_t size, size_t *used, const char *fmt, ...)
{
    if (*used >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *used, size - *used, fmt, ap);
    va_end(ap);
    if (w > 0)
        *used += (size_t)w;
}

void ed_stack_format(const ed_stack *s, char *buf, size_t size)
{
    if (!buf || size == 0)
        return;
    buf[0] = '\0';
    if (!s || s->n_layers < 1 || s->n_layers > ED_STACK_MAX_LAYERS)
        return;
    if (s->mlp) {
        ed_arch_format(&s->mlp_arch, buf, size);
        return;
    }
    size_t used = 0;
    if (s->input.h == 1 && s->input.w == 1)
        s_append(buf, size, &used, "%d:", s->input.c);
    else
        s_append(buf, size, &used, "%dx%dx%d:", s->input.c, s->input.h, s->input.w);
    for (int l = 0; l < s->n_layers; l++) {
        const ed_layer *L = &s->layers[l];
        const char *sep = l ? "," : "";
        switch (L->kind) {
        case ED_LAYER_CONV:
            s_append(buf, size, &used, "%sconv%dk%d", sep, L->units, L->k);
            if (L->stride != 1)
                s_append(buf, size, &used, "s%d", L->stride);
            if (L->pad)
                s_append(buf, size, &used, "p%d", L->pad);
            break;
        case ED_LAYER_MAXPOOL:
        case ED_LAYER_AVGPOOL:
            s_append(buf, size, &used, "%s%s%d", sep, ed_layer_kind_name(L->kind), L->k);
            if (L->stride != L->k)
                s_append(buf, size, &used, "s%d", L->stride);
            break;
        case ED_LAYER_DENSE:
            s_append(buf, size, &used, "%sdense%d", sep, L->units);
            break;
        case ED_LAYER_DROPOUT: {
            char r[32];
            snprintf(r, sizeof r, "%g", (double)L->rate);
            if (strtof(r, NULL) != L->rate)
                snprintf(r, sizeof r, "%.9g", (double)L->rate);
            s_append(buf, size, &used, "%sdropout%s", sep, r);
            break;
        }
        default:
            s_append(buf, size, &used, "%s%s", sep, ed_layer_kind_name(L->kind));
            break;
        }
    }
    buf[size - 1 < used ? size - 1 : used] = '\0';
}

bool ed_stack_equal(const ed_stack *a, const ed_stack *b)
{
    if (!a || !b || a->mlp != b->mlp || a->n_layers != b->n_layers || a->n_layers < 1 ||
        a->n_layers > ED_STACK_MAX_LAYERS)
        return false;
    if (a->input.c != b->input.c || a->input.h != b->input.h || a->input.w != b->input.w)
        return false;
    for (int l = 0; l < a->n_layers; l++) {
        const ed_layer *x = &a->layers[l], *y = &b->layers[l];
        if (x->kind != y->kind || x->units != y->units || x->k != y->k || x->stride != y->stride ||
            x->pad != y->pad || x->rate != y->rate)
            return false;
    }
    return true;
}

size_t ed_stack_in_size(const ed_stack *s)
{
    return ed_shape_size(s->input);
}

int ed_stack_classes(const ed_stack *s)
{
    return s->layers[s->n_layers - 1].out.c;
}

double ed_stack_forward_flops(const ed_stack *s)
{
    double f = 0.0;
    for (int l = 0; l < s->n_layers; l++) {
        const ed_layer *L = &s->layers[l];
        if (L->kind == ED_LAYER_DENSE)
            f += 2.0 * (double)L->units * (double)L->in.c;
        else if (L->kind == ED_LAYER_CONV)
            f += 2.0 * (double)ed_shape_size(L->out) * (double)L->in.c * L->k * L->k;
    }
    return f;
}

int ed_stack_remove_layer(ed_stack *s, int l)
{
    if (!s || s->mlp || l < 0 || l >= s->n_layers || s->n_layers < 2)
        return ED_EINVAL;
    ed_layer_kind k = s->layers[l].kind;
    if (k != ED_LAYER_BN && k != ED_LAYER_RELU && k != ED_LAYER_DROPOUT)
        return ED_EINVAL;
    memmove(&s->layers[l], &s->layers[l + 1], (size_t)(s->n_layers - l - 1) * sizeof s->layers[0]);
    s->n_layers--;
    memset(&s->layers[s->n_layers], 0, sizeof s->layers[0]);
    return s_finish(s);
}

/* Appends one tensor description when there is room; returns the new count. */
static int s_tensor(ed_tensor_desc *out, int n, int max, int name_idx, const char *suffix,
                    int layer, ed_tensor_block block, size_t offset, int ndim, const int64_t *shape)
{
    if (n >= max)
        return n;
    ed_tensor_desc *t = &out[n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "layers.%d.%s", name_idx, suffix);
    t->layer = layer;
    t->ndim = ndim;
    t->block = block;
    t->offset = offset;
    t->count = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->count *= (size_t)shape[i];
    }
    return n + 1;
}

int ed_stack_tensors(const ed_stack *s, ed_tensor_desc *out, int max)
{
    int n = 0, weight_layer = 0;
    for (int l = 0; l < s->n_layers; l++) {
        const ed_layer *L = &s->layers[l];
        const int idx = s->mlp ? weight_layer : l;
        const size_t po = L->param_off, so = L->state_off;
        if (L->kind == ED_LAYER_DENSE || L->kind == ED_LAYER_CONV) {
            int64_t w[4] = {L->units, L->in.c, L->k, L->k}, b[1] = {L->units};
            int nd = L->kind == ED_LAYER_CONV ? 4 : 2;
            size_t nw = (size_t)L->units * (size_t)L->in.c * (nd == 4 ? (size_t)L->k * L->k : 1);
            n = s_tensor(out, n, max, idx, "weight", l, ED_BLOCK_PARAM, po, nd, w);
            n = s_tensor(out, n, max, idx, "bias", l, ED_BLOCK_PARAM, po + nw, 1, b);
            weight_layer++;
        } else if (L->kind == ED_LAYER_BN) {
            int64_t c[1] = {L->in.c};
            size_t C = (size_t)L->in.c;
            n = s_tensor(out, n, max, idx, "weight", l, ED_BLOCK_PARAM, po, 1, c);
            n = s_tensor(out, n, max, idx, "bias", l, ED_BLOCK_PARAM, po + C, 1, c);
            n = s_tensor(out, n, max, idx, "running_mean", l, ED_BLOCK_STATE, so, 1, c);
            n = s_tensor(out, n, max, idx, "running_var", l, ED_BLOCK_STATE, so + C, 1, c);
        }
    }
    return n;
}
