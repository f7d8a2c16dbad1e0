/*
 * test_onnx: ed_graph shape checks and the ONNX writer -> reader round trip without Python: a graph
 * with every op kind (Conv, batch norm kept as an affine op, Relu, MaxPool, AveragePool,
 * GlobalAveragePool, Flatten, Dense) is written and read back with the same ops and bit-identical
 * weights; the baked-in input scaling comes back as the graph's scaling; bad graphs are refused
 * with the op kind, its name and the reason; bytes that are not ONNX are refused with the file
 * name. The numbers against independent tools are in tests/e2e/onnx.sh (PyTorch, OpenCV).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_graph.h"
#include "ed_onnx_read.h"
#include "ed_onnx_write.h"
#include "ed_version.h"

static float *s_fill(size_t n, float base)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = base + 0.001f * (float)i - 0.25f * (float)(i % 7);
    return v;
}

/* (1, 8, 8) -> conv 3 ch k3 p1 -> relu -> bn -> maxpool 2 -> avgpool 2 s1 p(0,0,1,1) -> gap ->
 * flatten -> dense 4 */
static ed_graph *s_all_ops(void)
{
    ed_graph *g = ed_graph_new();
    g->input = (ed_gshape){3, {1, 8, 8}};
    ed_gop *op = ed_graph_add(g, ED_GOP_CONV, "conv", NULL);
    op->out_ch = 3, op->in_ch = 1, op->kh = op->kw = 3,
    op->pad_t = op->pad_l = op->pad_b = op->pad_r = 1;
    op->w = s_fill(27, 0.1f), op->b = s_fill(3, -0.2f);
    ed_graph_add(g, ED_GOP_RELU, "relu", NULL);
    op = ed_graph_add(g, ED_GOP_AFFINE, "bn",
                      NULL); /* not after the conv: the reader would fold it */
    op->in_ch = 3, op->w = s_fill(3, 1.5f), op->b = s_fill(3, 0.3f);
    op = ed_graph_add(g, ED_GOP_MAXPOOL, "max", NULL);
    op->kh = op->kw = 2, op->stride_h = op->stride_w = 2;
    op = ed_graph_add(g, ED_GOP_AVGPOOL, "avg", NULL);
    op->kh = op->kw = 2, op->pad_b = op->pad_r = 1, op->count_include_pad = true;
    ed_graph_add(g, ED_GOP_GLOBAL_AVGPOOL, "gap", NULL);
    ed_graph_add(g, ED_GOP_FLATTEN, "flat", NULL);
    op = ed_graph_add(g, ED_GOP_DENSE, "fc", NULL);
    op->out_ch = 4, op->in_ch = 3, op->w = s_fill(12, -0.5f), op->b = s_fill(4, 0.05f);
    return g;
}

static void test_round_trip(void **state)
{
    (void)state;
    ed_err err = {0};
    ed_graph *g = s_all_ops();
    assert_int_equal(ed_graph_finish(g, &err), ED_OK);
    assert_int_equal(g->classes, 4);
    assert_int_equal(g->ops[3].out.d[1], 4); /* maxpool 8 -> 4 */
    assert_int_equal(g->ops[4].out.d[1], 4); /* avgpool k2 s1, pad end 1: (4 + 1 - 2) + 1 */
    uint8_t *buf = NULL;
    size_t n = 0;
    ed_onnx_write_meta meta = {
        .input_scale = 0.5f, .input_offset = -1.0f, .member = "t", .fingerprint = "fp"};
    assert_int_equal(ed_onnx_write_buffer(g, &meta, &buf, &n, &err), ED_OK);
    ed_graph *back = NULL;
    int rc = ed_onnx_read_buffer(buf, n, "rt.onnx", &back, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(back->n_ops, g->n_ops);
    assert_true(back->input_scale == 0.5f && back->input_offset == -1.0f);
    assert_true(back->raw_pixel_input);
    assert_string_equal(back->edistill_member, "t");
    char producer[64];
    snprintf(producer, sizeof producer, "edistill %s", ed_version());
    assert_string_equal(back->producer, producer);
    for (int i = 0; i < g->n_ops; i++) {
        const ed_gop *a = &g->ops[i], *b = &back->ops[i];
        assert_int_equal(a->kind, b->kind);
        assert_memory_equal(&a->out, &b->out, sizeof a->out);
        size_t nw = a->kind == ED_GOP_CONV     ? 27
                    : a->kind == ED_GOP_AFFINE ? 3
                    : a->kind == ED_GOP_DENSE  ? 12
                                               : 0;
        size_t nb = a->kind == ED_GOP_CONV || a->kind == ED_GOP_AFFINE ? 3
                    : a->kind == ED_GOP_DENSE                          ? 4
                                                                       : 0;
        if (nw)
            assert_memory_equal(a->w, b->w, nw * sizeof(float));
        if (nb)
            assert_memory_equal(a->b, b->b, nb * sizeof(float));
    }
    /* Truncated bytes are refused with the name. */
    ed_graph *bad = NULL;
    rc = ed_onnx_read_buffer(buf, n / 2, "half.onnx", &bad, &err);
    assert_int_equal(rc, ED_EFORMAT);
    assert_null(bad);
    assert_non_null(strstr(err.msg, "half.onnx: not an ONNX model"));
    free(buf);
    ed_graph_destroy(&back);
    ed_graph_destroy(&g);
    assert_null(g);
}

static void s_expect(ed_graph *g, int code, const char *needle)
{
    ed_err err = {0};
    int rc = ed_graph_finish(g, &err);
    if (rc != code || !strstr(err.msg, needle))
        fail_msg("expected %d with '%s', got %d: %s", code, needle, rc, err.msg);
    ed_graph_destroy(&g);
}

static void test_shape_errors(void **state)
{
    (void)state;
    ed_graph *g = s_all_ops();
    g->ops[7].in_ch = 5;
    s_expect(g, ED_ESHAPE, "Dense 'fc': weights expect 5 input features, the input has 3");
    g = s_all_ops();
    g->ops[0].kh = 11;
    s_expect(g, ED_ESHAPE,
             "Conv 'conv': kernel 11x3 stride 1x1 does not fit the padded input 10x10");
    g = s_all_ops();
    ed_graph_remove(g, 6); /* no Flatten before the Dense */
    s_expect(g, ED_ESHAPE, "Dense 'fc': needs a 2-D (N, D) input");
    g = s_all_ops();
    ed_graph_remove(g, 7);
    ed_graph_remove(g, 6); /* ends in a (3, 1, 1) map */
    s_expect(g, ED_ESHAPE, "the output is (N, 3, 1, 1), not 2-D (N, classes) logits");
    g = s_all_ops();
    g->ops[2].w[2] = 1.0f / 0.0f;
    s_expect(g, ED_EFORMAT, "BatchNorm 'bn': weights are not finite");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_shape_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
