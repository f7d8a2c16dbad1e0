/*
 * test_augment: ed_augment (random shifts, horizontal flips and erasing of training images) and its
 * use by the trainer and the training flags: parsing and its refusals (pointing at the token),
 * shape checks, hand-computed small cases, every draw against numpy's pad + flip + crop, the draw
 * distribution (all 25 shifts of shift:2 and both flip states, counts near uniform), the erasing
 * draws (rate P, torchvision's area and ratio bounds, inside the image), determinism,
 * --augment in ed_train_flags (refused on a flat MLP input, recorded in the config only when on),
 * and exact resume: an augmented run checkpointed and resumed gives a bit-identical model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_augment.h"
#include "ed_checkpoint.h"
#include "ed_train_flags.h"
#include "ed_trainer.h"
#include "tu.h"

static void test_parse(void **state)
{
    (void)state;
    ed_augment a;
    ed_err err = {0};
    const struct {
        const char *text, *canonical;
        int shift;
        bool flip;
        double erase;
    } good[] = {
        {NULL, "none", 0, false, 0},
        {"", "none", 0, false, 0},
        {"none", "none", 0, false, 0},
        {"shift:2", "shift:2", 2, false, 0},
        {"flip", "flip", 0, true, 0},
        {"shift:2,flip", "shift:2,flip", 2, true, 0},
        {" flip , shift:16 ", "shift:16,flip", 16, true, 0},
        {"erase:0.5", "erase:0.5", 0, false, 0.5},
        {"erase:1", "erase:1", 0, false, 1.0},
        {"erase:.25,flip,shift:1", "shift:1,flip,erase:0.25", 1, true, 0.25},
        {"shift:16,flip,erase:0.125", "shift:16,flip,erase:0.125", 16, true, 0.125},
        {"erase:0.001", "erase:0.001", 0, false, 0.001},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(ed_augment_parse(good[i].text, &a, &err), 0);
        assert_string_equal(a.text, good[i].canonical);
        assert_int_equal(a.shift, good[i].shift);
        assert_int_equal(a.flip, good[i].flip);
        assert_true(a.erase == good[i].erase);
        assert_int_equal(ed_augment_on(&a), good[i].shift > 0 || good[i].flip || good[i].erase > 0);
    }
    /* Each refusal quotes the text and names the bad token (its number and text). */
    const struct {
        const char *text, *needle;
    } bad[] = {
        {"shift:2,flop", "token 2 \"flop\" is not known"},
        {"shift", "token 1 \"shift\" is not known"},
        {"shift:", "token 1 \"shift:\": the shift must be"},
        {"shift:0", "token 1 \"shift:0\": the shift must be"},
        {"shift:17", "1..16"},
        {"shift:-1", "token 1 \"shift:-1\""},
        {"shift:2x", "token 1 \"shift:2x\""},
        {"flip,,shift:1", "token 2 is empty"},
        {"flip,", "token 2 is empty"},
        {"flip,flip", "token 2 \"flip\" is given twice"},
        {"shift:1,shift:2", "token 2 \"shift:2\": shift is given twice"},
        {"none,flip", "\"none\" cannot be combined"},
        {"Flip", "token 1 \"Flip\""},
        {"erase", "token 1 \"erase\" is not known"},
        {"erase:", "token 1 \"erase:\": the erasing probability must be a decimal in (0, 1]"},
        {"erase:0", "token 1 \"erase:0\": the erasing probability"},
        {"flip,erase:0.0", "token 2 \"erase:0.0\": the erasing probability"},
        {"erase:1.5", "token 1 \"erase:1.5\""},
        {"erase:1.001", "token 1 \"erase:1.001\""},
        {"erase:0.1234", "at most 3 decimals"},
        {"erase:0.5x", "token 1 \"erase:0.5x\""},
        {"erase:-0.5", "token 1 \"erase:-0.5\""},
        {"erase:0..5", "token 1 \"erase:0..5\""},
        {"erase:.", "token 1 \"erase:.\""},
        {"erase:0.5,erase:0.2", "token 2 \"erase:0.2\": erase is given twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        a.shift = 5;
        assert_int_equal(ed_augment_parse(bad[i].text, &a, &err), ED_EINVAL);
        if (!strstr(err.msg, bad[i].needle) || !strstr(err.msg, bad[i].text))
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", bad[i].text, err.msg, bad[i].needle);
        assert_int_equal(a.shift, 5); /* untouched on error */
    }
    /* A long text is quoted cut short, never overflowing the message. */
    char longtext[600];
    memset(longtext, 'x', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    assert_int_equal(ed_augment_parse(longtext, &a, &err), ED_EINVAL);
    assert_non_null(strstr(err.msg, "not known"));
}

static void test_check(void **state)
{
    (void)state;
    ed_augment a, off;
    ed_err err = {0};
    assert_int_equal(ed_augment_parse("shift:2,flip", &a, &err), 0);
    assert_int_equal(ed_augment_parse("none", &off, &err), 0);
    assert_int_equal(ed_augment_check(&a, 1, 28, 28, &err), 0);
    assert_int_equal(ed_augment_check(&a, 3, 3, 3, &err), 0);
    assert_int_equal(ed_augment_check(&off, 784, 1, 1, &err), 0);
    assert_int_equal(ed_augment_check(&a, 784, 1, 1, &err), ED_ESHAPE);
    assert_non_null(strstr(err.msg, "784x1x1"));
    assert_int_equal(ed_augment_check(&a, 1, 2, 2, &err), ED_ESHAPE); /* shift 2 in a 2x2 image */
    assert_non_null(strstr(err.msg, "2x2"));
    assert_int_equal(ed_augment_parse("flip", &a, &err), 0);
    assert_int_equal(ed_augment_check(&a, 1, 28, 1, &err), ED_ESHAPE);
}

/* 1x3x4 image 1..12, fill -0.5 (F): hand-derived outputs of four draws. */
static void test_apply_hand(void **state)
{
    (void)state;
    const float in[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, F = -0.5f;
    const struct {
        ed_augment_draw d;
        float want[12];
    } cases[] = {
        {{.dy = 0}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
        {{.dy = 1}, {F, F, F, F, 1, 2, 3, 4, 5, 6, 7, 8}},         /* down one row */
        {{.dx = -1}, {2, 3, 4, F, 6, 7, 8, F, 10, 11, 12, F}},     /* left one column */
        {{.flip = true}, {4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9}}, /* mirrored */
        {{.dy = 1, .dx = 2, .flip = true},
         {F, F, F, F, F, F, 4, 3, F, F, 8, 7}}, /* mirrored, down 1, right 2 */
        {{.dy = -2, .dx = -1}, {10, 11, 12, F, F, F, F, F, F, F, F, F}}, /* up 2, left 1 */
        /* mirrored, then rows 1-2 x columns 1-2 erased */
        {{.flip = true, .ey = 1, .ex = 1, .eh = 2, .ew = 2}, {4, 3, 2, 1, 8, F, F, 5, 12, F, F, 9}},
        /* right 1, then row 0 x columns 0-3 erased (the erasing comes after the shift) */
        {{.dx = 1, .ey = 0, .ex = 0, .eh = 1, .ew = 4}, {F, F, F, F, F, 5, 6, 7, F, 9, 10, 11}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float out[12];
        ed_augment_apply(in, out, 1, 3, 4, cases[i].d, F);
        if (memcmp(out, cases[i].want, sizeof out) != 0)
            fail_msg("case %zu (dy %d dx %d flip %d) differs", i, cases[i].d.dy, cases[i].d.dx,
                     cases[i].d.flip);
    }
}

/* Every draw of shift:2,flip on a 2x5x6 image against numpy: pad by 2 with fill, mirror, crop. */
static void test_apply_numpy(void **state)
{
    (void)state;
    enum { C = 2, H = 5, W = 6, S = 2, N = C * H * W, DRAWS = (2 * S + 1) * (2 * S + 1) * 2 };
    const float fill = 0.25f;
    float in[N];
    for (int i = 0; i < N; i++)
        in[i] = (float)((i * 7919) % 101) / 8.0f;
    char *in_path = tu_temp_path(".in.f32"), *out_path = tu_temp_path(".out.f32");
    assert_int_equal(tu_write_file(in_path, in, sizeof in), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c '\n"
             "import numpy as np, sys\n"
             "x = np.fromfile(sys.argv[1], dtype=np.float32).reshape(%d, %d, %d)\n"
             "S, f, outs = %d, np.float32(%g), []\n"
             "for dy in range(-S, S + 1):\n"
             "  for dx in range(-S, S + 1):\n"
             "    for flip in (0, 1):\n"
             "      src = x[:, :, ::-1] if flip else x\n"
             "      p = np.pad(src, ((0, 0), (S, S), (S, S)), constant_values=f)\n"
             "      top, left = S - dy, S - dx\n"
             "      outs.append(p[:, top:top + %d, left:left + %d])\n"
             "np.stack(outs).astype(np.float32).tofile(sys.argv[2])\n"
             "' %s %s",
             C, H, W, S, (double)fill, H, W, in_path, out_path);
    if (system(cmd) != 0)
        fail_msg("numpy reference failed: %s", cmd);
    size_t n = 0;
    float *want = tu_read_file(out_path, &n);
    assert_non_null(want);
    assert_int_equal(n, sizeof(float) * DRAWS * N);
    int k = 0;
    for (int dy = -S; dy <= S; dy++)
        for (int dx = -S; dx <= S; dx++)
            for (int flip = 0; flip < 2; flip++, k++) {
                float out[N];
                ed_augment_apply(in, out, C, H, W,
                                 (ed_augment_draw){.dy = dy, .dx = dx, .flip = flip != 0}, fill);
                if (memcmp(out, want + (size_t)k * N, sizeof out) != 0)
                    fail_msg("dy %d dx %d flip %d differs from numpy", dy, dx, flip);
            }
    free(want);
    remove(in_path);
    remove(out_path);
    free(in_path);
    free(out_path);
}

/* shift:2,flip over 50,000 (step, row) keys: each of the 50 outcomes near 1,000 (sd ~31); the
 * shifts in y and x and the flip independent (every combination occurs); other seeds differ. */
static void test_distribution(void **state)
{
    (void)state;
    ed_augment a;
    ed_err err = {0};
    assert_int_equal(ed_augment_parse("shift:2,flip", &a, &err), 0);
    long counts[5][5][2] = {{{0}}};
    long same_as_other_seed = 0, n = 0;
    for (uint64_t step = 0; step < 500; step++)
        for (uint64_t row = 0; row < 100; row++, n++) {
            ed_augment_draw d = ed_augment_draw_at(&a, 7, step, row, 28, 28);
            assert_true(d.dy >= -2 && d.dy <= 2 && d.dx >= -2 && d.dx <= 2);
            counts[d.dy + 2][d.dx + 2][d.flip]++;
            ed_augment_draw e = ed_augment_draw_at(&a, 8, step, row, 28, 28);
            same_as_other_seed += e.dy == d.dy && e.dx == d.dx && e.flip == d.flip;
        }
    const double expect = (double)n / 50.0;
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++)
            for (int f = 0; f < 2; f++)
                if (counts[y][x][f] < expect - 200 || counts[y][x][f] > expect + 200)
                    fail_msg("dy %d dx %d flip %d drawn %ld times, expected ~%.0f", y - 2, x - 2, f,
                             counts[y][x][f], expect);
    /* Another seed agrees about 1/50 of the time, as independent draws would. */
    assert_true(same_as_other_seed > n / 50 - 300 && same_as_other_seed < n / 50 + 300);
    /* Only flips: the shift stays 0; only shifts: never a flip. */
    assert_int_equal(ed_augment_parse("flip", &a, &err), 0);
    int flips = 0;
    for (uint64_t row = 0; row < 1000; row++) {
        ed_augment_draw d = ed_augment_draw_at(&a, 1, 3, row, 28, 28);
        assert_true(d.dy == 0 && d.dx == 0);
        flips += d.flip;
    }
    assert_true(flips > 400 && flips < 600);
    assert_int_equal(ed_augment_parse("shift:1", &a, &err), 0);
    for (uint64_t row = 0; row < 1000; row++)
        assert_false(ed_augment_draw_at(&a, 1, 3, row, 28, 28).flip);
}

/* erase:0.3 over 20,000 draws on 28x28 and 5x7 images: about 30% erase; each rectangle lies inside
 * the image, its area within torchvision's scale (0.02..0.33 of H*W, up to the rounding of its
 * sides) and its ratio within 0.3..3.3 (same); positions reach every corner; adding erase:P to
 * shift:2,flip keeps every shift and flip as it was. */
static void test_erase_draws(void **state)
{
    (void)state;
    ed_augment a, base;
    ed_err err = {0};
    assert_int_equal(ed_augment_parse("shift:2,flip,erase:0.3", &a, &err), 0);
    assert_int_equal(ed_augment_parse("shift:2,flip", &base, &err), 0);
    const int shapes[2][2] = {{28, 28}, {5, 7}};
    for (int s = 0; s < 2; s++) {
        const int h = shapes[s][0], w = shapes[s][1];
        long erased = 0, n = 0;
        bool top_left = false, bottom_right = false;
        for (uint64_t step = 0; step < 200; step++)
            for (uint64_t row = 0; row < 100; row++, n++) {
                const ed_augment_draw d = ed_augment_draw_at(&a, 5, step, row, h, w);
                const ed_augment_draw e = ed_augment_draw_at(&base, 5, step, row, h, w);
                assert_true(d.dy == e.dy && d.dx == e.dx && d.flip == e.flip && e.eh == 0);
                if (d.eh == 0) {
                    assert_int_equal(d.ew, 0);
                    continue;
                }
                erased++;
                assert_true(d.eh >= 1 && d.eh < h && d.ew >= 1 && d.ew < w);
                assert_true(d.ey >= 0 && d.ey + d.eh <= h && d.ex >= 0 && d.ex + d.ew <= w);
                const double lo_area = 0.02 * h * w, hi_area = 0.33 * h * w;
                /* each side is rounded by at most 1/2 */
                if ((d.eh + 0.5) * (d.ew + 0.5) < lo_area || (d.eh - 0.5) * (d.ew - 0.5) > hi_area)
                    fail_msg("%dx%d: %dx%d rectangle outside the area bounds", h, w, d.eh, d.ew);
                if ((d.eh + 0.5) / (d.ew - 0.5) < 0.3 || (d.eh - 0.5) / (d.ew + 0.5) > 3.3)
                    fail_msg("%dx%d: %dx%d rectangle outside the ratio bounds", h, w, d.eh, d.ew);
                top_left |= d.ey == 0 && d.ex == 0;
                bottom_right |= d.ey + d.eh == h && d.ex + d.ew == w;
            }
        /* p 0.3 (times the share of draws where some try fits, ~1 here): sd ~65 */
        if (erased < 0.3 * (double)n - 400 || erased > 0.3 * (double)n + 400)
            fail_msg("%dx%d: %ld of %ld draws erased, expected ~%.0f", h, w, erased, n, 0.3 * n);
        assert_true(top_left && bottom_right);
    }
}

/* ed_augment_batch is row i = apply(draw_at(seed, step, i)); same key, same batch; another step or
 * seed, another batch; off leaves the batch alone. */
static void test_batch_determinism(void **state)
{
    (void)state;
    enum { B = 16, C = 1, H = 6, W = 6, N = C * H * W };
    ed_augment a, off;
    ed_err err = {0};
    assert_int_equal(ed_augment_parse("shift:2,flip", &a, &err), 0);
    assert_int_equal(ed_augment_parse(NULL, &off, &err), 0);
    static float x0[B * N], x1[B * N], x2[B * N], x3[B * N], want[B * N];
    float scratch[N];
    for (int i = 0; i < B * N; i++)
        x0[i] = (float)(i % 97);
    memcpy(x1, x0, sizeof x0);
    memcpy(x2, x0, sizeof x0);
    memcpy(x3, x0, sizeof x0);
    ed_augment_batch(&a, 11, 5, x1, B, C, H, W, -1.0f, scratch);
    ed_augment_batch(&a, 11, 5, x2, B, C, H, W, -1.0f, scratch);
    assert_memory_equal(x1, x2, sizeof x1);
    for (int i = 0; i < B; i++)
        ed_augment_apply(x0 + i * N, want + i * N, C, H, W,
                         ed_augment_draw_at(&a, 11, 5, (uint64_t)i, H, W), -1.0f);
    assert_memory_equal(x1, want, sizeof want);
    assert_memory_not_equal(x1, x0, sizeof x0);
    ed_augment_batch(&a, 11, 6, x3, B, C, H, W, -1.0f, scratch);
    assert_memory_not_equal(x3, x1, sizeof x1);
    memcpy(x3, x0, sizeof x0);
    ed_augment_batch(&a, 12, 5, x3, B, C, H, W, -1.0f, scratch);
    assert_memory_not_equal(x3, x1, sizeof x1);
    memcpy(x3, x0, sizeof x0);
    ed_augment_batch(&off, 11, 5, x3, B, C, H, W, -1.0f, scratch);
    assert_memory_equal(x3, x0, sizeof x0);
}

/* ed_augment_raw_batch (distill: the raw batch before the teachers): for float32 samples, row i
 * is ed_augment_apply with a 0 fill; for uint8 samples, the same pixels moved and erased (every
 * value fits in both); idx and labels are the caller's; off copies. */
static void test_raw_batch(void **state)
{
    (void)state;
    enum { B = 24, C = 2, H = 5, W = 7, N = C * H * W };
    ed_augment a, off;
    ed_err err = {0};
    assert_int_equal(ed_augment_parse("shift:2,flip,erase:0.5", &a, &err), 0);
    assert_int_equal(ed_augment_parse(NULL, &off, &err), 0);
    static uint8_t u8[B * N], u8_out[B * N];
    static float f32[B * N], f32_out[B * N], want[B * N];
    for (int i = 0; i < B * N; i++) {
        u8[i] = (uint8_t)(1 + i % 251); /* never 0: a moved pixel is told from the fill */
        f32[i] = (float)u8[i];
    }
    for (int i = 0; i < B; i++)
        ed_augment_apply(f32 + i * N, want + i * N, C, H, W,
                         ed_augment_draw_at(&a, 7, 3, (uint64_t)i, H, W), 0.0f);
    ed_batch bf = {.n = B, .dim = N, .dtype = ED_DTYPE_F32, .x = f32};
    ed_augment_raw_batch(&a, 7, 3, &bf, C, H, W, f32_out);
    assert_memory_equal(f32_out, want, sizeof want);
    ed_batch bu = {.n = B, .dim = N, .dtype = ED_DTYPE_U8, .x = u8};
    ed_augment_raw_batch(&a, 7, 3, &bu, C, H, W, u8_out);
    int moved = 0;
    for (int i = 0; i < B * N; i++) {
        assert_true((float)u8_out[i] == want[i]);
        moved += u8_out[i] != u8[i];
    }
    assert_true(moved > B * N / 4);
    ed_augment_raw_batch(&off, 7, 3, &bu, C, H, W, u8_out);
    assert_memory_equal(u8_out, u8, sizeof u8);
}

/* --augment through ed_train_flags: refused on a flat input with the spelling to use, accepted on
 * a CxHxW input, bad text refused naming the option; "augment" in the config only when on. */
static void test_train_flags(void **state)
{
    (void)state;
    ed_stack arch;
    ed_err err = {0};
    ed_train_flags f = ed_train_flags_defaults("784,32,10");
    f.augment = "shift:2,flip";
    assert_int_equal(ed_train_flags_validate(&f, &arch, &err), 0); /* distill: raw samples */
    assert_int_equal(ed_train_flags_check_augment_input(&f, &arch, &err), ED_EINVAL);
    assert_non_null(strstr(err.msg, "--augment shift:2,flip needs an image input"));
    assert_non_null(strstr(err.msg, "1x28x28:"));
    f.arch = "1x28x28:flatten,dense32,relu,dense10";
    assert_int_equal(ed_train_flags_validate(&f, &arch, &err), 0);
    assert_int_equal(ed_train_flags_check_augment_input(&f, &arch, &err), 0);
    ed_augment a;
    assert_int_equal(ed_train_flags_augment(&f, &a, &err), 0);
    assert_string_equal(a.text, "shift:2,flip");
    f.arch = "1x3x3:flatten,dense10";
    f.augment = "shift:3";
    assert_int_equal(ed_train_flags_validate(&f, &arch, &err), 0);
    assert_int_equal(ed_train_flags_check_augment_input(&f, &arch, &err), ED_ESHAPE);
    assert_non_null(strstr(err.msg, "--augment with --arch 1x3x3"));
    f.arch = "1x28x28:flatten,dense10";
    f.augment = "shift:2;flip";
    assert_int_equal(ed_train_flags_validate(&f, &arch, &err), ED_EINVAL);
    assert_non_null(strstr(err.msg, "--augment: \"shift:2;flip\": token 1"));

    cJSON *on = cJSON_CreateObject(), *none = cJSON_CreateObject();
    f.augment = " flip,shift:2";
    ed_train_flags_to_json(&f, on);
    f.augment = "none";
    ed_train_flags_to_json(&f, none);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(on, "augment")), "shift:2,flip");
    assert_null(cJSON_GetObjectItem(none, "augment"));
    cJSON_Delete(on);
    cJSON_Delete(none);
}

/* A tiny CNN trainer (Adam) with augmentation aug ("" none), 4 samples a batch. */
static ed_trainer *s_trainer(const char *aug, ed_err *err)
{
    ed_stack s;
    if (ed_stack_parse("1x6x6:conv3k3p1,relu,maxpool2,flatten,dense4", &s, err))
        return NULL;
    ed_net *m = ed_net_new(&s);
    if (!m)
        return NULL;
    ed_rng r;
    ed_rng_seed(&r, 3);
    ed_net_init(m, &r);
    ed_trainer_config tc = {.opt = ed_opt_config_default(),
                            .max_batch = 4,
                            .input_scale = 1.0f / 255.0f,
                            .input_offset = -0.5f,
                            .seed = 9};
    tc.opt.lr = 0.01f;
    if (ed_augment_parse(aug, &tc.augment, err))
        return NULL;
    return ed_trainer_new(&m, &tc, err);
}

/* Steps [from, to) on fixed pseudo-random batches (batch i depends on i only). */
static void s_steps(ed_trainer *t, int from, int to)
{
    uint8_t x[4 * 36];
    int32_t y[4];
    const ed_loss_config lc = {0};
    ed_err err = {0};
    for (int i = from; i < to; i++) {
        for (int j = 0; j < 4 * 36; j++)
            x[j] = (uint8_t)((j * 131 + i * 71 + (j * j) % 17) % 256);
        for (int j = 0; j < 4; j++)
            y[j] = (i + j) % 4;
        ed_batch b = {.n = 4, .dim = 36, .dtype = ED_DTYPE_U8, .x = x, .y = y};
        if (ed_trainer_step(t, &b, &lc, NULL, &err))
            fail_msg("step %d: %s", i, err.msg);
    }
}

/* An augmented run of 8 steps equals one checkpointed after 3 steps (written, read back into a
 * fresh trainer) and resumed for 5, bit for bit; without augmentation the model differs. */
static void test_trainer_resume(void **state)
{
    (void)state;
    ed_err err = {0};
    ed_trainer *full = s_trainer("shift:2,flip", &err), *first = s_trainer("shift:2,flip", &err),
               *resumed = s_trainer("shift:2,flip", &err), *plain = s_trainer("none", &err);
    assert_non_null(full);
    assert_non_null(first);
    assert_non_null(resumed);
    assert_non_null(plain);
    s_steps(full, 0, 8);
    s_steps(plain, 0, 8);
    s_steps(first, 0, 3);
    char *path = tu_temp_path(".ck");
    ed_checkpoint *w = ed_checkpoint_new("{\"augment\": \"shift:2,flip\"}", &err);
    assert_non_null(w);
    assert_int_equal(ed_checkpoint_put_trainer(w, first, &err), 0);
    assert_int_equal(ed_checkpoint_write(w, path, &err), 0);
    ed_checkpoint_destroy(&w);
    ed_checkpoint *r = ed_checkpoint_read(path, &err);
    assert_non_null(r);
    assert_int_equal(ed_checkpoint_get_trainer(r, resumed, &err), 0);
    ed_checkpoint_destroy(&r);
    s_steps(resumed, 3, 8);
    const size_t np = full->model->n_params;
    assert_memory_equal(resumed->model->params, full->model->params, sizeof(float) * np);
    assert_memory_not_equal(plain->model->params, full->model->params, sizeof(float) * np);
    /* A flat model input cannot take augmentation. */
    ed_stack s;
    assert_int_equal(ed_stack_parse("36,8,4", &s, &err), 0);
    ed_net *m = ed_net_new(&s);
    ed_trainer_config tc = {.opt = ed_opt_config_default(), .max_batch = 4};
    assert_int_equal(ed_augment_parse("flip", &tc.augment, &err), 0);
    assert_null(ed_trainer_new(&m, &tc, &err));
    assert_null(m);
    assert_int_equal(err.code, ED_ESHAPE);
    assert_non_null(strstr(err.msg, "36x1x1"));
    remove(path);
    free(path);
    ed_trainer_destroy(&full);
    ed_trainer_destroy(&first);
    ed_trainer_destroy(&resumed);
    ed_trainer_destroy(&plain);
}

/* ed_train_plan_check_position (the checkpoint position check of train and distill): the start,
 * a mid-epoch and the finished position pass; every inconsistency is refused with the path. */
static void test_plan_position(void **state)
{
    (void)state;
    ed_train_plan plan = {.steps_per_epoch = 10, .total_steps = 25, .epochs = 3};
    ed_err err = {0};
    assert_int_equal(ed_train_plan_check_position(&plan, 1, 0, 0, 0, "c", &err), 0);
    assert_int_equal(ed_train_plan_check_position(&plan, 2, 13, 3, 13, "c", &err), 0);
    assert_int_equal(ed_train_plan_check_position(&plan, 3, 25, 5, 25, "c", &err), 0);
    assert_int_equal(ed_train_plan_check_position(&plan, 4, 25, 0, 25, "c", &err), 0);
    const int64_t bad[][4] = {{2, 14, 3, 14}, {2, 13, 3, 12},  {3, 26, 6, 26}, {0, 0, 0, 0},
                              {4, 24, 0, 24}, {1, -1, -1, -1}, {5, 25, 0, 25}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ed_train_plan_check_position(&plan, bad[i][0], bad[i][1], bad[i][2],
                                                      (long)bad[i][3], "ck.json", &err),
                         ED_EFORMAT);
        assert_non_null(strstr(err.msg, "ck.json: inconsistent position"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_apply_hand),
        cmocka_unit_test(test_apply_numpy),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_erase_draws),
        cmocka_unit_test(test_batch_determinism),
        cmocka_unit_test(test_train_flags),
        cmocka_unit_test(test_trainer_resume),
        cmocka_unit_test(test_plan_position),
        cmocka_unit_test(test_raw_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
