/*
 * ed_model_file: edistill model files (a layer stack's tensors + metadata) on top of
 * ed_safetensors.
 *
 * Saving writes one F32 tensor per entry of the stack's tensor table (ed_stack_tensors), as views
 * into the model's parameter and state blocks, and
 * the string metadata documented in ed_model_file.h, through an atomic replace. Loading trusts
 * nothing: the container is validated by ed_st_open, then the magic, the version, the arch, every
 * tensor's name/dtype/shape against the arch, the scalar fields and finally the weights' FNV-1a 64
 * fingerprint. The model is allocated only after all tensors have been checked against the file,
 * so a forged arch cannot make us allocate more than the file holds.
 */
#include "ed_model_file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_hash.h"
#include "ed_safetensors.h"

#define S_FP_PREFIX "fnv1a64:"

uint64_t ed_fingerprint(const float *params, size_t n)
{
    return ed_fnv1a64(ED_FNV1A64_INIT, params, n * sizeof(float));
}

void ed_fingerprint_format(uint64_t fp, char *buf, size_t size)
{
    if (buf && size)
        snprintf(buf, size, S_FP_PREFIX "%016llx", (unsigned long long)fp);
}

/* Block a tensor of the table lives in. */
static float *s_tensor_data(const ed_net *m, const ed_tensor_desc *t)
{
    return (t->block == ED_BLOCK_PARAM ? m->params : m->state) + t->offset;
}

uint64_t ed_model_fingerprint(const ed_net *m)
{
    ed_tensor_desc *t = malloc(ED_STACK_MAX_TENSORS * sizeof *t);
    if (!t)
        return 0;
    uint64_t h = ED_FNV1A64_INIT;
    int n = ed_stack_tensors(&m->arch, t, ED_STACK_MAX_TENSORS);
    for (int i = 0; i < n; i++)
        h = ed_fnv1a64(h, s_tensor_data(m, &t[i]), t[i].count * sizeof(float));
    free(t);
    return h;
}

/* "fnv1a64:" + exactly 16 lowercase or uppercase hex digits. */
static int s_parse_fingerprint(const char *s, uint64_t *out)
{
    size_t plen = strlen(S_FP_PREFIX);
    if (strncmp(s, S_FP_PREFIX, plen) != 0 || strlen(s) != plen + 16)
        return -1;
    uint64_t v = 0;
    for (const char *p = s + plen; *p; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            d = *p - 'A' + 10;
        else
            return -1;
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* Strict decimal integer: optional '-', digits, nothing else. */
static int s_parse_long(const char *s, long *out)
{
    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* A finite float written in full (no trailing characters). */
static int s_parse_float(const char *s, float *out)
{
    if (!s || !*s || *s == ' ' || *s == '\t' || *s == '\n')
        return -1;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (*end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static void s_shape_str(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used +=
            (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, ")");
}

/* The "layers" metadata of a version-2 file: a JSON array describing each layer (cJSON-written);
 * NULL on allocation failure. Caller frees. */
static char *s_layers_json(const ed_stack *st)
{
    cJSON *arr = cJSON_CreateArray();
    for (int l = 0; arr && l < st->n_layers; l++) {
        const ed_layer *L = &st->layers[l];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            break;
        }
        const int in[3] = {L->in.c, L->in.h, L->in.w}, out[3] = {L->out.c, L->out.h, L->out.w};
        cJSON_AddStringToObject(o, "type", ed_layer_kind_name(L->kind));
        cJSON_AddNumberToObject(o, "units", L->units);
        cJSON_AddNumberToObject(o, "k", L->k);
        cJSON_AddNumberToObject(o, "stride", L->stride);
        cJSON_AddNumberToObject(o, "pad", L->pad);
        char rate[32]; /* the float's shortest decimal (0.3, not 0.30000001192092896) */
        snprintf(rate, sizeof rate, "%g", (double)L->rate);
        cJSON_AddNumberToObject(o, "rate", strtod(rate, NULL));
        cJSON_AddItemToObject(o, "in", cJSON_CreateIntArray(in, 3));
        cJSON_AddItemToObject(o, "out", cJSON_CreateIntArray(out, 3));
    }
    char *text = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    return text;
}

/* Checks the caller's meta before anything is written. */
static int s_check_meta(const char *path, const ed_model_meta *meta, ed_err *err)
{
    if (!memchr(meta->member, '\0', sizeof meta->member) ||
        !memchr(meta->provenance, '\0', sizeof meta->provenance))
        return ed_err_set(err, ED_EINVAL, "%s: member or provenance is not NUL-terminated", path);
    if (!isfinite(meta->input_scale) || !isfinite(meta->input_offset))
        return ed_err_set(err, ED_EINVAL, "%s: input_scale %g / input_offset %g must be finite",
                          path, (double)meta->input_scale, (double)meta->input_offset);
    const char *prov = meta->provenance[0] ? meta->provenance : "{}";
    cJSON *pj = cJSON_ParseWithOpts(prov, NULL, 1); /* whole string must be JSON */
    if (!pj)
        return ed_err_set(err, ED_EINVAL, "%s: provenance is not valid JSON: %.60s", path, prov);
    cJSON_Delete(pj);
    return ED_OK;
}

int ed_model_save(const char *path, const ed_net *m, ed_model_meta *meta, ed_err *err)
{
    if (!path || !m || !meta || !m->params)
        return ed_err_set(err, ED_EINVAL, "ed_model_save: NULL argument");
    int rc = s_check_meta(path, meta, err);
    if (rc != ED_OK)
        return rc;
    const ed_stack *st = &m->arch;
    const char *prov = meta->provenance[0] ? meta->provenance : "{}";
    char arch[ED_STACK_TEXT_MAX], classes[16], scale[32], offset[32], fp[32], version[16];
    ed_stack_format(st, arch, sizeof arch);
    snprintf(classes, sizeof classes, "%d", ed_stack_classes(st));
    snprintf(scale, sizeof scale, "%.9g", (double)meta->input_scale);
    snprintf(offset, sizeof offset, "%.9g", (double)meta->input_offset);
    snprintf(version, sizeof version, "%d", st->mlp ? 1 : ED_MODEL_FORMAT_VERSION);
    uint64_t h = ed_model_fingerprint(m);
    ed_fingerprint_format(h, fp, sizeof fp);
    char *layers = st->mlp ? NULL : s_layers_json(st);
    ed_tensor_desc *td = malloc(ED_STACK_MAX_TENSORS * sizeof *td);
    ed_st_tensor *t = calloc(ED_STACK_MAX_TENSORS, sizeof *t);
    if ((!st->mlp && !layers) || !td || !t) {
        rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    const ed_st_meta md[] = {
        {"format", ED_MODEL_FORMAT}, {"format_version", version}, {"arch", arch},
        {"classes", classes},        {"input_scale", scale},      {"input_offset", offset},
        {"member", meta->member},    {"provenance", prov},        {"fingerprint", fp},
        {"layers", layers},
    };
    int n = ed_stack_tensors(st, td, ED_STACK_MAX_TENSORS);
    for (int i = 0; i < n; i++) {
        t[i] = (ed_st_tensor){.name = td[i].name,
                              .dtype = "F32",
                              .ndim = td[i].ndim,
                              .data = s_tensor_data(m, &td[i]),
                              .nbytes = td[i].count * sizeof(float)};
        memcpy(t[i].shape, td[i].shape, sizeof td[i].shape);
    }
    const int n_meta = (int)(sizeof md / sizeof md[0]) - (st->mlp ? 1 : 0);
    rc = ed_st_write(path, t, n, md, n_meta, err);
    if (rc == ED_OK)
        meta->fingerprint = h;
done:
    free(layers);
    free(td);
    free(t);
    return rc;
}

/* Finds tensor `name` and checks it is F32 with the expected shape. */
static int s_check_tensor(const ed_st_file *f, const char *path, const char *name, int ndim,
                          const int64_t *want, ed_st_tensor *t, ed_err *err)
{
    if (ed_st_find(f, name, t) != ED_OK)
        return ed_err_set(err, ED_EFORMAT, "%s: missing tensor %s", path, name);
    if (strcmp(t->dtype, "F32") != 0)
        return ed_err_set(err, ED_EFORMAT, "%s: tensor %s has dtype %s, expected F32", path, name,
                          t->dtype);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == want[i];
    if (!same) {
        char got[96], need[96];
        s_shape_str(t->ndim, t->shape, got, sizeof got);
        s_shape_str(ndim, want, need, sizeof need);
        return ed_err_set(err, ED_ESHAPE, "%s: tensor %s has shape %s, arch needs %s", path, name,
                          got, need);
    }
    return ED_OK;
}

/* Copies a metadata string into a fixed buffer, refusing values that do not fit. */
static int s_copy_string(const char *path, const char *key, const char *v, char *dst, size_t size,
                         ed_err *err)
{
    size_t n = strlen(v);
    if (n >= size)
        return ed_err_set(err, ED_EFORMAT, "%s: %s is %zu bytes, at most %zu allowed", path, key, n,
                          size - 1);
    memcpy(dst, v, n + 1);
    return ED_OK;
}

/* Format magic, version and arch (a version-1 file must have a legacy MLP arch); classes. */
static int s_load_arch(const ed_st_file *f, const char *path, ed_stack *arch, ed_err *err)
{
    const char *v = ed_st_meta_get(f, "format");
    if (!v || strcmp(v, ED_MODEL_FORMAT) != 0)
        return ed_err_set(err, ED_EFORMAT,
                          "%s: not an edistill model (format is '%s', expected '" ED_MODEL_FORMAT
                          "')",
                          path, v ? v : "");
    long version;
    v = ed_st_meta_get(f, "format_version");
    if (!v || s_parse_long(v, &version) != 0 || version < 1)
        return ed_err_set(err, ED_EFORMAT, "%s: format_version '%s' is not a positive integer",
                          path, v ? v : "");
    if (version > ED_MODEL_FORMAT_VERSION)
        return ed_err_set(err, ED_EVERSION,
                          "%s: format_version %ld is newer than this build supports (%d): upgrade "
                          "edistill",
                          path, version, ED_MODEL_FORMAT_VERSION);
    v = ed_st_meta_get(f, "arch");
    if (!v)
        return ed_err_set(err, ED_EFORMAT, "%s: metadata has no arch", path);
    if (ed_stack_parse(v, arch, err) != ED_OK) {
        ed_err_wrap(err, "%s: metadata arch", path);
        return err->code = ED_EFORMAT;
    }
    if (version == 1 && !arch->mlp)
        return ed_err_set(err, ED_EFORMAT,
                          "%s: format_version 1 holds MLPs only, but the arch is '%s'", path, v);
    long classes;
    v = ed_st_meta_get(f, "classes");
    if (!v || s_parse_long(v, &classes) != 0)
        return ed_err_set(err, ED_EFORMAT, "%s: classes '%s' is not an integer", path, v ? v : "");
    if (classes != ed_stack_classes(arch))
        return ed_err_set(err, ED_ESHAPE, "%s: classes is %ld but the arch's output has %d", path,
                          classes, ed_stack_classes(arch));
    return ED_OK;
}

/* Scaling, member, provenance and the recorded fingerprint into md. */
static int s_load_meta(const ed_st_file *f, const char *path, ed_model_meta *md, uint64_t *file_fp,
                       ed_err *err)
{
    memset(md, 0, sizeof *md);
    static const char *const float_keys[2] = {"input_scale", "input_offset"};
    float *float_dst[2] = {&md->input_scale, &md->input_offset};
    for (int i = 0; i < 2; i++) {
        const char *v = ed_st_meta_get(f, float_keys[i]);
        if (!v || s_parse_float(v, float_dst[i]) != 0)
            return ed_err_set(err, ED_EFORMAT, "%s: %s '%s' is not a finite number", path,
                              float_keys[i], v ? v : "(missing)");
    }
    const char *v = ed_st_meta_get(f, "member");
    int rc = s_copy_string(path, "member", v ? v : "", md->member, sizeof md->member, err);
    if (rc < 0)
        return rc;
    v = ed_st_meta_get(f, "provenance");
    rc = s_copy_string(path, "provenance", v && *v ? v : "{}", md->provenance,
                       sizeof md->provenance, err);
    if (rc < 0)
        return rc;
    v = ed_st_meta_get(f, "fingerprint");
    if (!v || s_parse_fingerprint(v, file_fp) != 0)
        return ed_err_set(err, ED_EFORMAT, "%s: fingerprint '%s' is not fnv1a64:<16 hex digits>",
                          path, v ? v : "(missing)");
    return ED_OK;
}

/* Checks every tensor of the arch's table against the file (before anything of the arch's size is
 * allocated), then allocates the model and copies them in. */
static int s_load_tensors(const ed_st_file *f, const char *path, const ed_stack *arch, ed_net **out,
                          ed_err *err)
{
    int rc = ED_OK;
    ed_tensor_desc *td = malloc(ED_STACK_MAX_TENSORS * sizeof *td);
    ed_st_tensor *t = malloc(ED_STACK_MAX_TENSORS * sizeof *t);
    if (!td || !t) {
        rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    int n = ed_stack_tensors(arch, td, ED_STACK_MAX_TENSORS);
    for (int i = 0; i < n; i++)
        if ((rc = s_check_tensor(f, path, td[i].name, td[i].ndim, td[i].shape, &t[i], err)) < 0)
            goto done;
    if (ed_st_tensor_count(f) != n) {
        rc = ed_err_set(err, ED_EFORMAT, "%s: has %d tensors, arch %s needs exactly %d", path,
                        ed_st_tensor_count(f), ed_st_meta_get(f, "arch"), n);
        goto done;
    }
    ed_net *m = ed_net_new(arch);
    if (!m) {
        rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory for the model", path);
        goto done;
    }
    for (int i = 0; i < n; i++)
        memcpy(s_tensor_data(m, &td[i]), t[i].data, t[i].nbytes);
    *out = m;
done:
    free(td);
    free(t);
    return rc;
}

static int s_load(const char *path, ed_net **out, ed_model_meta *meta, ed_err *err)
{
    ed_net *m = NULL;
    ed_stack *arch = malloc(sizeof *arch);
    ed_model_meta *md = malloc(sizeof *md);
    ed_st_file *f = NULL;
    int rc;
    if (!arch || !md) {
        rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    f = ed_st_open(path, err);
    if (!f) {
        rc = err->code < 0 ? err->code : ED_EIO;
        goto cleanup;
    }
    uint64_t file_fp = 0;
    if ((rc = s_load_arch(f, path, arch, err)) < 0 ||
        (rc = s_load_meta(f, path, md, &file_fp, err)) < 0 ||
        (rc = s_load_tensors(f, path, arch, &m, err)) < 0)
        goto cleanup;
    uint64_t h = ed_model_fingerprint(m);
    if (h != file_fp) {
        char fs[32], hs[32];
        ed_fingerprint_format(file_fp, fs, sizeof fs);
        ed_fingerprint_format(h, hs, sizeof hs);
        rc = ed_err_set(err, ED_ECHECKSUM,
                        "%s: fingerprint mismatch (file says %s, weights hash to %s): the weights "
                        "are corrupted",
                        path, fs, hs);
        goto cleanup;
    }
    md->fingerprint = h;
    if (meta)
        *meta = *md;
    *out = m;
    m = NULL;
cleanup:
    ed_net_destroy(&m);
    ed_st_close(&f);
    free(arch);
    free(md);
    return rc;
}

int ed_model_load(const char *path, ed_net **out, ed_model_meta *meta, ed_err *err)
{
    if (!path || !out)
        return ed_err_set(err, ED_EINVAL, "ed_model_load: NULL argument");
    *out = NULL;
    /* A local record so the helpers can read back codes even when the caller passed err == NULL. */
    ed_err local;
    ed_err_clear(&local);
    int rc = s_load(path, out, meta, &local);
    if (rc < 0 && err)
        *err = local;
    return rc;
}
