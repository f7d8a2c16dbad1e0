/*
 * ed_model_file: edistill model files (an MLP's parameters + metadata) on top of ed_safetensors.
 *
 * Saving writes one F32 tensor per weight and bias, as views into the model's parameter block, and
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

/* Hash of the tensors in file order (layers.0.weight, layers.0.bias, ...). With ed_mlp's layout
 * this equals ed_fingerprint(m->params, m->n_params). */
static uint64_t s_model_fingerprint(const ed_mlp *m)
{
    uint64_t h = ED_FNV1A64_INIT;
    const ed_arch *a = &m->arch;
    for (int l = 0; l < a->n_layers; l++) {
        size_t out = (size_t)a->widths[l + 1], in = (size_t)a->widths[l];
        h = ed_fnv1a64(h, m->W[l], out * in * sizeof(float));
        h = ed_fnv1a64(h, m->b[l], out * sizeof(float));
    }
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

static void s_tensor_name(char *buf, size_t size, int layer, int is_bias)
{
    snprintf(buf, size, "layers.%d.%s", layer, is_bias ? "bias" : "weight");
}

int ed_model_save(const char *path, const ed_mlp *m, ed_model_meta *meta, ed_err *err)
{
    if (!path || !m || !meta || !m->params)
        return ed_err_set(err, ED_EINVAL, "ed_model_save: NULL argument");
    const ed_arch *a = &m->arch;
    if (a->n_layers < 1 || a->n_layers > ED_MLP_MAX_LAYERS)
        return ed_err_set(err, ED_EINVAL, "%s: model has %d layers", path, a->n_layers);
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

    char arch[256], classes[16], scale[32], offset[32], fp[32], version[16];
    ed_arch_format(a, arch, sizeof arch);
    snprintf(classes, sizeof classes, "%d", ed_arch_out(a));
    snprintf(scale, sizeof scale, "%.9g", (double)meta->input_scale);
    snprintf(offset, sizeof offset, "%.9g", (double)meta->input_offset);
    snprintf(version, sizeof version, "%d", ED_MODEL_FORMAT_VERSION);
    uint64_t h = s_model_fingerprint(m);
    ed_fingerprint_format(h, fp, sizeof fp);

    const ed_st_meta md[] = {
        {"format", ED_MODEL_FORMAT}, {"format_version", version}, {"arch", arch},
        {"classes", classes},        {"input_scale", scale},      {"input_offset", offset},
        {"member", meta->member},    {"provenance", prov},        {"fingerprint", fp},
    };

    char names[2 * ED_MLP_MAX_LAYERS][32];
    ed_st_tensor t[2 * ED_MLP_MAX_LAYERS];
    memset(t, 0, sizeof t);
    for (int l = 0; l < a->n_layers; l++) {
        int64_t out = a->widths[l + 1], in = a->widths[l];
        ed_st_tensor *w = &t[2 * l], *b = &t[2 * l + 1];
        s_tensor_name(names[2 * l], sizeof names[0], l, 0);
        s_tensor_name(names[2 * l + 1], sizeof names[0], l, 1);
        *w = (ed_st_tensor){.name = names[2 * l],
                            .dtype = "F32",
                            .ndim = 2,
                            .shape = {out, in},
                            .data = m->W[l],
                            .nbytes = (size_t)(out * in) * sizeof(float)};
        *b = (ed_st_tensor){.name = names[2 * l + 1],
                            .dtype = "F32",
                            .ndim = 1,
                            .shape = {out},
                            .data = m->b[l],
                            .nbytes = (size_t)out * sizeof(float)};
    }
    int rc = ed_st_write(path, t, 2 * a->n_layers, md, (int)(sizeof md / sizeof md[0]), err);
    if (rc == ED_OK)
        meta->fingerprint = h;
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

static int s_load(const char *path, ed_mlp **out, ed_model_meta *meta, ed_err *err)
{
    int rc = ED_OK;
    ed_mlp *m = NULL;
    ed_st_file *f = ed_st_open(path, err);
    if (!f)
        return err->code < 0 ? err->code : ED_EIO;

    const char *v = ed_st_meta_get(f, "format");
    if (!v || strcmp(v, ED_MODEL_FORMAT) != 0) {
        rc =
            ed_err_set(err, ED_EFORMAT,
                       "%s: not an edistill model (format is '%s', expected '" ED_MODEL_FORMAT "')",
                       path, v ? v : "");
        goto cleanup;
    }

    long version;
    v = ed_st_meta_get(f, "format_version");
    if (!v || s_parse_long(v, &version) != 0 || version < 1) {
        rc = ed_err_set(err, ED_EFORMAT, "%s: format_version '%s' is not a positive integer", path,
                        v ? v : "");
        goto cleanup;
    }
    if (version > ED_MODEL_FORMAT_VERSION) {
        rc = ed_err_set(err, ED_EVERSION,
                        "%s: format_version %ld is newer than this build supports (%d): upgrade "
                        "edistill",
                        path, version, ED_MODEL_FORMAT_VERSION);
        goto cleanup;
    }

    ed_arch arch;
    v = ed_st_meta_get(f, "arch");
    if (!v) {
        rc = ed_err_set(err, ED_EFORMAT, "%s: metadata has no arch", path);
        goto cleanup;
    }
    if (ed_arch_parse(v, &arch, err) != ED_OK) {
        ed_err_wrap(err, "%s: metadata arch", path);
        rc = err->code = ED_EFORMAT;
        goto cleanup;
    }

    long classes;
    v = ed_st_meta_get(f, "classes");
    if (!v || s_parse_long(v, &classes) != 0) {
        rc = ed_err_set(err, ED_EFORMAT, "%s: classes '%s' is not an integer", path, v ? v : "");
        goto cleanup;
    }
    if (classes != ed_arch_out(&arch)) {
        rc = ed_err_set(err, ED_ESHAPE, "%s: classes is %ld but the arch's last width is %d", path,
                        classes, ed_arch_out(&arch));
        goto cleanup;
    }

    ed_model_meta md;
    memset(&md, 0, sizeof md);
    static const char *const float_keys[2] = {"input_scale", "input_offset"};
    float *float_dst[2] = {&md.input_scale, &md.input_offset};
    for (int i = 0; i < 2; i++) {
        v = ed_st_meta_get(f, float_keys[i]);
        if (!v || s_parse_float(v, float_dst[i]) != 0) {
            rc = ed_err_set(err, ED_EFORMAT, "%s: %s '%s' is not a finite number", path,
                            float_keys[i], v ? v : "(missing)");
            goto cleanup;
        }
    }
    v = ed_st_meta_get(f, "member");
    if ((rc = s_copy_string(path, "member", v ? v : "", md.member, sizeof md.member, err)) < 0)
        goto cleanup;
    v = ed_st_meta_get(f, "provenance");
    if ((rc = s_copy_string(path, "provenance", v && *v ? v : "{}", md.provenance,
                            sizeof md.provenance, err)) < 0)
        goto cleanup;

    uint64_t file_fp;
    v = ed_st_meta_get(f, "fingerprint");
    if (!v || s_parse_fingerprint(v, &file_fp) != 0) {
        rc = ed_err_set(err, ED_EFORMAT, "%s: fingerprint '%s' is not fnv1a64:<16 hex digits>",
                        path, v ? v : "(missing)");
        goto cleanup;
    }

    /* Check every tensor against the arch before allocating anything of the arch's size. */
    ed_st_tensor t[2 * ED_MLP_MAX_LAYERS];
    for (int l = 0; l < arch.n_layers; l++) {
        char name[32];
        int64_t wshape[2] = {arch.widths[l + 1], arch.widths[l]};
        s_tensor_name(name, sizeof name, l, 0);
        if ((rc = s_check_tensor(f, path, name, 2, wshape, &t[2 * l], err)) < 0)
            goto cleanup;
        s_tensor_name(name, sizeof name, l, 1);
        if ((rc = s_check_tensor(f, path, name, 1, wshape, &t[2 * l + 1], err)) < 0)
            goto cleanup;
    }
    if (ed_st_tensor_count(f) != 2 * arch.n_layers) {
        rc = ed_err_set(err, ED_EFORMAT,
                        "%s: has %d tensors, arch %s needs exactly %d (layers.{l}.weight/bias)",
                        path, ed_st_tensor_count(f), ed_st_meta_get(f, "arch"), 2 * arch.n_layers);
        goto cleanup;
    }

    m = ed_mlp_new(&arch);
    if (!m) {
        rc = ed_err_set(err, ED_ENOMEM, "%s: out of memory for the model", path);
        goto cleanup;
    }
    for (int l = 0; l < arch.n_layers; l++) {
        memcpy(m->W[l], t[2 * l].data, t[2 * l].nbytes);
        memcpy(m->b[l], t[2 * l + 1].data, t[2 * l + 1].nbytes);
    }

    uint64_t h = s_model_fingerprint(m);
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
    md.fingerprint = h;
    if (meta)
        *meta = md;
    *out = m;
    m = NULL;

cleanup:
    ed_mlp_destroy(&m);
    ed_st_close(&f);
    return rc;
}

int ed_model_load(const char *path, ed_mlp **out, ed_model_meta *meta, ed_err *err)
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
