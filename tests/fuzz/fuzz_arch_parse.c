/*
 * fuzz_arch_parse: ed_stack_parse on arbitrary bytes (an --arch flag, or the "arch" metadata of a
 * model file someone sent us).
 *
 * Checks, beyond "no crash, no sanitizer report": a refused string leaves an error message; an
 * accepted one has consistent shapes (each layer's input is the previous layer's output, the output
 * is flat), offsets that tile the parameter and state blocks, and a canonical form that parses back
 * to an equal stack and formats to itself. Any violation aborts.
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_layer.h"

static void s_fail(const char *what)
{
    fprintf(stderr, "fuzz_arch_parse: invariant violated: %s\n", what);
    abort();
}

static void s_check(const ed_stack *s)
{
    size_t po = 0, so = 0;
    ed_shape cur = s->input;
    for (int l = 0; l < s->n_layers; l++) {
        const ed_layer *L = &s->layers[l];
        if (L->in.c != cur.c || L->in.h != cur.h || L->in.w != cur.w)
            s_fail("layer input is not the previous output");
        if (L->param_off != po || L->state_off != so)
            s_fail("offsets do not tile the blocks");
        po += L->n_params;
        so += L->n_state;
        cur = L->out;
        if (ed_shape_size(cur) < 1)
            s_fail("empty activation");
    }
    if (po != s->n_params || so != s->n_state || cur.h != 1 || cur.w != 1)
        s_fail("totals or output shape");
    ed_tensor_desc t[ED_STACK_MAX_TENSORS];
    int n = ed_stack_tensors(s, t, ED_STACK_MAX_TENSORS);
    size_t sum = 0;
    for (int i = 0; i < n; i++)
        sum += t[i].count;
    if (sum != s->n_params + s->n_state)
        s_fail("tensor table does not cover the blocks");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    ed_stack *s = malloc(sizeof *s), *back = malloc(sizeof *back);
    char *buf = malloc(ED_STACK_TEXT_MAX), *buf2 = malloc(ED_STACK_TEXT_MAX);
    if (!s || !back || !buf || !buf2)
        goto done;
    ed_err err = {0};
    if (ed_stack_parse(text, s, &err) != ED_OK) {
        if (!err.msg[0])
            s_fail("refused without a message");
        goto done;
    }
    s_check(s);
    ed_stack_format(s, buf, ED_STACK_TEXT_MAX);
    if (ed_stack_parse(buf, back, &err) != ED_OK || !ed_stack_equal(s, back))
        s_fail("canonical form does not parse back to the same stack");
    ed_stack_format(back, buf2, ED_STACK_TEXT_MAX);
    if (strcmp(buf, buf2) != 0)
        s_fail("canonical form is not a fixed point");
done:
    free(text);
    free(s);
    free(back);
    free(buf);
    free(buf2);
    return 0;
}
