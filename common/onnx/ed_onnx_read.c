/*
 * ed_onnx_read: ONNX ModelProto -> ed_graph (contract in ed_onnx_read.h).
 *
 * The decoder is protobuf-c's (generated from the vendored proto/onnx/onnx.proto); everything it
 * hands back is outside input and is checked before use. Before decoding, a schema-guided scan of
 * the wire bytes bounds the nesting depth (GraphProto can nest in attributes without limit, and
 * protobuf-c recurses once per level). The walk starts at the one graph input that is not a
 * constant, follows the single consumer of the current tensor node by node (each node's other
 * inputs must be constants) and must end at the single graph output; ed_onnx_ops.c translates each
 * node.
 */
#include "ed_onnx_read.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ed_onnx_internal.h"

#define S_MAX_NODES 4096
#define S_MAX_INITS 4096
#define S_MAX_DEPTH 24
#define S_MAX_FILE ((size_t)2 << 30)

static const char *s_str(const char *s)
{
    return s ? s : "";
}

static bool s_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *i < n; shift += 7) {
        uint8_t b = p[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* false only when messages nest deeper than S_MAX_DEPTH; malformed bytes are left to the decoder.
 */
static bool s_depth_ok(const uint8_t *p, size_t n, const ProtobufCMessageDescriptor *d, int depth)
{
    if (depth > S_MAX_DEPTH)
        return false;
    size_t i = 0;
    while (i < n) {
        uint64_t key, v;
        if (!s_varint(p, n, &i, &key))
            return true;
        switch (key & 7) {
        case 0:
            if (!s_varint(p, n, &i, &v))
                return true;
            break;
        case 1:
            i += 8;
            break;
        case 5:
            i += 4;
            break;
        case 2: {
            if (!s_varint(p, n, &i, &v) || v > n - i)
                return true;
            const ProtobufCFieldDescriptor *f =
                key >> 3 <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                !s_depth_ok(p + i, (size_t)v, f->descriptor, depth + 1))
                return false;
            i += (size_t)v;
            break;
        }
        default:
            return true;
        }
    }
    return true;
}

/* An Identity whose input is a constant: its output is that constant. */
static bool s_const_identity(const ed_onnx_ctx *c, const Onnx__NodeProto *n)
{
    return strcmp(s_str(n->op_type), "Identity") == 0 && n->n_input == 1 && n->n_output == 1 &&
           n->output[0][0] && ed_onnx_const(c, n->input[0]) != NULL;
}

/* Registers initializers, Constant node values and Identity copies of constants as constants. */
static int s_constants(ed_onnx_ctx *c, const Onnx__GraphProto *gr)
{
    size_t cap = gr->n_initializer + gr->n_node;
    c->const_names = calloc(cap ? cap : 1, sizeof *c->const_names);
    c->const_vals = calloc(cap ? cap : 1, sizeof *c->const_vals);
    if (!c->const_names || !c->const_vals)
        return ed_err_set(c->err, ED_ENOMEM, "%s: out of memory", c->name);
    for (size_t i = 0; i < gr->n_initializer; i++) {
        Onnx__TensorProto *t = gr->initializer[i];
        if (t && t->name && t->name[0]) {
            c->const_names[c->n_const] = t->name;
            c->const_vals[c->n_const++] = t;
        }
    }
    /* Nodes are in topological order (ONNX requires it): one pass sees every Identity of a
     * constant (PyTorch emits those for shared weights) after the constant it copies. */
    for (size_t i = 0; i < gr->n_node; i++) {
        const Onnx__NodeProto *n = gr->node[i];
        if (n && s_const_identity(c, n)) {
            c->const_names[c->n_const] = n->output[0];
            c->const_vals[c->n_const++] = ed_onnx_const(c, n->input[0]);
            continue;
        }
        if (!n || strcmp(s_str(n->op_type), "Constant") != 0 || n->n_output != 1 ||
            !n->output[0][0])
            continue;
        for (size_t a = 0; a < n->n_attribute; a++)
            if (n->attribute[a] && strcmp(s_str(n->attribute[a]->name), "value") == 0 &&
                n->attribute[a]->t) {
                c->const_names[c->n_const] = n->output[0];
                c->const_vals[c->n_const++] = n->attribute[a]->t;
            }
    }
    return ED_OK;
}

/* Shape of a value: rank (-1 when unknown) and dims (-1 for a symbolic dim). Not a float tensor:
 * -2. */
static int s_value_shape(const Onnx__ValueInfoProto *v, int64_t dims[8])
{
    const Onnx__TypeProto *t = v ? v->type : NULL;
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type)
        return -2;
    const Onnx__TypeProto__Tensor *tt = t->tensor_type;
    if (tt->has_elem_type && tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return -2;
    if (!tt->shape)
        return -1;
    if (tt->shape->n_dim > 8)
        return 9;
    for (size_t i = 0; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        dims[i] = d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                      ? d->dim_value
                      : -1;
    }
    return (int)tt->shape->n_dim;
}

/* The graph's one data input (sets g->input) and one output. */
static int s_io(ed_onnx_ctx *c, const Onnx__GraphProto *gr, const char **in, const char **out)
{
    const Onnx__ValueInfoProto *vi = NULL;
    int n_in = 0;
    for (size_t i = 0; i < gr->n_input; i++)
        if (gr->input[i] && !ed_onnx_const(c, gr->input[i]->name)) {
            vi = gr->input[i];
            n_in++;
        }
    if (n_in != 1 || !vi->name || !vi->name[0])
        return ed_err_set(c->err, ED_EFORMAT,
                          "%s: the graph has %d data inputs, exactly one is supported", c->name,
                          n_in);
    int64_t d[8];
    int r = s_value_shape(vi, d);
    if (r == -2)
        return ed_err_set(c->err, ED_EFORMAT, "%s: input '%s' is not a float32 tensor", c->name,
                          vi->name);
    if (r != 2 && r != 4)
        return ed_err_set(c->err, ED_ESHAPE,
                          "%s: input '%s' must be (N, D) or (N, C, H, W), it has rank %d", c->name,
                          vi->name, r);
    for (int k = 1; k < r; k++)
        if (d[k] < 1 || d[k] > (1 << 24))
            return ed_err_set(
                c->err, ED_ESHAPE,
                "%s: input '%s' dimension %d is not a fixed size (only the batch may vary)",
                c->name, vi->name, k);
    c->g->input.rank = r - 1;
    for (int k = 1; k < r; k++)
        c->g->input.d[k - 1] = (int)d[k];
    *in = vi->name;
    if (gr->n_output != 1 || !gr->output[0] || !gr->output[0]->name || !gr->output[0]->name[0])
        return ed_err_set(c->err, ED_EFORMAT,
                          "%s: the graph has %zu outputs, exactly one is supported", c->name,
                          gr->n_output);
    r = s_value_shape(gr->output[0], d);
    if (r >= 0 && r != 2)
        return ed_err_set(c->err, ED_ESHAPE, "%s: output '%s' is %d-D, not 2-D (N, classes) logits",
                          c->name, gr->output[0]->name, r);
    c->declared_classes = r == 2 && d[1] > 0 ? d[1] : -1;
    *out = gr->output[0]->name;
    return ED_OK;
}

static bool s_consumed(const Onnx__GraphProto *gr, const char *name)
{
    for (size_t i = 0; i < gr->n_node; i++)
        for (size_t j = 0; gr->node[i] && j < gr->node[i]->n_input; j++)
            if (strcmp(gr->node[i]->input[j], name) == 0)
                return true;
    return false;
}

/* Checks node n (reached through input data_idx) before translation: domain, constant side
 * inputs, unused extra outputs. */
static int s_check_node(ed_onnx_ctx *c, const Onnx__GraphProto *gr, const Onnx__NodeProto *n,
                        size_t data_idx, const char *out_name)
{
    const char *dom = s_str(n->domain);
    if (dom[0] && strcmp(dom, "ai.onnx") != 0)
        return ed_onnx_node_err(c, ED_EFORMAT, n, "operator domain '%s' is not supported", dom);
    for (size_t j = 0; j < n->n_input; j++)
        if (j != data_idx && n->input[j][0] && !ed_onnx_const(c, n->input[j]))
            return ed_onnx_node_err(
                c, ED_EFORMAT, n,
                "input '%s' is neither the chain's tensor nor a constant (branching graph)",
                n->input[j]);
    if (n->n_output < 1 || !n->output[0][0])
        return ed_onnx_node_err(c, ED_EFORMAT, n, "has no output");
    for (size_t o = 1; o < n->n_output; o++)
        if (n->output[o][0] &&
            (s_consumed(gr, n->output[o]) || strcmp(n->output[o], out_name) == 0))
            return ed_onnx_node_err(c, ED_EFORMAT, n,
                                    "output %zu ('%s') is used: only the first output is supported",
                                    o, n->output[o]);
    return ED_OK;
}

/* Follows the chain from `in` to `out`, translating every node. */
static int s_walk(ed_onnx_ctx *c, const Onnx__GraphProto *gr, const char *in, const char *out)
{
    bool *done = calloc(gr->n_node ? gr->n_node : 1, sizeof *done);
    if (!done)
        return ed_err_set(c->err, ED_ENOMEM, "%s: out of memory", c->name);
    const char *cur = in;
    int rc = ED_OK;
    while (!rc) {
        size_t who = 0, idx = 0;
        int uses = 0;
        for (size_t i = 0; i < gr->n_node; i++)
            for (size_t j = 0; j < gr->node[i]->n_input; j++)
                if (strcmp(gr->node[i]->input[j], cur) == 0) {
                    if (uses++ == 0)
                        who = i, idx = j;
                }
        if (uses == 0)
            break;
        const Onnx__NodeProto *n = gr->node[who];
        if (uses > 1 || strcmp(cur, out) == 0)
            rc = ed_err_set(
                c->err, ED_EFORMAT,
                "%s: branching graph: tensor '%s' is used %d times (first by node '%s' (%s)); "
                "only a linear chain is supported",
                c->name, cur, uses + (strcmp(cur, out) == 0), s_str(n->name), s_str(n->op_type));
        else if (done[who])
            rc = ed_onnx_node_err(c, ED_EFORMAT, n, "the graph has a cycle");
        else if (!(rc = s_check_node(c, gr, n, idx, out))) {
            done[who] = true;
            rc = ed_onnx_node(c, n, idx, strcmp(n->output[0], out) == 0);
            cur = n->output[0];
        }
    }
    if (!rc && strcmp(cur, out) != 0)
        rc = ed_err_set(c->err, ED_EFORMAT,
                        "%s: the chain from input '%s' ends at tensor '%s', not at the output '%s'",
                        c->name, in, cur, out);
    for (size_t i = 0; !rc && i < gr->n_node; i++)
        if (!done[i] && strcmp(s_str(gr->node[i]->op_type), "Constant") != 0 &&
            !(strcmp(s_str(gr->node[i]->op_type), "Identity") == 0 &&
              ed_onnx_const(c, gr->node[i]->output[0])))
            rc = ed_onnx_node_err(c, ED_EFORMAT, gr->node[i],
                                  "not on the path from the input to the output (branching graph)");
    free(done);
    return rc;
}

/* Reads the model's default-domain opset version. */
static int s_check_opset(ed_onnx_ctx *c, const Onnx__ModelProto *m)
{
    int64_t v = -1;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        const char *d = o ? s_str(o->domain) : "x";
        if (d[0] == '\0' || strcmp(d, "ai.onnx") == 0)
            v = o->version;
    }
    if (v < 0)
        return ed_err_set(c->err, ED_EFORMAT, "%s: no opset_import for the default ONNX domain",
                          c->name);
    if (v < ED_ONNX_OPSET_MIN || v > ED_ONNX_OPSET_MAX)
        return ed_err_set(c->err, ED_EVERSION, "%s: opset %lld is not supported (opsets %d-%d are)",
                          c->name, (long long)v, ED_ONNX_OPSET_MIN, ED_ONNX_OPSET_MAX);
    return ED_OK;
}

static void s_metadata(ed_graph *g, const Onnx__ModelProto *m)
{
    snprintf(g->producer, sizeof g->producer, "%s%s%s", s_str(m->producer_name),
             m->producer_version && m->producer_version[0] ? " " : "", s_str(m->producer_version));
    for (size_t i = 0; i < m->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *e = m->metadata_props[i];
        if (!e || !e->key || !e->value)
            continue;
        if (strcmp(e->key, "edistill.fingerprint") == 0)
            snprintf(g->edistill_fingerprint, sizeof g->edistill_fingerprint, "%s", e->value);
        else if (strcmp(e->key, "edistill.member") == 0)
            snprintf(g->edistill_member, sizeof g->edistill_member, "%s", e->value);
        else if (strcmp(e->key, "edistill.input") == 0)
            g->raw_pixel_input = strcmp(e->value, "raw-pixels") == 0;
    }
}

/* Every node must have its repeated string fields non-NULL (protobuf-c guarantees it) and the
 * counts within the limits. */
static int s_limits(ed_onnx_ctx *c, const Onnx__GraphProto *gr)
{
    if (gr->n_node > S_MAX_NODES || gr->n_initializer > S_MAX_INITS)
        return ed_err_set(c->err, ED_ETOOBIG,
                          "%s: %zu nodes and %zu initializers (limits %d and %d)", c->name,
                          gr->n_node, gr->n_initializer, S_MAX_NODES, S_MAX_INITS);
    for (size_t i = 0; i < gr->n_node; i++)
        if (!gr->node[i])
            return ed_err_set(c->err, ED_EFORMAT, "%s: empty node %zu", c->name, i);
    return ED_OK;
}

int ed_onnx_read_buffer(const uint8_t *data, size_t size, const char *name, ed_graph **out,
                        ed_err *err)
{
    *out = NULL;
    ed_onnx_ctx c = {.name = name ? name : "onnx",
                     .err = err,
                     .last_weight_node = -1,
                     .last_matmul = -1,
                     .declared_classes = -1};
    if (!s_depth_ok(data, size, &onnx__model_proto__descriptor, 0))
        return ed_err_set(err, ED_EFORMAT, "%s: messages nested deeper than %d levels", c.name,
                          S_MAX_DEPTH);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, data);
    if (!m)
        return ed_err_set(err, ED_EFORMAT,
                          "%s: not an ONNX model (protobuf decoding failed: truncated or corrupt)",
                          c.name);
    int rc = ED_OK;
    const char *in = NULL, *outname = NULL;
    if (!m->graph)
        rc = ed_err_set(err, ED_EFORMAT, "%s: the model has no graph", c.name);
    else if (!(rc = s_check_opset(&c, m)) && !(rc = s_limits(&c, m->graph))) {
        c.g = ed_graph_new();
        if (!c.g)
            rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory", c.name);
    }
    if (!rc && !(rc = s_constants(&c, m->graph)) && !(rc = s_io(&c, m->graph, &in, &outname)) &&
        !(rc = s_walk(&c, m->graph, in, outname)) && (rc = ed_graph_finish(c.g, err)))
        ed_err_wrap(err, "%s", c.name);
    if (!rc && c.declared_classes > 0 && c.declared_classes != c.g->classes)
        rc = ed_err_set(err, ED_ESHAPE,
                        "%s: the output is declared (N, %lld), the graph computes (N, %d)", c.name,
                        (long long)c.declared_classes, c.g->classes);
    if (!rc)
        s_metadata(c.g, m);
    free(c.const_names);
    free(c.const_vals);
    onnx__model_proto__free_unpacked(m, NULL);
    if (rc)
        ed_graph_destroy(&c.g);
    *out = c.g;
    return rc;
}

int ed_onnx_read_file(const char *path, ed_graph **out, ed_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ed_err_set(err, ED_EIO, "%s: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = ED_OK;
    for (;;) {
        if (n == cap) {
            if (cap >= S_MAX_FILE) {
                rc = ed_err_set(err, ED_ETOOBIG, "%s: larger than %zu bytes", path, S_MAX_FILE);
                break;
            }
            size_t nc = cap ? 2 * cap : 1 << 16;
            uint8_t *nb = realloc(buf, nc);
            if (!nb) {
                rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
                break;
            }
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (!rc && ferror(f))
        rc = ed_err_set(err, ED_EIO, "%s: read error", path);
    fclose(f);
    if (!rc)
        rc = ed_onnx_read_buffer(buf, n, path, out, err);
    free(buf);
    return rc;
}

int ed_onnx_is_onnx_path(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return n >= 5 && strcasecmp(path + n - 5, ".onnx") == 0;
}
