/*
 * fuzz_augment_parse: ed_augment_parse on arbitrary bytes (a --augment flag), then ed_augment_check
 * against several sample shapes and ed_augment_batch on small batches of the shapes it accepts.
 *
 * Checks, beyond "no crash, no sanitizer report": a refused string leaves an error message and
 * does not touch the output; an accepted one's canonical text parses back to the same settings;
 * every draw lies in [-shift, shift] (and never flips without flip; an erased rectangle only with
 * erase, inside the image); an augmented sample holds only its own values and the fill; a sample
 * that is all fill stays all fill. Any violation aborts.
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_augment.h"

static void s_fail(const char *what)
{
    fprintf(stderr, "fuzz_augment_parse: invariant violated: %s\n", what);
    abort();
}

/* Augments a batch of 3 samples of (c, h, w) and checks the invariants above. */
static void s_batch(const ed_augment *a, int c, int h, int w, uint64_t seed)
{
    const size_t per = (size_t)c * (size_t)h * (size_t)w;
    const float fill = -7.0f;
    float *x = malloc(sizeof(float) * 3 * per), *scratch = malloc(sizeof(float) * per);
    if (!x || !scratch)
        goto done;
    for (size_t i = 0; i < 2 * per; i++)
        x[i] = (float)(i % 251); /* samples 0, 1: values 0..250 */
    for (size_t i = 0; i < per; i++)
        x[2 * per + i] = fill; /* sample 2: all fill */
    ed_augment_batch(a, seed, seed >> 3, x, 3, c, h, w, fill, scratch);
    for (size_t i = 0; i < 2 * per; i++)
        if (x[i] != fill && !(x[i] >= 0.0f && x[i] <= 250.0f && x[i] == (float)(int)x[i]))
            s_fail("an augmented value is neither an input value nor the fill");
    for (size_t i = 0; i < per; i++)
        if (x[2 * per + i] != fill)
            s_fail("a sample of fill did not stay fill");
    for (uint64_t row = 0; row < 3; row++) {
        ed_augment_draw d = ed_augment_draw_at(a, seed, seed >> 3, row, h, w);
        if (d.dy < -a->shift || d.dy > a->shift || d.dx < -a->shift || d.dx > a->shift)
            s_fail("a draw outside [-shift, shift]");
        if (d.flip && !a->flip)
            s_fail("a flip without flip");
        if (d.eh && (!(a->erase > 0) || d.ey < 0 || d.ex < 0 || d.eh >= h || d.ew < 1 ||
                     d.ew >= w || d.ey + d.eh > h || d.ex + d.ew > w))
            s_fail("an erased rectangle without erase, or outside the image");
    }
done:
    free(x);
    free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    ed_augment a, back;
    memset(&a, 0x5a, sizeof a);
    const ed_augment before = a;
    ed_err err = {0};
    if (ed_augment_parse(text, &a, &err) != ED_OK) {
        if (!err.msg[0])
            s_fail("refused without a message");
        if (memcmp(&a, &before, sizeof a) != 0)
            s_fail("a refused text changed the output");
        goto done;
    }
    if (ed_augment_parse(a.text, &back, &err) != ED_OK || back.shift != a.shift ||
        back.flip != a.flip || back.erase != a.erase || strcmp(back.text, a.text) != 0)
        s_fail("canonical text does not parse back to the same settings");
    const int shapes[][3] = {{784, 1, 1}, {1, 28, 1},  {1, 2, 2},   {1, 3, 5},
                             {2, 7, 7},   {3, 17, 18}, {1, 28, 28}, {0, 4, 4}};
    uint64_t seed = 0;
    for (size_t i = 0; i < size && i < 8; i++)
        seed = seed << 8 | data[i];
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int c = shapes[i][0], h = shapes[i][1], w = shapes[i][2];
        if (ed_augment_check(&a, c, h, w, &err) != ED_OK) {
            if (!err.msg[0])
                s_fail("check refused without a message");
            continue;
        }
        if (c >= 1)
            s_batch(&a, c, h, w, seed);
    }
done:
    free(text);
    return 0;
}
