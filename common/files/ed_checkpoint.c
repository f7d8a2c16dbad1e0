/*
 * ed_checkpoint: training checkpoints as safetensors (see ed_checkpoint.h for the file layout).
 *
 * The object keeps the config and the state as cJSON trees; tensors are borrowed pointers when
 * writing and point into the open ed_st_file when reading. Every number that must come back
 * bit-exact (reals, RNG words, 64-bit counters) travels as a hex or decimal string, never as a JSON
 * number.
 */
#include "ed_checkpoint.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ed_hash.h"
#include "ed_log.h"
#include "ed_safetensors.h"

struct ed_checkpoint {
    cJSON *config;     /* JSON object */
    char *config_text; /* its unformatted text (what the checksum covers when read) */
    cJSON *state;      /* {"tensors": [...], "ints": {}, "reals": {}, "rngs": {}} */
    int n_tensors;
    const char *names[ED_CHECKPOINT_MAX_TENSORS]; /* point into state's "tensors" array */
    const void *data[ED_CHECKPOINT_MAX_TENSORS];  /* writing: borrowed; reading: into file */
    size_t counts[ED_CHECKPOINT_MAX_TENSORS];
    ed_st_file *file; /* reading: the open file */
};

/* ---- construction --------------------------------------------------------------------------- */

static ed_checkpoint *s_alloc(ed_err *err)
{
    ed_checkpoint *c = calloc(1, sizeof *c);
    if (!c) {
        ed_err_set(err, ED_ENOMEM, "out of memory");
        return NULL;
    }
    return c;
}

ed_checkpoint *ed_checkpoint_new(const char *config_json, ed_err *err)
{
    ed_checkpoint *c = s_alloc(err);
    if (!c)
        return NULL;
    c->config = config_json ? cJSON_Parse(config_json) : NULL;
    if (!cJSON_IsObject(c->config)) {
        ed_err_set(err, ED_EINVAL, "checkpoint config is not a JSON object");
        goto fail;
    }
    c->config_text = cJSON_PrintUnformatted(c->config);
    c->state = cJSON_CreateObject();
    if (!c->config_text || !c->state || !cJSON_AddArrayToObject(c->state, "tensors") ||
        !cJSON_AddObjectToObject(c->state, "ints") || !cJSON_AddObjectToObject(c->state, "reals") ||
        !cJSON_AddObjectToObject(c->state, "rngs")) {
        ed_err_set(err, ED_ENOMEM, "out of memory");
        goto fail;
    }
    return c;
fail:
    ed_checkpoint_destroy(&c);
    return NULL;
}

void ed_checkpoint_destroy(ed_checkpoint **pc)
{
    if (!pc || !*pc)
        return;
    ed_checkpoint *c = *pc;
    cJSON_Delete(c->config);
    cJSON_Delete(c->state);
    free(c->config_text);
    ed_st_close(&c->file);
    free(c);
    *pc = NULL;
}

int ed_checkpoint_put_tensor(ed_checkpoint *c, const char *name, const float *data, size_t n,
                             ed_err *err)
{
    if (c->n_tensors >= ED_CHECKPOINT_MAX_TENSORS)
        return ed_err_set(err, ED_EINVAL, "checkpoint: more than %d tensors",
                          ED_CHECKPOINT_MAX_TENSORS);
    for (int i = 0; i < c->n_tensors; i++)
        if (!strcmp(c->names[i], name))
            return ed_err_set(err, ED_EINVAL, "checkpoint: tensor %s put twice", name);
    cJSON *list = cJSON_GetObjectItemCaseSensitive(c->state, "tensors");
    cJSON *item = cJSON_CreateString(name);
    if (!item || !cJSON_AddItemToArray(list, item)) {
        cJSON_Delete(item);
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    }
    c->names[c->n_tensors] = item->valuestring;
    c->data[c->n_tensors] = data;
    c->counts[c->n_tensors] = n;
    c->n_tensors++;
    return 0;
}

static int s_put_string(ed_checkpoint *c, const char *group, const char *key, const char *value,
                        ed_err *err)
{
    cJSON *obj = cJSON_GetObjectItemCaseSensitive(c->state, group);
    cJSON *item = cJSON_CreateString(value);
    if (!item)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    if (cJSON_GetObjectItemCaseSensitive(obj, key)) {
        if (cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item))
            return 0;
        cJSON_Delete(item);
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    }
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    }
    return 0;
}

int ed_checkpoint_put_int(ed_checkpoint *c, const char *key, int64_t value, ed_err *err)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, value);
    return s_put_string(c, "ints", key, text, err);
}

int ed_checkpoint_put_real(ed_checkpoint *c, const char *key, double value, ed_err *err)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    char text[32];
    snprintf(text, sizeof text, "0x%016" PRIx64, bits);
    return s_put_string(c, "reals", key, text, err);
}

int ed_checkpoint_put_rng(ed_checkpoint *c, const char *key, const ed_rng *rng, ed_err *err)
{
    char text[4 * 16 + 1];
    for (int i = 0; i < 4; i++)
        snprintf(text + 16 * i, sizeof text - 16 * (size_t)i, "%016" PRIx64, rng->s[i]);
    return s_put_string(c, "rngs", key, text, err);
}

/* ---- writing -------------------------------------------------------------------------------- */

static uint64_t s_checksum(const ed_checkpoint *c, const char *config_text, const char *state_text)
{
    uint64_t h = ED_FNV1A64_INIT;
    for (int i = 0; i < c->n_tensors; i++)
        h = ed_fnv1a64(h, c->data[i], c->counts[i] * sizeof(float));
    h = ed_fnv1a64(h, config_text, strlen(config_text));
    return ed_fnv1a64(h, state_text, strlen(state_text));
}

int ed_checkpoint_write(const ed_checkpoint *c, const char *path, ed_err *err)
{
    char *state_text = cJSON_PrintUnformatted(c->state);
    if (!state_text)
        return ed_err_set(err, ED_ENOMEM, "out of memory");
    char version[16], checksum[32];
    snprintf(version, sizeof version, "%d", ED_CHECKPOINT_FORMAT_VERSION);
    snprintf(checksum, sizeof checksum, "fnv1a64:%016" PRIx64,
             s_checksum(c, c->config_text, state_text));
    const ed_st_meta meta[] = {
        {"format", ED_CHECKPOINT_FORMAT}, {"format_version", version},
        {"config", c->config_text},       {"state", state_text},
        {"checksum", checksum},
    };
    ed_st_tensor tensors[ED_CHECKPOINT_MAX_TENSORS];
    for (int i = 0; i < c->n_tensors; i++)
        tensors[i] = (ed_st_tensor){.name = c->names[i],
                                    .dtype = "F32",
                                    .ndim = 1,
                                    .shape = {(int64_t)c->counts[i]},
                                    .data = c->data[i],
                                    .nbytes = c->counts[i] * sizeof(float)};
    int rc =
        ed_st_write(path, tensors, c->n_tensors, meta, (int)(sizeof meta / sizeof meta[0]), err);
    free(state_text);
    return rc;
}

/* ---- reading -------------------------------------------------------------------------------- */

ed_checkpoint *ed_checkpoint_read(const char *path, ed_err *err)
{
    ed_checkpoint *c = s_alloc(err);
    if (!c)
        return NULL;
    c->file = ed_st_open(path, err);
    if (!c->file)
        goto fail;
    const char *format = ed_st_meta_get(c->file, "format");
    if (!format || strcmp(format, ED_CHECKPOINT_FORMAT)) {
        ed_err_set(err, ED_EFORMAT,
                   "%s: not an edistill checkpoint (format \"%s\", expected \"%s\")", path,
                   format ? format : "(none)", ED_CHECKPOINT_FORMAT);
        goto fail;
    }
    const char *version = ed_st_meta_get(c->file, "format_version");
    char *end = NULL;
    long v = version ? strtol(version, &end, 10) : 0;
    if (!version || *end || v < 1) {
        ed_err_set(err, ED_EFORMAT, "%s: bad format_version \"%s\"", path,
                   version ? version : "(none)");
        goto fail;
    }
    if (v > ED_CHECKPOINT_FORMAT_VERSION) {
        ed_err_set(err, ED_EVERSION,
                   "%s: checkpoint format version %ld is newer than this build "
                   "understands (%d): resume with a newer edistill",
                   path, v, ED_CHECKPOINT_FORMAT_VERSION);
        goto fail;
    }
    const char *config = ed_st_meta_get(c->file, "config");
    const char *state = ed_st_meta_get(c->file, "state");
    const char *checksum = ed_st_meta_get(c->file, "checksum");
    if (!config || !state || !checksum) {
        ed_err_set(err, ED_EFORMAT, "%s: metadata \"%s\" missing", path,
                   !config  ? "config"
                   : !state ? "state"
                            : "checksum");
        goto fail;
    }
    c->config = cJSON_Parse(config);
    c->config_text = strdup(config);
    c->state = cJSON_Parse(state);
    if (!c->config_text) {
        ed_err_set(err, ED_ENOMEM, "out of memory");
        goto fail;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(c->state, "tensors");
    if (!cJSON_IsObject(c->config) || !cJSON_IsObject(c->state) || !cJSON_IsArray(list) ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(c->state, "ints")) ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(c->state, "reals")) ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(c->state, "rngs"))) {
        ed_err_set(err, ED_EFORMAT, "%s: malformed config or state metadata", path);
        goto fail;
    }
    int n = cJSON_GetArraySize(list);
    if (n > ED_CHECKPOINT_MAX_TENSORS || n != ed_st_tensor_count(c->file)) {
        ed_err_set(err, ED_EFORMAT, "%s: the state lists %d tensors, the file holds %d", path, n,
                   ed_st_tensor_count(c->file));
        goto fail;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        ed_st_tensor t;
        if (!cJSON_IsString(item) || ed_st_find(c->file, item->valuestring, &t) ||
            strcmp(t.dtype, "F32") || t.ndim != 1) {
            ed_err_set(err, ED_EFORMAT, "%s: listed tensor %s missing or not a flat F32 block",
                       path, cJSON_IsString(item) ? item->valuestring : "(not a string)");
            goto fail;
        }
        c->names[c->n_tensors] = item->valuestring;
        c->data[c->n_tensors] = t.data; /* not necessarily aligned: read with memcpy only */
        c->counts[c->n_tensors] = t.nbytes / sizeof(float);
        c->n_tensors++;
    }
    char expect[32];
    snprintf(expect, sizeof expect, "fnv1a64:%016" PRIx64, s_checksum(c, config, state));
    if (strcmp(expect, checksum)) {
        ed_err_set(err, ED_ECHECKSUM,
                   "%s: checksum mismatch (file says %s, contents hash to %s): "
                   "the checkpoint is corrupted",
                   path, checksum, expect);
        goto fail;
    }
    return c;
fail:
    ed_checkpoint_destroy(&c);
    return NULL;
}

const char *ed_checkpoint_config(const ed_checkpoint *c)
{
    return c->config_text;
}

static void s_value_text(const cJSON *v, char *buf, size_t size)
{
    char *text = v ? cJSON_PrintUnformatted(v) : NULL;
    snprintf(buf, size, "%s", v ? (text ? text : "?") : "(absent)");
    free(text);
}

static int s_diff(const char *key, const cJSON *old, const cJSON *now, ed_err *err)
{
    char a[200], b[200];
    s_value_text(old, a, sizeof a);
    s_value_text(now, b, sizeof b);
    return ed_err_set(err, ED_EINVAL,
                      "config field \"%s\" differs: the checkpoint has %s, this run has %s", key, a,
                      b);
}

int ed_checkpoint_match_config(const ed_checkpoint *c, const char *config_json, ed_err *err)
{
    cJSON *now = cJSON_Parse(config_json);
    if (!cJSON_IsObject(now)) {
        cJSON_Delete(now);
        return ed_err_set(err, ED_EINVAL, "checkpoint config to match is not a JSON object");
    }
    int rc = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, c->config)
    {
        const cJSON *other = cJSON_GetObjectItemCaseSensitive(now, item->string);
        if (!other || !cJSON_Compare(item, other, 1)) {
            rc = s_diff(item->string, item, other, err);
            break;
        }
    }
    if (!rc) {
        cJSON_ArrayForEach(item, now)
        {
            if (!cJSON_GetObjectItemCaseSensitive(c->config, item->string)) {
                rc = s_diff(item->string, NULL, item, err);
                break;
            }
        }
    }
    cJSON_Delete(now);
    return rc;
}

int ed_checkpoint_has_tensor(const ed_checkpoint *c, const char *name)
{
    for (int i = 0; i < c->n_tensors; i++)
        if (!strcmp(c->names[i], name))
            return 1;
    return 0;
}

int ed_checkpoint_get_tensor(const ed_checkpoint *c, const char *name, float *out, size_t n,
                             ed_err *err)
{
    for (int i = 0; i < c->n_tensors; i++) {
        if (strcmp(c->names[i], name))
            continue;
        if (c->counts[i] != n)
            return ed_err_set(err, ED_ESHAPE, "checkpoint tensor %s has %zu values, expected %zu",
                              name, c->counts[i], n);
        memcpy(out, c->data[i], n * sizeof(float));
        return 0;
    }
    return ed_err_set(err, ED_ENOTFOUND, "checkpoint has no tensor %s", name);
}

static int s_get_string(const ed_checkpoint *c, const char *group, const char *key,
                        const char **out, ed_err *err)
{
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c->state, group), key);
    if (!v)
        return ed_err_set(err, ED_ENOTFOUND, "checkpoint state has no %s \"%s\"", group, key);
    if (!cJSON_IsString(v))
        return ed_err_set(err, ED_EFORMAT, "checkpoint state %s \"%s\" is not a string", group,
                          key);
    *out = v->valuestring;
    return 0;
}

/* Parses exactly `digits` hex digits (digits <= 16) at text into *out. */
static int s_hex(const char *text, int digits, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < digits; i++) {
        char ch = text[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

int ed_checkpoint_get_int(const ed_checkpoint *c, const char *key, int64_t *out, ed_err *err)
{
    const char *text = NULL;
    int rc = s_get_string(c, "ints", key, &text, err);
    if (rc)
        return rc;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end)
        return ed_err_set(err, ED_EFORMAT, "checkpoint int \"%s\" is not an integer: \"%s\"", key,
                          text);
    *out = (int64_t)v;
    return 0;
}

int ed_checkpoint_get_ints(const ed_checkpoint *c, const char *const *keys, int n, int64_t *out,
                           ed_err *err)
{
    int rc = 0;
    for (int i = 0; !rc && i < n; i++)
        rc = ed_checkpoint_get_int(c, keys[i], &out[i], err);
    return rc;
}

int ed_checkpoint_get_real(const ed_checkpoint *c, const char *key, double *out, ed_err *err)
{
    const char *text = NULL;
    int rc = s_get_string(c, "reals", key, &text, err);
    if (rc)
        return rc;
    uint64_t bits;
    if (strlen(text) != 18 || text[0] != '0' || text[1] != 'x' || s_hex(text + 2, 16, &bits))
        return ed_err_set(err, ED_EFORMAT,
                          "checkpoint real \"%s\" is not 0x + 16 hex digits: \"%s\"", key, text);
    memcpy(out, &bits, sizeof bits);
    return 0;
}

int ed_checkpoint_get_rng(const ed_checkpoint *c, const char *key, ed_rng *out, ed_err *err)
{
    const char *text = NULL;
    int rc = s_get_string(c, "rngs", key, &text, err);
    if (rc)
        return rc;
    ed_rng r;
    if (strlen(text) != 64)
        return ed_err_set(err, ED_EFORMAT, "checkpoint rng \"%s\" is not 64 hex digits", key);
    for (int i = 0; i < 4; i++)
        if (s_hex(text + 16 * i, 16, &r.s[i]))
            return ed_err_set(err, ED_EFORMAT, "checkpoint rng \"%s\" is not 64 hex digits", key);
    *out = r;
    return 0;
}

/* ---- trainer state -------------------------------------------------------------------------- */

int ed_checkpoint_put_trainer(ed_checkpoint *c, const ed_trainer *t, ed_err *err)
{
    const ed_optim *o = t->opt;
    size_t n = t->model->n_params;
    int rc = ed_checkpoint_put_tensor(c, "params", t->model->params, n, err);
    if (!rc && o->v) {
        rc = ed_checkpoint_put_tensor(c, "adam_m", o->m, n, err);
        if (!rc)
            rc = ed_checkpoint_put_tensor(c, "adam_v", o->v, n, err);
    } else if (!rc) {
        rc = ed_checkpoint_put_tensor(c, "sgd_momentum", o->m, n, err);
    }
    if (!rc && t->model->n_state)
        rc = ed_checkpoint_put_tensor(c, "bn_state", t->model->state, t->model->n_state, err);
    if (!rc)
        rc = ed_checkpoint_put_int(c, "optim.t", o->t, err);
    if (!rc)
        rc = ed_checkpoint_put_rng(c, "trainer.dropout", &t->rng, err);
    return rc;
}

int ed_checkpoint_get_trainer(const ed_checkpoint *c, ed_trainer *t, ed_err *err)
{
    ed_optim *o = t->opt;
    size_t n = t->model->n_params;
    bool adam = o->v != NULL;
    if (ed_checkpoint_has_tensor(c, adam ? "adam_m" : "sgd_momentum") == 0 ||
        ed_checkpoint_has_tensor(c, adam ? "sgd_momentum" : "adam_m"))
        return ed_err_set(err, ED_EFORMAT, "checkpoint holds %s state, this run uses %s",
                          adam ? "SGD" : "Adam", adam ? "Adam" : "SGD");
    int rc = ed_checkpoint_get_tensor(c, "params", t->model->params, n, err);
    if (!rc)
        rc = ed_checkpoint_get_tensor(c, adam ? "adam_m" : "sgd_momentum", o->m, n, err);
    if (!rc && adam)
        rc = ed_checkpoint_get_tensor(c, "adam_v", o->v, n, err);
    if (!rc && t->model->n_state)
        rc = ed_checkpoint_get_tensor(c, "bn_state", t->model->state, t->model->n_state, err);
    int64_t steps = 0;
    if (!rc)
        rc = ed_checkpoint_get_int(c, "optim.t", &steps, err);
    if (!rc && steps < 0)
        rc = ed_err_set(err, ED_EFORMAT, "checkpoint optim.t is negative (%" PRId64 ")", steps);
    if (!rc)
        o->t = (long)steps;
    if (!rc)
        rc = ed_checkpoint_get_rng(c, "trainer.dropout", &t->rng, err);
    return rc;
}

int ed_checkpoint_open_resume(const char *path, bool resume, bool resume_if_present,
                              ed_checkpoint **out, ed_err *err)
{
    *out = NULL;
    const bool want_resume = resume || resume_if_present;
    if (want_resume && !path)
        return ed_err_set(err, ED_EINVAL, "--resume needs --checkpoint FILE");
    if (!path)
        return 0;
    struct stat sb;
    bool exists = stat(path, &sb) == 0;
    if (exists && !want_resume)
        return ed_err_set(err, ED_EINVAL,
                          "%s already exists: pass --resume to continue that run, "
                          "or remove it to start over",
                          path);
    if (!exists && resume && !resume_if_present)
        return ed_err_set(err, ED_ENOTFOUND,
                          "--resume: no checkpoint at %s (use "
                          "--resume-if-present to start a new run when there is none)",
                          path);
    if (exists) {
        *out = ed_checkpoint_read(path, err);
        if (!*out)
            return ed_err_wrap(err, "cannot resume");
    } else if (want_resume) {
        ed_log_info("no checkpoint at %s yet: starting a new run", path);
    }
    return 0;
}
