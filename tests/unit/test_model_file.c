/*
 * test_model_file: edistill model files end to end: bit-exact save/load round trip, readability by
 * an independent Python reader (tests/check_safetensors.py), every documented way a file can be
 * wrong (truncation, corruption, wrong magic or version, bad header, shapes, missing tensors,
 * offsets) refused with the right code and a message naming the path, and the atomic-write and
 * mkdir helpers of ed_fs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ed_fs.h"
#include "ed_model_file.h"
#include "ed_rng.h"
#include "ed_safetensors.h"
#include "tu.h"

#define S_CHECK_SCRIPT EDISTILL_TEST_DATA "/../check_safetensors.py"
#define S_PYTHON "/usr/bin/python3"

/* ---- helpers ----------------------------------------------------------------------------------
 */

static ed_net *s_make_model(const char *arch_text, uint64_t seed)
{
    ed_stack a;
    ed_err err;
    if (ed_stack_parse(arch_text, &a, &err) != ED_OK)
        fail_msg("%s", err.msg);
    ed_net *m = ed_net_new(&a);
    assert_non_null(m);
    ed_rng r;
    ed_rng_seed(&r, seed);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] = ed_rng_normal(&r);
    return m;
}

static ed_model_meta s_meta(void)
{
    ed_model_meta md;
    memset(&md, 0, sizeof md);
    snprintf(md.member, sizeof md.member, "member-3");
    md.input_scale = 1.0f / 255.0f;
    md.input_offset = -0.1307f;
    snprintf(md.provenance, sizeof md.provenance,
             "{\"command\":\"teacher --seed 7\",\"seed\":7,\"epochs\":3}");
    return md;
}

static void s_expect_err(int rc, const ed_err *err, int code, const char *n1, const char *n2)
{
    if (rc != code || err->code != code)
        fprintf(stderr, "expected %s, got rc %s / err %s: %s\n", ed_err_name(code), ed_err_name(rc),
                ed_err_name(err->code), err->msg);
    assert_int_equal(rc, code);
    assert_int_equal(err->code, code);
    if (n1 && !strstr(err->msg, n1))
        fail_msg("message '%s' lacks '%s'", err->msg, n1);
    if (n2 && !strstr(err->msg, n2))
        fail_msg("message '%s' lacks '%s'", err->msg, n2);
}

/* Loads `path`, expecting failure with `code` and the path (plus an optional needle) in the
 * message, and no model handed out. */
static void s_expect_load_err(const char *path, int code, const char *needle)
{
    ed_net *m = (ed_net *)(uintptr_t)1; /* must be reset to NULL */
    ed_model_meta md;
    ed_err err;
    ed_err_clear(&err);
    int rc = ed_model_load(path, &m, &md, &err);
    s_expect_err(rc, &err, code, path, needle);
    assert_null(m);
    /* Same code without an error record. */
    assert_int_equal(ed_model_load(path, &m, NULL, NULL), code);
    assert_null(m);
}

/* Metadata override: value NULL removes the key. */
typedef struct {
    const char *key;
    const char *value;
} s_kv;

/* Writes m as a model file through ed_st_write directly, with metadata overrides and optionally
 * one tensor left out (`skip`) or one extra tensor added (`extra`). */
static void s_write_custom(const char *path, const ed_net *m, const s_kv *over, int n_over,
                           const char *skip, const char *extra)
{
    const ed_arch *a = &m->arch.mlp_arch;
    char arch[256], classes[16], fp[32];
    ed_arch_format(a, arch, sizeof arch);
    snprintf(classes, sizeof classes, "%d", ed_arch_out(a));
    ed_fingerprint_format(ed_fingerprint(m->params, m->n_params), fp, sizeof fp);
    ed_st_meta md[32] = {
        {"format", "edistill-mlp"}, {"format_version", "1"}, {"arch", arch},  {"classes", classes},
        {"input_scale", "1"},       {"input_offset", "0"},   {"member", "m"}, {"provenance", "{}"},
        {"fingerprint", fp},
    };
    int n_md = 9;
    for (int i = 0; i < n_over; i++) {
        int j = 0;
        while (j < n_md && strcmp(md[j].key, over[i].key) != 0)
            j++;
        if (j == n_md) {
            md[n_md++] = (ed_st_meta){over[i].key, over[i].value};
        } else if (over[i].value) {
            md[j].value = over[i].value;
        } else {
            memmove(&md[j], &md[j + 1], (size_t)(n_md - j - 1) * sizeof md[0]);
            n_md--;
        }
    }
    char names[2 * ED_MLP_MAX_LAYERS][32];
    ed_st_tensor t[2 * ED_MLP_MAX_LAYERS + 1];
    int n = 0;
    for (int l = 0; l < a->n_layers; l++) {
        for (int k = 0; k < 2; k++) {
            snprintf(names[2 * l + k], sizeof names[0], "layers.%d.%s", l, k ? "bias" : "weight");
            if (skip && strcmp(skip, names[2 * l + k]) == 0)
                continue;
            int64_t out = a->widths[l + 1], in = a->widths[l];
            t[n++] = k ? (ed_st_tensor){names[2 * l + k],           "F32", 1, {out}, m->mlp->b[l],
                                        (size_t)out * sizeof(float)}
                       : (ed_st_tensor){
                             names[2 * l + k], "F32",        2,
                             {out, in},        m->mlp->W[l], (size_t)(out * in) * sizeof(float)};
        }
    }
    if (extra)
        t[n++] = (ed_st_tensor){extra, "F32", 1, {1}, m->params, sizeof(float)};
    ed_err err;
    if (ed_st_write(path, t, n, md, n_md, &err) != ED_OK)
        fail_msg("%s", err.msg);
}

/* Parses the file's JSON header, lets `edit` change it, and writes the file back with the same
 * data area (header re-padded to a multiple of 8). */
static void s_edit_header(const char *path, void (*edit)(cJSON *root, size_t data_size))
{
    size_t n = 0;
    unsigned char *raw = tu_read_file(path, &n);
    assert_non_null(raw);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++)
        hl |= (uint64_t)raw[i] << (8 * i);
    cJSON *root = cJSON_ParseWithLength((const char *)raw + 8, (size_t)hl);
    assert_non_null(root);
    size_t data_size = n - 8 - (size_t)hl;
    edit(root, data_size);
    char *h = cJSON_PrintUnformatted(root);
    assert_non_null(h);
    size_t len = strlen(h), padded = len + (8 - len % 8) % 8;
    unsigned char *out = malloc(8 + padded + data_size);
    assert_non_null(out);
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(out + 8, h, len);
    memset(out + 8 + len, ' ', padded - len);
    memcpy(out + 8 + padded, raw + 8 + hl, data_size);
    assert_int_equal(tu_write_file(path, out, 8 + padded + data_size), 0);
    free(out);
    cJSON_free(h);
    cJSON_Delete(root);
    free(raw);
}

static void s_set_offsets(cJSON *root, const char *tensor, double begin, double end)
{
    cJSON *t = cJSON_GetObjectItemCaseSensitive(root, tensor);
    assert_non_null(t);
    cJSON *offs = cJSON_CreateArray();
    cJSON_AddItemToArray(offs, cJSON_CreateNumber(begin));
    cJSON_AddItemToArray(offs, cJSON_CreateNumber(end));
    cJSON_ReplaceItemInObjectCaseSensitive(t, "data_offsets", offs);
}

/* Number of "<base>.tmp.*" files next to path. */
static int s_count_temps(const char *path)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    assert_non_null(slash);
    *slash = '\0';
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s.tmp.", slash + 1);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            count++;
    closedir(d);
    return count;
}

static int s_have_numpy(void)
{
    static int have = -1;
    if (have < 0)
        have = access(S_PYTHON, X_OK) == 0 &&
               system(S_PYTHON " -c 'import numpy' >/dev/null 2>&1") == 0;
    return have;
}

/* Runs the Python checker on path; returns its exit status and copies its stdout into out. */
static int s_run_checker(const char *path, char *out, size_t size)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, S_PYTHON " '%s' '%s' 2>&1", S_CHECK_SCRIPT, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, size - 1, p);
    out[got] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* ---- round trip ---------------------------------------------------------------------------------
 */

static void test_round_trip(void **state)
{
    (void)state;
    char *path = tu_temp_path(".safetensors");
    ed_net *m = s_make_model("13,7,5,4", 42);
    ed_model_meta md = s_meta();
    ed_err err;
    if (ed_model_save(path, m, &md, &err) != ED_OK)
        fail_msg("%s", err.msg);
    uint64_t fp = ed_fingerprint(m->params, m->n_params);
    assert_true(md.fingerprint == fp);
    assert_int_equal(s_count_temps(path), 0);

    ed_net *g = NULL;
    ed_model_meta gm;
    memset(&gm, 0xab, sizeof gm);
    if (ed_model_load(path, &g, &gm, &err) != ED_OK)
        fail_msg("%s", err.msg);
    assert_non_null(g);
    assert_true(ed_stack_equal(&g->arch, &m->arch));
    assert_int_equal(g->n_params, m->n_params);
    assert_memory_equal(g->params, m->params, m->n_params * sizeof(float));
    assert_string_equal(gm.member, md.member);
    assert_string_equal(gm.provenance, md.provenance);
    assert_memory_equal(&gm.input_scale, &md.input_scale, sizeof(float)); /* bit-exact */
    assert_memory_equal(&gm.input_offset, &md.input_offset, sizeof(float));
    assert_true(gm.fingerprint == fp);
    /* Views point into the loaded block with the documented layout. */
    assert_ptr_equal(g->W[0], g->params);
    assert_ptr_equal(g->b[0], g->params + 13 * 7);

    char fs[32];
    ed_fingerprint_format(fp, fs, sizeof fs);
    assert_int_equal(strlen(fs), 24);
    assert_memory_equal(fs, "fnv1a64:", 8);

    /* Saving again over the existing file works and keeps the content identical. */
    size_t n1, n2;
    unsigned char *a = tu_read_file(path, &n1);
    if (ed_model_save(path, g, &gm, &err) != ED_OK)
        fail_msg("%s", err.msg);
    unsigned char *b = tu_read_file(path, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    free(a);
    free(b);

    ed_net_destroy(&g);
    assert_null(g);
    ed_net_destroy(&m);
    unlink(path);
    free(path);
}

/* A CNN with batch norm: parameters and running statistics round-trip bit-exactly, the file is
 * format_version 2 with PyTorch-shaped tensors, saving the loaded model gives the same bytes, and
 * the loaded model's logits are bit-identical (test_bad_metadata: a stack under version 1 is
 * refused). */
static void test_round_trip_cnn(void **state)
{
    (void)state;
    char *path = tu_temp_path(".safetensors");
    ed_net *m = s_make_model("2x9x9:conv4k3p1,bn,relu,maxpool2,conv3k3s2p1,bn,relu,gap,dense5", 77);
    ed_rng r;
    ed_rng_seed(&r, 78);
    for (size_t i = 0; i < m->n_state; i++)
        m->state[i] = 0.5f + ed_rng_uniform(&r); /* positive, so the variances are valid */
    ed_model_meta md = s_meta();
    ed_err err;
    if (ed_model_save(path, m, &md, &err) != ED_OK)
        fail_msg("%s", err.msg);
    assert_true(md.fingerprint == ed_model_fingerprint(m));
    ed_st_file *f = ed_st_open(path, &err);
    assert_non_null(f);
    assert_string_equal(ed_st_meta_get(f, "format_version"), "2");
    assert_non_null(strstr(ed_st_meta_get(f, "layers"), "\"type\":\"conv\""));
    ed_st_tensor t;
    assert_int_equal(ed_st_find(f, "layers.0.weight", &t), ED_OK);
    assert_int_equal(t.ndim, 4);
    assert_true(t.shape[0] == 4 && t.shape[1] == 2 && t.shape[2] == 3 && t.shape[3] == 3);
    assert_int_equal(ed_st_find(f, "layers.5.running_var", &t), ED_OK);
    assert_true(t.shape[0] == 3);
    assert_memory_equal(t.data, m->var[5], 3 * sizeof(float));
    ed_st_close(&f);

    ed_net *g = NULL;
    ed_model_meta gm;
    if (ed_model_load(path, &g, &gm, &err) != ED_OK)
        fail_msg("%s", err.msg);
    assert_true(ed_stack_equal(&g->arch, &m->arch));
    assert_memory_equal(g->params, m->params, m->n_params * sizeof(float));
    assert_memory_equal(g->state, m->state, m->n_state * sizeof(float));
    assert_true(gm.fingerprint == md.fingerprint);
    size_t n1, n2;
    unsigned char *a = tu_read_file(path, &n1);
    if (ed_model_save(path, g, &gm, &err) != ED_OK)
        fail_msg("%s", err.msg);
    unsigned char *b = tu_read_file(path, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    free(a);
    free(b);

    float x[3 * 162];
    for (int i = 0; i < 3 * 162; i++)
        x[i] = ed_rng_normal(&r);
    ed_net_ws *w1 = ed_net_ws_new(&m->arch, 3, false), *w2 = ed_net_ws_new(&g->arch, 3, false);
    const float *z1, *z2;
    assert_int_equal(ed_net_forward(m, w1, x, 3, false, NULL, &z1, &err), ED_OK);
    assert_int_equal(ed_net_forward(g, w2, x, 3, false, NULL, &z2, &err), ED_OK);
    assert_memory_equal(z1, z2, 15 * sizeof(float));
    ed_net_ws_destroy(&w1);
    ed_net_ws_destroy(&w2);

    ed_net_destroy(&g);
    ed_net_destroy(&m);
    unlink(path);
    free(path);
}

static void test_fingerprint_known_values(void **state)
{
    (void)state;
    /* FNV-1a 64 reference values: empty input is the offset basis; bytes 00 00 80 3f (1.0f). */
    assert_true(ed_fingerprint(NULL, 0) == 0xcbf29ce484222325ULL);
    uint64_t h = 0xcbf29ce484222325ULL;
    const unsigned char one[4] = {0x00, 0x00, 0x80, 0x3f};
    for (int i = 0; i < 4; i++) {
        h ^= one[i];
        h *= 0x100000001b3ULL;
    }
    float f = 1.0f;
    assert_true(ed_fingerprint(&f, 1) == h);
    char buf[32];
    ed_fingerprint_format(0x0123456789abcdefULL, buf, sizeof buf);
    assert_string_equal(buf, "fnv1a64:0123456789abcdef");
}

static void test_defaults_and_metadata_text(void **state)
{
    (void)state;
    char *path = tu_temp_path(".safetensors");
    ed_net *m = s_make_model("784,16,10", 1);
    ed_model_meta md;
    memset(&md, 0, sizeof md);
    md.input_scale = 0.00392156886f;
    ed_err err;
    if (ed_model_save(path, m, &md, &err) != ED_OK)
        fail_msg("%s", err.msg);
    ed_st_file *f = ed_st_open(path, &err);
    assert_non_null(f);
    assert_string_equal(ed_st_meta_get(f, "format"), "edistill-mlp");
    assert_string_equal(ed_st_meta_get(f, "format_version"), "1");
    assert_string_equal(ed_st_meta_get(f, "arch"), "784,16,10");
    assert_string_equal(ed_st_meta_get(f, "classes"), "10");
    assert_string_equal(ed_st_meta_get(f, "input_scale"), "0.00392156886");
    assert_string_equal(ed_st_meta_get(f, "input_offset"), "0");
    assert_string_equal(ed_st_meta_get(f, "member"), "");
    assert_string_equal(ed_st_meta_get(f, "provenance"), "{}");
    char fs[32];
    ed_fingerprint_format(md.fingerprint, fs, sizeof fs);
    assert_string_equal(ed_st_meta_get(f, "fingerprint"), fs);
    assert_int_equal(ed_st_tensor_count(f), 4);
    ed_st_tensor t;
    assert_int_equal(ed_st_find(f, "layers.1.weight", &t), ED_OK);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[0], 10);
    assert_int_equal(t.shape[1], 16);
    assert_memory_equal(t.data, m->mlp->W[1], 160 * sizeof(float));
    ed_st_close(&f);

    /* Invalid inputs to save. */
    md.input_scale = INFINITY;
    s_expect_err(ed_model_save(path, m, &md, &err), &err, ED_EINVAL, path, "input_scale");
    md.input_scale = 1.0f;
    snprintf(md.provenance, sizeof md.provenance, "not json");
    s_expect_err(ed_model_save(path, m, &md, &err), &err, ED_EINVAL, path, "provenance");
    snprintf(md.provenance, sizeof md.provenance, "{} trailing");
    s_expect_err(ed_model_save(path, m, &md, &err), &err, ED_EINVAL, path, "provenance");
    ed_net_destroy(&m);
    unlink(path);
    free(path);
}

/* ---- independent reader -----------------------------------------------------------------------
 */

static void test_python_reader(void **state)
{
    (void)state;
    if (!s_have_numpy()) {
        fprintf(stderr, "skipping: " S_PYTHON " with numpy not available\n");
        skip();
    }
    char *path = tu_temp_path(".safetensors");
    ed_net *m = s_make_model("20,9,9,3", 7);
    ed_model_meta md = s_meta();
    ed_err err;
    if (ed_model_save(path, m, &md, &err) != ED_OK)
        fail_msg("%s", err.msg);
    char out[2048];
    int st = s_run_checker(path, out, sizeof out);
    if (st != 0)
        fail_msg("check_safetensors.py exited %d: %s", st, out);
    if (!strstr(out, "arch 20,9,9,3"))
        fail_msg("checker output lacks the arch: %s", out);

    /* The checker must be able to fail: one flipped weight bit. */
    size_t n;
    unsigned char *raw = tu_read_file(path, &n);
    raw[n - 3] ^= 0x01;
    assert_int_equal(tu_write_file(path, raw, n), 0);
    st = s_run_checker(path, out, sizeof out);
    if (st == 0)
        fail_msg("check_safetensors.py accepted a corrupted file: %s", out);
    if (!strstr(out, "fingerprint mismatch"))
        fail_msg("checker did not report the fingerprint: %s", out);
    free(raw);
    ed_net_destroy(&m);
    unlink(path);
    free(path);
}

/* ---- corrupted files --------------------------------------------------------------------------
 */

static void test_truncated(void **state)
{
    (void)state;
    char *path = tu_temp_path(".safetensors");
    char *cut = tu_temp_path(".safetensors");
    ed_net *m = s_make_model("10,6,4", 3);
    ed_model_meta md = s_meta();
    ed_err err;
    if (ed_model_save(path, m, &md, &err) != ED_OK)
        fail_msg("%s", err.msg);
    size_t n;
    unsigned char *raw = tu_read_file(path, &n);
    assert_non_null(raw);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++)
        hl |= (uint64_t)raw[i] << (8 * i);
    size_t data = n - 8 - (size_t)hl;
    size_t lens[] = {0, 4, 8, 8 + (size_t)hl / 2, 8 + (size_t)hl + data / 2, n - 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        assert_int_equal(tu_write_file(cut, raw, lens[i]), 0);
        fprintf(stderr, "truncated to %zu of %zu bytes\n", lens[i], n);
        s_expect_load_err(cut, ED_ETRUNC, "truncated");
    }
    free(raw);
    ed_net_destroy(&m);
    unlink(path);
    unlink(cut);
    free(path);
    free(cut);
}

static void test_corrupted_weights(void **state)
{
    (void)state;
    char *path = tu_temp_path(".safetensors");
    ed_net *m = s_make_model("10,6,4", 4);
    ed_model_meta md = s_meta();
    ed_err err;
    if (ed_model_save(path, m, &md, &err) != ED_OK)
        fail_msg("%s", err.msg);
    size_t n;
    unsigned char *raw = tu_read_file(path, &n);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++)
        hl |= (uint64_t)raw[i] << (8 * i);
    raw[8 + hl + 17] ^= 0x20; /* a byte inside layers.0.weight */
    assert_int_equal(tu_write_file(path, raw, n), 0);
    s_expect_load_err(path, ED_ECHECKSUM, "fingerprint mismatch");
    free(raw);

    /* Right weights, wrong fingerprint in the metadata. */
    s_kv bad_fp[] = {{"fingerprint", "fnv1a64:0000000000000000"}};
    s_write_custom(path, m, bad_fp, 1, NULL, NULL);
    s_expect_load_err(path, ED_ECHECKSUM, "file says fnv1a64:0000000000000000");
    s_kv junk_fp[] = {{"fingerprint", "crc32:1234"}};
    s_write_custom(path, m, junk_fp, 1, NULL, NULL);
    s_expect_load_err(path, ED_EFORMAT, "fingerprint");
    s_kv no_fp[] = {{"fingerprint", NULL}};
    s_write_custom(path, m, no_fp, 1, NULL, NULL);
    s_expect_load_err(path, ED_EFORMAT, "fingerprint");

    /* The custom writer itself produces loadable files. */
    s_write_custom(path, m, NULL, 0, NULL, NULL);
    ed_net *g = NULL;
    if (ed_model_load(path, &g, NULL, &err) != ED_OK)
        fail_msg("%s", err.msg);
    ed_net_destroy(&g);
    ed_net_destroy(&m);
    unlink(path);
    free(path);
}

static void test_bad_metadata(void **state)
{
    (void)state;
    char *path = tu_temp_path(".safetensors");
    ed_net *m = s_make_model("10,6,4", 5);
    struct {
        s_kv kv;
        int code;
        const char *needle;
    } cases[] = {
        {{"format", "pickle"},
         ED_EFORMAT,
         "not an edistill model (format is 'pickle', expected 'edistill-mlp')"},
        {{"format", NULL}, ED_EFORMAT, "not an edistill model"},
        {{"format_version", "3"},
         ED_EVERSION,
         "format_version 3 is newer than this build supports (2): upgrade edistill"},
        {{"format_version", "one"}, ED_EFORMAT, "format_version"},
        {{"format_version", "0"}, ED_EFORMAT, "format_version"},
        {{"format_version", NULL}, ED_EFORMAT, "format_version"},
        {{"arch", "10,x,4"}, ED_EFORMAT, "arch"},
        {{"arch", NULL}, ED_EFORMAT, "arch"},
        {{"classes", "5"}, ED_ESHAPE, "classes is 5 but the arch's output has 4"},
        {{"arch", "10:dense6,relu,dense4"}, ED_EFORMAT, "format_version 1 holds MLPs only"},
        {{"classes", "four"}, ED_EFORMAT, "classes"},
        {{"input_scale", "nan"}, ED_EFORMAT, "input_scale"},
        {{"input_scale", "inf"}, ED_EFORMAT, "input_scale"},
        {{"input_scale", "0.5x"}, ED_EFORMAT, "input_scale"},
        {{"input_scale", ""}, ED_EFORMAT, "input_scale"},
        {{"input_offset", NULL}, ED_EFORMAT, "input_offset"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fprintf(stderr, "case %s=%s\n", cases[i].kv.key,
                cases[i].kv.value ? cases[i].kv.value : "(removed)");
        s_write_custom(path, m, &cases[i].kv, 1, NULL, NULL);
        s_expect_load_err(path, cases[i].code, cases[i].needle);
    }
    ed_net_destroy(&m);
    unlink(path);
    free(path);
}

static void s_edit_bias_overlaps(cJSON *root, size_t data_size)
{
    (void)data_size;
    s_set_offsets(root, "layers.0.bias", 0, 6 * 4); /* on top of layers.0.weight */
}

static void s_edit_bias_past_end(cJSON *root, size_t data_size)
{
    s_set_offsets(root, "layers.1.bias", (double)data_size, (double)data_size + 16);
}

static void s_edit_bias_wrong_size(cJSON *root, size_t data_size)
{
    (void)data_size;
    cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "layers.1.bias");
    cJSON *offs = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    double begin = cJSON_GetArrayItem(offs, 0)->valuedouble;
    s_set_offsets(root, "layers.1.bias", begin, begin + 12);
}

static void s_edit_not_object(cJSON *root, size_t data_size)
{
    (void)data_size;
    cJSON_ReplaceItemInObjectCaseSensitive(root, "layers.0.weight", cJSON_CreateString("x"));
}

static void s_edit_meta_number(cJSON *root, size_t data_size)
{
    (void)data_size;
    cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    cJSON_ReplaceItemInObjectCaseSensitive(md, "classes", cJSON_CreateNumber(4));
}

static void test_bad_header(void **state)
{
    (void)state;
    char *path = tu_temp_path(".safetensors");
    ed_net *m = s_make_model("10,6,4", 6);
    ed_model_meta md = s_meta();
    ed_err err;
    size_t n;
    unsigned char *raw;

    /* Header length field huge. */
    if (ed_model_save(path, m, &md, &err) != ED_OK)
        fail_msg("%s", err.msg);
    raw = tu_read_file(path, &n);
    memset(raw, 0xff, 8);
    assert_int_equal(tu_write_file(path, raw, n), 0);
    s_expect_load_err(path, ED_ETRUNC, "header says");
    /* A length pointing inside the data: the JSON then has trailing garbage. */
    raw[0] = (unsigned char)(n - 8 - 4);
    raw[1] = (unsigned char)((n - 8 - 4) >> 8);
    memset(raw + 2, 0, 6);
    assert_int_equal(tu_write_file(path, raw, n), 0);
    s_expect_load_err(path, ED_EFORMAT, "not valid JSON");
    free(raw);

    /* Invalid JSON. */
    if (ed_model_save(path, m, &md, &err) != ED_OK)
        fail_msg("%s", err.msg);
    raw = tu_read_file(path, &n);
    raw[8] = 'x';
    assert_int_equal(tu_write_file(path, raw, n), 0);
    s_expect_load_err(path, ED_EFORMAT, "header is not valid JSON");
    free(raw);

    struct {
        void (*edit)(cJSON *, size_t);
        int code;
        const char *needle;
    } edits[] = {
        {s_edit_bias_overlaps, ED_EFORMAT, "overlap"},
        {s_edit_bias_past_end, ED_ETRUNC, "layers.1.bias"},
        {s_edit_bias_wrong_size, ED_EFORMAT, "layers.1.bias"},
        {s_edit_not_object, ED_EFORMAT, "layers.0.weight"},
        {s_edit_meta_number, ED_EFORMAT, "metadata classes is not a string"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        if (ed_model_save(path, m, &md, &err) != ED_OK)
            fail_msg("%s", err.msg);
        s_edit_header(path, edits[i].edit);
        s_expect_load_err(path, edits[i].code, edits[i].needle);
    }
    ed_net_destroy(&m);
    unlink(path);
    free(path);
}

static void test_tensors_vs_arch(void **state)
{
    (void)state;
    char *path = tu_temp_path(".safetensors");
    ed_net *m = s_make_model("8,5,3", 8);

    /* Weights for 8,5,3 under an arch that says 8,6,3. */
    s_kv arch[] = {{"arch", "8,6,3"}};
    s_write_custom(path, m, arch, 1, NULL, NULL);
    s_expect_load_err(path, ED_ESHAPE,
                      "tensor layers.0.weight has shape (5, 8), arch needs (6, 8)");

    s_write_custom(path, m, NULL, 0, "layers.1.bias", NULL);
    s_expect_load_err(path, ED_EFORMAT, "missing tensor layers.1.bias");
    s_write_custom(path, m, NULL, 0, "layers.0.weight", NULL);
    s_expect_load_err(path, ED_EFORMAT, "missing tensor layers.0.weight");

    s_write_custom(path, m, NULL, 0, NULL, "layers.2.weight");
    s_expect_load_err(path, ED_EFORMAT, "has 5 tensors");

    /* Arch with a layer more than the file holds. */
    s_kv deeper[] = {{"arch", "8,5,3,3"}};
    s_write_custom(path, m, deeper, 1, NULL, NULL);
    s_expect_load_err(path, ED_EFORMAT, "missing tensor layers.2.weight");

    /* A 64-bit weight tensor in place of layers.1.bias. */
    double d3[3] = {0, 0, 0};
    char arch_s[] = "8,5,3";
    ed_st_tensor t[4] = {
        {"layers.0.weight", "F32", 2, {5, 8}, m->W[0], 160},
        {"layers.0.bias", "F32", 1, {5}, m->b[0], 20},
        {"layers.1.weight", "F32", 2, {3, 5}, m->mlp->W[1], 60},
        {"layers.1.bias", "F64", 1, {3}, d3, 24},
    };
    ed_st_meta md[] = {{"format", "edistill-mlp"},
                       {"format_version", "1"},
                       {"arch", arch_s},
                       {"classes", "3"},
                       {"input_scale", "1"},
                       {"input_offset", "0"},
                       {"fingerprint", "fnv1a64:0000000000000000"}};
    ed_err err;
    assert_int_equal(ed_st_write(path, t, 4, md, 7, &err), ED_OK);
    s_expect_load_err(path, ED_EFORMAT, "tensor layers.1.bias has dtype F64");

    ed_net_destroy(&m);
    unlink(path);
    s_expect_load_err(path, ED_ENOTFOUND, "No such file");
    free(path);
}

/* ---- atomic writes and directories ------------------------------------------------------------
 */

typedef struct {
    const char *text;
    int fail_code;
    int with_msg;
} s_writer;

static int s_write_text(FILE *f, void *ctx, ed_err *err)
{
    const s_writer *w = ctx;
    fputs(w->text, f);
    if (w->fail_code && w->with_msg)
        return ed_err_set(err, w->fail_code, "simulated failure after %zu bytes", strlen(w->text));
    return w->fail_code;
}

static void test_atomic_write(void **state)
{
    (void)state;
    char *path = tu_temp_path(".txt");
    ed_err err;
    s_writer w1 = {"old contents\n", 0, 0};
    assert_int_equal(ed_fs_write_atomic(path, s_write_text, &w1, &err), ED_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644); /* not mkstemp's 0600 */

    s_writer w2 = {"half of the new contents", ED_EIO, 1};
    s_expect_err(ed_fs_write_atomic(path, s_write_text, &w2, &err), &err, ED_EIO, path,
                 "simulated failure");
    s_writer w3 = {"more", ED_ENOMEM, 0};
    s_expect_err(ed_fs_write_atomic(path, s_write_text, &w3, &err), &err, ED_ENOMEM, path, NULL);
    size_t n;
    char *got = tu_read_file(path, &n);
    assert_int_equal(n, strlen(w1.text));
    assert_memory_equal(got, w1.text, n);
    free(got);
    assert_int_equal(s_count_temps(path), 0);

    s_writer w4 = {"new\n", 0, 0};
    assert_int_equal(ed_fs_write_atomic(path, s_write_text, &w4, &err), ED_OK);
    got = tu_read_file(path, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(got, "new\n", 4);
    free(got);
    assert_int_equal(s_count_temps(path), 0);

    /* A failing model save leaves the previous model intact. */
    char *mpath = tu_temp_path(".safetensors");
    ed_net *m = s_make_model("4,3", 9);
    ed_model_meta md = s_meta();
    assert_int_equal(ed_model_save(mpath, m, &md, &err), ED_OK);
    size_t n1;
    unsigned char *before = tu_read_file(mpath, &n1);
    snprintf(md.provenance, sizeof md.provenance, "{broken");
    m->params[0] += 1.0f;
    assert_int_not_equal(ed_model_save(mpath, m, &md, &err), ED_OK);
    size_t n2;
    unsigned char *after = tu_read_file(mpath, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);
    assert_int_equal(s_count_temps(mpath), 0);
    free(before);
    free(after);
    ed_net_destroy(&m);
    unlink(mpath);
    free(mpath);
    unlink(path);
    free(path);
}

static void test_missing_directory(void **state)
{
    (void)state;
    char *base = tu_temp_path("-nodir");
    char path[1024];
    snprintf(path, sizeof path, "%s/sub/model.safetensors", base);
    ed_err err;
    s_writer w = {"x", 0, 0};
    s_expect_err(ed_fs_write_atomic(path, s_write_text, &w, &err), &err, ED_EIO, path,
                 "No such file or directory");
    ed_net *m = s_make_model("4,3", 10);
    ed_model_meta md = s_meta();
    s_expect_err(ed_model_save(path, m, &md, &err), &err, ED_EIO, path,
                 "No such file or directory");

    /* mkdirs creates the chain, is idempotent, and then the save works. */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sub", base);
    assert_int_equal(ed_fs_mkdirs(dir, &err), ED_OK);
    assert_int_equal(ed_fs_mkdirs(dir, &err), ED_OK);
    assert_int_equal(ed_model_save(path, m, &md, &err), ED_OK);

    /* A file in the way of a directory. */
    char below[1100];
    snprintf(below, sizeof below, "%s/deeper", path);
    s_expect_err(ed_fs_mkdirs(below, &err), &err, ED_EIO, path, "not a directory");

    unlink(path);
    rmdir(dir);
    rmdir(base);
    ed_net_destroy(&m);
    free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_cnn),
        cmocka_unit_test(test_fingerprint_known_values),
        cmocka_unit_test(test_defaults_and_metadata_text),
        cmocka_unit_test(test_python_reader),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupted_weights),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_tensors_vs_arch),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_missing_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
