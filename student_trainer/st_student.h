/*
 * st_student: privileged information for `distill` (Lopez-Paz et al. 2016, "generalized
 * distillation"): the student reads its own view of every sample while the teachers get the
 * original batch. The view is either files aligned sample by sample with the teachers' inputs
 * (--labeled-student-images, --unlabeled-student-images: same count and order, the same ranges
 * apply) or a view computed from the teachers' batch (--student-view avgpool:K, ed_view), or
 * student files read through a view.
 *
 * The run stays one loop: the mixer draws the teachers' batch and the student's batch from the same
 * sample numbers (st_mixer_set_student); the teachers' batch goes through the pool or the target
 * store as before, the student's waits in its pipeline slot here (st_student_slots) and is handed
 * to ed_trainer_distill_step with the teachers' logits when that slot comes back (its labels and
 * sample numbers checked against the batch the pool returns).
 */
#ifndef ST_STUDENT_H
#define ST_STUDENT_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "ed_batch.h"
#include "ed_cli.h"
#include "ed_data.h"
#include "ed_error.h"
#include "ed_view.h"
#include "st_mixer.h"

/* The student's batches while the teachers' are in flight: one copy per pipeline slot. */
typedef struct st_student_slots st_student_slots;

typedef struct {
    const char *labeled_images;   /* --labeled-student-images FILE, or NULL */
    const char *unlabeled_images; /* --unlabeled-student-images FILE, or NULL */
    const char *view_text;        /* --student-view VIEW, or NULL */
    ed_view view;                 /* parsed by st_student_check */
} st_student_opts;

#define ST_STUDENT_OPTS 3

/* Writes the ST_STUDENT_OPTS option entries of distill bound to o's fields into out; returns the
 * count. */
int st_student_options(st_student_opts *o, ed_cli_opt *out);

/* True when the student sees something else than the teachers. */
bool st_student_on(const st_student_opts *o);

/* Adds the student's settings to a JSON object (the model's provenance, the checkpoint config):
 * "student-view", "labeled-student-images", "unlabeled-student-images", each only when given, so a
 * run without privileged information records nothing new. */
void st_student_provenance(const st_student_opts *o, cJSON *obj);

/* Usage checks: the view parses; student files for the labeled set, and for the unlabeled set
 * exactly when there is one. ED_EINVAL with the message for the user. */
int st_student_check(st_student_opts *o, const char *unlabeled, ed_err *err);

/* Opens the student's side of the mixer (nothing when !st_student_on: *slots stays NULL): compares
 * the student files' sample counts with the teachers' files (ED_ESHAPE naming both files and both
 * counts), then st_mixer_set_student with the same ranges, and makes *slots (st_student_slots_new
 * for depth pipeline slots; the caller destroys it, also after an error). lab/unl: the teachers'
 * datasets (unl NULL without an unlabeled set). */
int st_student_attach(const st_student_opts *o, st_mixer *mix, const ed_dataset_spec *lab,
                      const ed_dataset_spec *unl, int depth, st_student_slots **slots, ed_err *err);

/* depth slots of the student's batches of mix (st_mixer_set_student done). */
st_student_slots *st_student_slots_new(int depth, const st_mixer *mix, ed_err *err);
void st_student_slots_destroy(st_student_slots **ps);

/* Copies the student's batch of b (st_mixer_student: b is the batch mix's st_mixer_next just
 * returned) into slot, the slot b goes to. s NULL (no student view): nothing to do. */
int st_student_slots_put(st_student_slots *s, int slot, const st_mixer *mix, const ed_batch *b,
                         ed_err *err);

/* The student's batch of slot, checked against the teachers' batch tb the pool or store returned
 * for it (same n and labels, and sample numbers when tb carries them; ED_EINVAL otherwise): *out
 * has the student's rows, tb's labels and the sample numbers; valid until the slot is put again.
 * s NULL (no student view): *out = *tb. */
int st_student_slots_get(st_student_slots *s, int slot, const ed_batch *tb, ed_batch *out,
                         ed_err *err);

#endif
