/*
 * ed_member: an in-process ensemble member (see ed_member.h).
 *
 * Two parts: the weights (s_weights: the backend's model, the file's metadata and display
 * strings; reference-counted, read-only once loaded) and the member proper (a workspace for
 * max_batch samples over some weights). A backend is a small ops table; the layer stack of an
 * edistill model file (ed_net, which runs MLPs too) is the only one today; a file's batch norm is
 * folded into the layer before it when the member is opened. Forward scales the raw batch straight
 * into the backend's input buffer, runs the network there and copies the logits out to the caller.
 */
#include "ed_member.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_model_file.h"

/* What a network backend provides. `model` is the backend's read-only model, `ws` one workspace. */
typedef struct {
    void *(*ws_new)(const void *model, int max_batch);
    void (*ws_destroy)(void **ws);
    /* The (max_batch, input_dim) buffer the scaled input goes into. */
    float *(*input)(void *ws);
    /* Forward pass of n samples already scaled into input(ws); *logits points into ws. */
    int (*forward)(const void *model, void *ws, int n, const float **logits, ed_err *err);
    void (*model_destroy)(void **model);
} s_backend;

typedef struct {
    atomic_int refs;
    const s_backend *be;
    void *model;           /* the backend's model; NULL when borrowed */
    const void *run_model; /* what forward runs: model, or the borrowed one */
    ed_shape input_shape;
    int input_dim, classes;
    double flops;
    float input_scale, input_offset;
    char name[128];
    char fingerprint[32];
    char arch[ED_STACK_TEXT_MAX];
    char path[1024];
    char provenance[4096];
} s_weights;

struct ed_member {
    s_weights *w;
    void *ws;
    int max_batch;
};

/* ---- the layer-stack backend (edistill model files; MLPs are stacks too) ------------------------
 */

static void *s_net_ws_new(const void *model, int max_batch)
{
    return ed_net_ws_new(&((const ed_net *)model)->arch, max_batch, false);
}

static void s_net_ws_destroy(void **ws)
{
    ed_net_ws *w = *ws;
    ed_net_ws_destroy(&w);
    *ws = NULL;
}

static float *s_net_input(void *ws)
{
    return ((ed_net_ws *)ws)->act[0];
}

static int s_net_forward(const void *model, void *ws, int n, const float **logits, ed_err *err)
{
    ed_net_ws *w = ws;
    return ed_net_forward(model, w, w->act[0], n, false, NULL, logits, err);
}

static void s_net_model_destroy(void **model)
{
    ed_net *m = *model;
    ed_net_destroy(&m);
    *model = NULL;
}

static const s_backend s_net_backend = {s_net_ws_new, s_net_ws_destroy, s_net_input, s_net_forward,
                                        s_net_model_destroy};

/* Fills the shape fields of w from a stack model. */
static void s_weights_set_net(s_weights *w, const ed_net *m)
{
    w->be = &s_net_backend;
    w->run_model = m;
    w->input_shape = m->arch.input;
    w->input_dim = (int)ed_stack_in_size(&m->arch);
    w->classes = ed_stack_classes(&m->arch);
    w->flops = ed_stack_forward_flops(&m->arch);
    ed_stack_format(&m->arch, w->arch, sizeof w->arch);
}

/* ---- members -----------------------------------------------------------------------------------
 */

static void s_weights_release(s_weights **pw)
{
    s_weights *w = *pw;
    *pw = NULL;
    if (!w || atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    if (w->model)
        w->be->model_destroy(&w->model);
    free(w);
}

/* A member over w (taking one reference, released on failure too). */
static ed_member *s_member_new(s_weights *w, int max_batch, ed_err *err)
{
    ed_member *m = calloc(1, sizeof *m);
    if (!m) {
        ed_err_set(err, ED_ENOMEM, "member %s: out of memory", w->name);
        s_weights_release(&w);
        return NULL;
    }
    m->w = w;
    m->max_batch = max_batch;
    m->ws = w->be->ws_new(w->run_model, max_batch);
    if (!m->ws) {
        ed_err_set(err, ED_ENOMEM,
                   "member %s (%s): cannot allocate a workspace for batches of %d samples",
                   w->name[0] ? w->name : w->path, w->arch, max_batch);
        ed_member_destroy(&m);
        return NULL;
    }
    return m;
}

ed_member *ed_member_open(const char *path, int max_batch, ed_err *err)
{
    return ed_member_open_with(path, NULL, max_batch, err);
}

ed_member *ed_member_open_with(const char *path, const ed_onnx_import_opts *onnx, int max_batch,
                               ed_err *err)
{
    if (!path || max_batch < 1) {
        ed_err_set(err, ED_EINVAL, "%s: a member needs a model file and a max batch >= 1 (got %d)",
                   path ? path : "(no path)", max_batch);
        return NULL;
    }
    s_weights *w = calloc(1, sizeof *w);
    ed_model_meta *meta = malloc(sizeof *meta);
    ed_net *net = NULL, *folded = NULL;
    if (!w || !meta) {
        ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (ed_onnx_model_load_any(path, onnx, &net, meta, err))
        goto fail;
    /* Serve with batch norm folded into the conv/dense before it: same logits up to rounding. */
    folded = ed_net_fold_bn(net);
    if (!folded) {
        ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    atomic_init(&w->refs, 1);
    s_weights_set_net(w, folded);
    ed_stack_format(&net->arch, w->arch, sizeof w->arch); /* the file's arch, not the folded one */
    ed_net_destroy(&net);
    w->model = folded;
    w->input_scale = meta->input_scale;
    w->input_offset = meta->input_offset;
    snprintf(w->name, sizeof w->name, "%s", meta->member);
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->provenance, sizeof w->provenance, "%s", meta->provenance);
    ed_fingerprint_format(meta->fingerprint, w->fingerprint, sizeof w->fingerprint);
    free(meta);
    return s_member_new(w, max_batch, err);
fail:
    ed_net_destroy(&net);
    free(meta);
    free(w);
    return NULL;
}

ed_member *ed_member_share(const ed_member *m, int max_batch, ed_err *err)
{
    if (!m || max_batch < 1) {
        ed_err_set(err, ED_EINVAL, "sharing a member needs a member and a max batch >= 1 (got %d)",
                   max_batch);
        return NULL;
    }
    atomic_fetch_add(&m->w->refs, 1);
    return s_member_new(m->w, max_batch, err);
}

ed_member *ed_member_wrap_net(const ed_net *model, float input_scale, float input_offset,
                              const char *name, int max_batch, ed_err *err)
{
    if (!model || max_batch < 1) {
        ed_err_set(err, ED_EINVAL, "wrapping a model needs a model and a max batch >= 1 (got %d)",
                   max_batch);
        return NULL;
    }
    s_weights *w = calloc(1, sizeof *w);
    if (!w) {
        ed_err_set(err, ED_ENOMEM, "out of memory");
        return NULL;
    }
    atomic_init(&w->refs, 1);
    s_weights_set_net(w, model); /* w->model stays NULL: borrowed */
    w->input_scale = input_scale;
    w->input_offset = input_offset;
    snprintf(w->name, sizeof w->name, "%s", name ? name : "");
    snprintf(w->provenance, sizeof w->provenance, "{}");
    return s_member_new(w, max_batch, err);
}

void ed_member_destroy(ed_member **pm)
{
    if (!pm || !*pm)
        return;
    ed_member *m = *pm;
    if (m->ws)
        m->w->be->ws_destroy(&m->ws);
    s_weights_release(&m->w);
    free(m);
    *pm = NULL;
}

int ed_member_forward(ed_member *m, const void *x, ed_dtype dtype, int n, float *logits,
                      ed_err *err)
{
    const s_weights *w = m->w;
    if (n < 1 || (unsigned)dtype >= ED_DTYPE_COUNT)
        return ed_err_set(err, ED_EINVAL, "member %s: batch of %d samples of dtype %d", w->name, n,
                          (int)dtype);
    if (n > m->max_batch)
        return ed_err_set(err, ED_ESHAPE, "member %s: batch of %d samples, the workspace holds %d",
                          w->name, n, m->max_batch);
    ed_batch b = {.n = n, .dim = w->input_dim, .dtype = dtype, .x = x, .y = NULL};
    ed_batch_to_float(&b, w->input_scale, w->input_offset, w->be->input(m->ws));
    const float *z = NULL;
    int rc = w->be->forward(w->run_model, m->ws, n, &z, err);
    if (rc)
        return rc;
    memcpy(logits, z, sizeof(float) * (size_t)n * (size_t)w->classes);
    return 0;
}

const char *ed_member_name(const ed_member *m)
{
    return m->w->name;
}

const char *ed_member_fingerprint(const ed_member *m)
{
    return m->w->fingerprint;
}

const char *ed_member_arch(const ed_member *m)
{
    return m->w->arch;
}

const char *ed_member_path(const ed_member *m)
{
    return m->w->path;
}

const char *ed_member_provenance(const ed_member *m)
{
    return m->w->provenance;
}

int ed_member_input_dim(const ed_member *m)
{
    return m->w->input_dim;
}

ed_shape ed_member_input_shape(const ed_member *m)
{
    return m->w->input_shape;
}

int ed_member_classes(const ed_member *m)
{
    return m->w->classes;
}

int ed_member_max_batch(const ed_member *m)
{
    return m->max_batch;
}

float ed_member_input_scale(const ed_member *m)
{
    return m->w->input_scale;
}

float ed_member_input_offset(const ed_member *m)
{
    return m->w->input_offset;
}

double ed_member_forward_flops(const ed_member *m)
{
    return m->w->flops;
}
