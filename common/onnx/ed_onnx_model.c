/*
 * ed_onnx_model: ONNX import into and export from edistill's model types (see ed_onnx_model.h).
 * The only place that knows both ed_graph and the model types; the readers/writers below it know
 * only ed_graph, the programs above it only models and metadata.
 */
#include "ed_onnx_model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ed_graph.h"
#include "ed_graph_net.h"
#include "ed_log.h"
#include "ed_onnx_read.h"
#include "ed_onnx_write.h"

ed_onnx_import_opts ed_onnx_import_defaults(void)
{
    return (ed_onnx_import_opts){.input_scale = NAN, .input_offset = NAN, .member = NULL};
}

static const char *s_base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Member name: the option, the file's edistill.member, or the file's base name without .onnx. */
static void s_member(const ed_onnx_import_opts *o, const ed_graph *g, const char *path,
                     ed_model_meta *meta)
{
    if (o->member && o->member[0])
        snprintf(meta->member, sizeof meta->member, "%s", o->member);
    else if (g->edistill_member[0])
        snprintf(meta->member, sizeof meta->member, "%s", g->edistill_member);
    else {
        const char *b = s_base(path);
        size_t n = strlen(b);
        if (ed_onnx_is_onnx_path(b))
            n -= 5;
        snprintf(meta->member, sizeof meta->member, "%.*s", (int)(n < 120 ? n : 120), b);
    }
}

/* provenance: {"imported_from": {"file", "producer", "input_scale", "input_offset", ...}} */
static int s_provenance(const char *path, const ed_graph *g, float scale, float offset,
                        ed_model_meta *meta, ed_err *err)
{
    cJSON *root = cJSON_CreateObject(), *imp = cJSON_CreateObject();
    if (!root || !imp) {
        cJSON_Delete(root);
        cJSON_Delete(imp);
        return ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
    }
    cJSON_AddItemToObject(root, "imported_from", imp);
    cJSON_AddStringToObject(imp, "format", "onnx");
    cJSON_AddStringToObject(imp, "file", s_base(path));
    cJSON_AddStringToObject(imp, "producer", g->producer);
    if (g->edistill_fingerprint[0])
        cJSON_AddStringToObject(imp, "edistill_fingerprint", g->edistill_fingerprint);
    cJSON_AddNumberToObject(imp, "input_scale", scale);
    cJSON_AddNumberToObject(imp, "input_offset", offset);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text)
        return ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
    int rc = ED_OK;
    if (strlen(text) >= sizeof meta->provenance)
        rc = ed_err_set(err, ED_ETOOBIG, "%s: provenance too long", path);
    else
        snprintf(meta->provenance, sizeof meta->provenance, "%s", text);
    cJSON_free(text);
    return rc;
}

int ed_onnx_model_load(const char *path, const ed_onnx_import_opts *opts, ed_net **out,
                       ed_model_meta *meta, ed_err *err)
{
    *out = NULL;
    ed_onnx_import_opts o = opts ? *opts : ed_onnx_import_defaults();
    ed_graph *g = NULL;
    int rc = ed_onnx_read_file(path, &g, err);
    if (rc)
        return rc;
    /* raw pixels -> ONNX input (flags), then the graph's own leading scalar ops */
    float s = isnan(o.input_scale) ? (g->raw_pixel_input ? 1.0f : ED_ONNX_DEFAULT_INPUT_SCALE)
                                   : o.input_scale;
    float off = isnan(o.input_offset) ? 0.0f : o.input_offset;
    ed_model_meta m = {0};
    m.input_scale = s * g->input_scale;
    m.input_offset = off * g->input_scale + g->input_offset;
    if (!isfinite(m.input_scale) || !isfinite(m.input_offset)) {
        rc = ed_err_set(err, ED_EINVAL, "%s: input scaling is not finite", path);
    } else if ((rc = ed_graph_to_net(g, out, err))) {
        ed_err_wrap(err, "%s", path);
    } else if (!(rc = s_provenance(path, g, s, off, &m, err))) {
        s_member(&o, g, path, &m);
        m.fingerprint = ed_model_fingerprint(*out);
        ed_log_info("%s: ONNX model from '%s' imported: %d layers, %d classes, input x * %g + %g",
                    path, g->producer, g->n_ops, g->classes, (double)m.input_scale,
                    (double)m.input_offset);
        if (meta)
            *meta = m;
    }
    if (rc)
        ed_net_destroy(out);
    ed_graph_destroy(&g);
    return rc;
}

int ed_onnx_model_load_any(const char *path, const ed_onnx_import_opts *opts, ed_net **out,
                           ed_model_meta *meta, ed_err *err)
{
    if (ed_onnx_is_onnx_path(path))
        return ed_onnx_model_load(path, opts, out, meta, err);
    return ed_model_load(path, out, meta, err);
}

int ed_onnx_model_export(const ed_net *m, const ed_model_meta *meta, const char *onnx_path,
                         ed_err *err)
{
    ed_graph *g = ed_graph_from_net(m, err);
    if (!g)
        return ed_err_wrap(err, "%s", onnx_path);
    char fp[32];
    ed_fingerprint_format(meta->fingerprint, fp, sizeof fp);
    ed_onnx_write_meta wm = {.input_scale = meta->input_scale,
                             .input_offset = meta->input_offset,
                             .member = meta->member,
                             .fingerprint = fp,
                             .provenance = meta->provenance};
    int rc = ed_onnx_write_file(onnx_path, g, &wm, err);
    ed_graph_destroy(&g);
    return rc;
}
