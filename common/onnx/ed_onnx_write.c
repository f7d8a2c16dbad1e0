/*
 * ed_onnx_write: ed_graph -> ONNX ModelProto (contract and conventions in ed_onnx_write.h).
 *
 * The protobuf-c message tree is built from heap pieces recorded in a small pool (s_pool) and freed
 * in one go after packing; weights are copied as little-endian raw_data. One node per op, named
 * after the op (or "layer<i>"), tensors "x<i>" between them.
 */
#include "ed_onnx_write.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_fs.h"
#include "ed_version.h"
#include "onnx.pb-c.h"

typedef struct {
    void **p;
    size_t n, cap;
    bool oom;
} s_pool;

/* calloc recorded in the pool; NULL (and pool->oom) on failure. */
static void *s_alloc(s_pool *pl, size_t n)
{
    if (pl->oom)
        return NULL;
    if (pl->n == pl->cap) {
        size_t nc = pl->cap ? 2 * pl->cap : 256;
        void **np = realloc(pl->p, nc * sizeof *np);
        if (!np) {
            pl->oom = true;
            return NULL;
        }
        pl->p = np;
        pl->cap = nc;
    }
    void *v = calloc(1, n ? n : 1);
    if (!v)
        pl->oom = true;
    else
        pl->p[pl->n++] = v;
    return v;
}

static char *s_strdup(s_pool *pl, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = s_alloc(pl, n);
    if (d)
        memcpy(d, s, n);
    return d;
}

typedef struct {
    s_pool pool;
    Onnx__NodeProto **nodes;
    size_t n_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits;
    int tensor_id; /* next x<i> */
    char cur[32];  /* name of the chain's current tensor */
} s_builder;

/* A float initializer called name with dims[nd], data copied as little-endian bytes. */
static void s_init_f32(s_builder *b, const char *name, const int64_t *dims, size_t nd,
                       const float *v)
{
    Onnx__TensorProto *t = s_alloc(&b->pool, sizeof *t);
    int64_t *d = s_alloc(&b->pool, nd * sizeof *d);
    size_t n = 1;
    for (size_t i = 0; i < nd; i++)
        n *= (size_t)dims[i];
    uint8_t *raw = s_alloc(&b->pool, n * 4);
    char *nm = s_strdup(&b->pool, name);
    if (!t || !d || !raw || !nm)
        return;
    onnx__tensor_proto__init(t);
    memcpy(d, dims, nd * sizeof *d);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++)
            raw[4 * i + (size_t)k] = (uint8_t)(u >> (8 * k));
    }
    t->n_dims = nd;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->name = nm;
    t->has_raw_data = 1;
    t->raw_data.len = n * 4;
    t->raw_data.data = raw;
    b->inits[b->n_inits++] = t;
}

static Onnx__AttributeProto *s_attr(s_builder *b, const char *name)
{
    Onnx__AttributeProto *a = s_alloc(&b->pool, sizeof *a);
    char *nm = s_strdup(&b->pool, name);
    if (!a || !nm)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = nm;
    a->has_type = 1;
    return a;
}

static Onnx__AttributeProto *s_attr_int(s_builder *b, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = s_attr(b, name);
    if (a) {
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        a->has_i = 1;
        a->i = v;
    }
    return a;
}

static Onnx__AttributeProto *s_attr_float(s_builder *b, const char *name, float v)
{
    Onnx__AttributeProto *a = s_attr(b, name);
    if (a) {
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
        a->has_f = 1;
        a->f = v;
    }
    return a;
}

static Onnx__AttributeProto *s_attr_ints(s_builder *b, const char *name, const int64_t *v, size_t n)
{
    Onnx__AttributeProto *a = s_attr(b, name);
    int64_t *d = s_alloc(&b->pool, n * sizeof *d);
    if (a && d) {
        memcpy(d, v, n * sizeof *d);
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        a->n_ints = n;
        a->ints = d;
    }
    return a;
}

/* Appends node op_type(cur, extra inputs...) -> new tensor (or `out` when not NULL); attributes
 * given as a NULL-terminated array (NULL entries from failed allocations are caught by pool.oom).
 */
static void s_node(s_builder *b, const char *op_type, const char *name, const char *const *extra,
                   size_t n_extra, Onnx__AttributeProto **attrs, size_t n_attrs, const char *out)
{
    Onnx__NodeProto *n = s_alloc(&b->pool, sizeof *n);
    char **in = s_alloc(&b->pool, (1 + n_extra) * sizeof *in);
    char **outs = s_alloc(&b->pool, sizeof *outs);
    Onnx__AttributeProto **at = s_alloc(&b->pool, n_attrs * sizeof *at);
    if (!n || !in || !outs || !at)
        return;
    onnx__node_proto__init(n);
    in[0] = s_strdup(&b->pool, b->cur);
    for (size_t i = 0; i < n_extra; i++)
        in[1 + i] = s_strdup(&b->pool, extra[i]);
    if (out)
        snprintf(b->cur, sizeof b->cur, "%s", out);
    else
        snprintf(b->cur, sizeof b->cur, "x%d", b->tensor_id++);
    outs[0] = s_strdup(&b->pool, b->cur);
    for (size_t i = 0; i < n_attrs; i++)
        at[i] = attrs[i];
    n->n_input = 1 + n_extra;
    n->input = in;
    n->n_output = 1;
    n->output = outs;
    n->op_type = s_strdup(&b->pool, op_type);
    n->name = s_strdup(&b->pool, name);
    n->n_attribute = n_attrs;
    n->attribute = at;
    b->nodes[b->n_nodes++] = n;
}

/* Window attributes of a Conv / pool op. */
static size_t s_window_attrs(s_builder *b, const ed_gop *op, Onnx__AttributeProto **at)
{
    const int64_t k[2] = {op->kh, op->kw}, s[2] = {op->stride_h, op->stride_w};
    const int64_t p[4] = {op->pad_t, op->pad_l, op->pad_b, op->pad_r};
    at[0] = s_attr_ints(b, "kernel_shape", k, 2);
    at[1] = s_attr_ints(b, "strides", s, 2);
    at[2] = s_attr_ints(b, "pads", p, 4);
    return 3;
}

/* The node(s) of one op. */
static void s_op(s_builder *b, const ed_gop *op, int i, bool last)
{
    char name[ED_GRAPH_NAME_LEN + 16], wn[48], bn[48];
    snprintf(name, sizeof name, "%s", op->name[0] ? op->name : "");
    if (!name[0])
        snprintf(name, sizeof name, "layer%d", i);
    snprintf(wn, sizeof wn, "layer%d.weight", i);
    snprintf(bn, sizeof bn, "layer%d.bias", i);
    const char *wb[2] = {wn, bn};
    const char *out = last ? "logits" : NULL;
    Onnx__AttributeProto *at[6];
    switch (op->kind) {
    case ED_GOP_DENSE: {
        const int64_t wd[2] = {op->out_ch, op->in_ch}, bd[1] = {op->out_ch};
        s_init_f32(b, wn, wd, 2, op->w);
        s_init_f32(b, bn, bd, 1, op->b);
        at[0] = s_attr_int(b, "transB", 1);
        s_node(b, "Gemm", name, wb, 2, at, 1, out);
        return;
    }
    case ED_GOP_CONV: {
        const int64_t wd[4] = {op->out_ch, op->in_ch, op->kh, op->kw}, bd[1] = {op->out_ch};
        s_init_f32(b, wn, wd, 4, op->w);
        s_init_f32(b, bn, bd, 1, op->b);
        size_t na = s_window_attrs(b, op, at);
        s_node(b, "Conv", name, wb, 2, at, na, out);
        return;
    }
    case ED_GOP_AFFINE: {
        /* BatchNormalization with mean 0, var 1, epsilon 0: y = x * scale + B exactly. */
        char mn[48], vn[48];
        snprintf(mn, sizeof mn, "layer%d.mean", i);
        snprintf(vn, sizeof vn, "layer%d.var", i);
        const int64_t cd[1] = {op->in_ch};
        float *zero = s_alloc(&b->pool, (size_t)op->in_ch * sizeof(float));
        float *one = s_alloc(&b->pool, (size_t)op->in_ch * sizeof(float));
        if (!zero || !one)
            return;
        for (int k = 0; k < op->in_ch; k++)
            one[k] = 1.0f;
        s_init_f32(b, wn, cd, 1, op->w);
        s_init_f32(b, bn, cd, 1, op->b);
        s_init_f32(b, mn, cd, 1, zero);
        s_init_f32(b, vn, cd, 1, one);
        const char *ins[4] = {wn, bn, mn, vn};
        at[0] = s_attr_float(b, "epsilon", 0.0f);
        s_node(b, "BatchNormalization", name, ins, 4, at, 1, out);
        return;
    }
    case ED_GOP_RELU:
        s_node(b, "Relu", name, NULL, 0, at, 0, out);
        return;
    case ED_GOP_MAXPOOL:
        s_node(b, "MaxPool", name, NULL, 0, at, s_window_attrs(b, op, at), out);
        return;
    case ED_GOP_AVGPOOL: {
        size_t na = s_window_attrs(b, op, at);
        at[na++] = s_attr_int(b, "count_include_pad", op->count_include_pad ? 1 : 0);
        s_node(b, "AveragePool", name, NULL, 0, at, na, out);
        return;
    }
    case ED_GOP_GLOBAL_AVGPOOL:
        s_node(b, "GlobalAveragePool", name, NULL, 0, at, 0, out);
        return;
    case ED_GOP_FLATTEN:
        at[0] = s_attr_int(b, "axis", 1);
        s_node(b, "Flatten", name, NULL, 0, at, 1, out);
        return;
    default:
        b->pool.oom = true; /* unreachable for a finished graph */
    }
}

/* A float tensor value (N, dims...) with a symbolic batch "N". */
static Onnx__ValueInfoProto *s_value(s_pool *pl, const char *name, const int *dims, int nd)
{
    Onnx__ValueInfoProto *v = s_alloc(pl, sizeof *v);
    Onnx__TypeProto *t = s_alloc(pl, sizeof *t);
    Onnx__TypeProto__Tensor *tt = s_alloc(pl, sizeof *tt);
    Onnx__TensorShapeProto *sh = s_alloc(pl, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dd = s_alloc(pl, (size_t)(nd + 1) * sizeof *dd);
    if (!v || !t || !tt || !sh || !dd)
        return NULL;
    for (int i = 0; i <= nd; i++) {
        dd[i] = s_alloc(pl, sizeof *dd[i]);
        if (!dd[i])
            return NULL;
        onnx__tensor_shape_proto__dimension__init(dd[i]);
        if (i == 0) {
            dd[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dd[i]->dim_param = s_strdup(pl, "N");
        } else {
            dd[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dd[i]->dim_value = dims[i - 1];
        }
    }
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)nd + 1;
    sh->dim = dd;
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    onnx__type_proto__init(t);
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    onnx__value_info_proto__init(v);
    v->name = s_strdup(pl, name);
    v->type = t;
    return v;
}

static Onnx__StringStringEntryProto *s_prop(s_pool *pl, const char *k, const char *v)
{
    Onnx__StringStringEntryProto *e = s_alloc(pl, sizeof *e);
    if (!e)
        return NULL;
    onnx__string_string_entry_proto__init(e);
    e->key = s_strdup(pl, k);
    e->value = s_strdup(pl, v);
    return e;
}

/* Model-level fields: opset, producer, metadata. */
static void s_model(s_pool *pl, Onnx__ModelProto *m, const ed_onnx_write_meta *meta, float scale,
                    float offset)
{
    onnx__model_proto__init(m);
    m->has_ir_version = 1;
    m->ir_version = 7; /* the IR version that goes with opset 13 */
    Onnx__OperatorSetIdProto *os = s_alloc(pl, sizeof *os);
    Onnx__OperatorSetIdProto **osv = s_alloc(pl, sizeof *osv);
    Onnx__StringStringEntryProto **props = s_alloc(pl, 6 * sizeof *props);
    if (!os || !osv || !props)
        return;
    onnx__operator_set_id_proto__init(os);
    os->domain = s_strdup(pl, "");
    os->has_version = 1;
    os->version = ED_ONNX_WRITE_OPSET;
    osv[0] = os;
    m->n_opset_import = 1;
    m->opset_import = osv;
    m->producer_name = s_strdup(pl, "edistill");
    m->producer_version = s_strdup(pl, ed_version());
    char num[32];
    size_t np = 0;
    props[np++] = s_prop(pl, "edistill.input", "raw-pixels");
    snprintf(num, sizeof num, "%.9g", (double)scale);
    props[np++] = s_prop(pl, "edistill.input_scale", num);
    snprintf(num, sizeof num, "%.9g", (double)offset);
    props[np++] = s_prop(pl, "edistill.input_offset", num);
    if (meta->fingerprint && meta->fingerprint[0])
        props[np++] = s_prop(pl, "edistill.fingerprint", meta->fingerprint);
    if (meta->member && meta->member[0])
        props[np++] = s_prop(pl, "edistill.member", meta->member);
    if (meta->provenance && meta->provenance[0])
        props[np++] = s_prop(pl, "edistill.provenance", meta->provenance);
    m->n_metadata_props = np;
    m->metadata_props = props;
}

int ed_onnx_write_buffer(const ed_graph *g, const ed_onnx_write_meta *meta, uint8_t **out,
                         size_t *size, ed_err *err)
{
    *out = NULL;
    *size = 0;
    if (g->n_ops < 1 || g->classes < 1 || (g->input.rank != 1 && g->input.rank != 3))
        return ed_err_set(err, ED_EINVAL, "onnx export: the graph is not finished");
    float scale = meta->input_scale * g->input_scale;
    float offset = meta->input_offset * g->input_scale + g->input_offset;
    if (!isfinite(scale) || !isfinite(offset))
        return ed_err_set(err, ED_EINVAL, "onnx export: input scaling is not finite");
    s_builder b = {0};
    size_t max_nodes = (size_t)g->n_ops + 2, max_inits = 4 * (size_t)g->n_ops + 2;
    b.nodes = s_alloc(&b.pool, max_nodes * sizeof *b.nodes);
    b.inits = s_alloc(&b.pool, max_inits * sizeof *b.inits);
    snprintf(b.cur, sizeof b.cur, "input");
    const int64_t scalar_dims[1] = {1};
    const char *sn[1] = {"input_scale"}, *on[1] = {"input_offset"};
    Onnx__ModelProto m;
    Onnx__GraphProto gr;
    if (b.nodes && b.inits) {
        s_init_f32(&b, sn[0], scalar_dims, 0, &scale);
        s_init_f32(&b, on[0], scalar_dims, 0, &offset);
        s_node(&b, "Mul", "input_scaling_mul", sn, 1, NULL, 0, NULL);
        s_node(&b, "Add", "input_scaling_add", on, 1, NULL, 0, NULL);
        for (int i = 0; i < g->n_ops; i++)
            s_op(&b, &g->ops[i], i, i == g->n_ops - 1);
        onnx__graph_proto__init(&gr);
        gr.name = s_strdup(&b.pool, "edistill");
        gr.n_node = b.n_nodes;
        gr.node = b.nodes;
        gr.n_initializer = b.n_inits;
        gr.initializer = b.inits;
        Onnx__ValueInfoProto **ins = s_alloc(&b.pool, sizeof *ins),
                             **outs = s_alloc(&b.pool, sizeof *outs);
        if (ins && outs) {
            ins[0] = s_value(&b.pool, "input", g->input.d, g->input.rank);
            outs[0] = s_value(&b.pool, "logits", &g->classes, 1);
            gr.n_input = gr.n_output = 1;
            gr.input = ins;
            gr.output = outs;
        }
        s_model(&b.pool, &m, meta, scale, offset);
        m.graph = &gr;
    }
    int rc = ED_OK;
    if (b.pool.oom || !b.nodes || !b.inits) {
        rc = ed_err_set(err, ED_ENOMEM, "onnx export: out of memory");
    } else {
        *size = onnx__model_proto__get_packed_size(&m);
        *out = malloc(*size ? *size : 1);
        if (!*out)
            rc = ed_err_set(err, ED_ENOMEM, "onnx export: out of memory (%zu bytes)", *size);
        else
            onnx__model_proto__pack(&m, *out);
    }
    for (size_t i = 0; i < b.pool.n; i++)
        free(b.pool.p[i]);
    free(b.pool.p);
    if (rc)
        *size = 0;
    return rc;
}

typedef struct {
    const uint8_t *data;
    size_t size;
} s_blob;

static int s_write_blob(FILE *f, void *ctx, ed_err *err)
{
    const s_blob *bl = ctx;
    if (fwrite(bl->data, 1, bl->size, f) != bl->size)
        return ed_err_set(err, ED_EIO, "write failed");
    return ED_OK;
}

int ed_onnx_write_file(const char *path, const ed_graph *g, const ed_onnx_write_meta *meta,
                       ed_err *err)
{
    s_blob bl;
    uint8_t *buf;
    int rc = ed_onnx_write_buffer(g, meta, &buf, &bl.size, err);
    if (rc)
        return rc;
    bl.data = buf;
    rc = ed_fs_write_atomic(path, s_write_blob, &bl, err);
    free(buf);
    return rc;
}
