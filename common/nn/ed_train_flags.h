/*
 * ed_train_flags: the training settings both `teacher_worker train` and `student_trainer distill`
 * take (architecture, optimizer and schedule, regularization, batching, seed, input scaling), as
 * one struct, one set of command-line options and one place that checks them and plans the run.
 *
 *     ed_train_flags f = {...defaults...};
 *     ed_cli_opt opts[16 + ED_TRAIN_FLAGS_OPTS];  int n = 0;
 *     ...command-specific entries...;  n += ed_train_flags_options(&f, opts + n);
 *     ...ed_cli_parse...;  ed_train_flags_validate(&f, &arch, &err);
 *     ed_train_plan plan;  ed_train_flags_plan(&f, samples_per_epoch, &plan);
 */
#ifndef ED_TRAIN_FLAGS_H
#define ED_TRAIN_FLAGS_H

#include <stdint.h>

#include "ed_augment.h"
#include "ed_cli.h"
#include "ed_error.h"
#include "ed_layer.h"
#include "ed_optim.h"

typedef struct {
    const char *arch;      /* "784,1200,1200,10" or "1x28x28:conv32k3p1,...,dense10" */
    const char *optimizer; /* adam | sgd */
    const char *schedule;  /* constant | cosine | step */
    uint64_t seed;
    int epochs;
    long steps; /* > 0: exactly this many steps instead of epochs */
    int batch_size;
    float lr, lr_min, momentum, weight_decay;
    long warmup_steps;
    float dropout_in, dropout_hidden, label_smoothing;
    long shuffle_buffer;
    float input_scale, input_offset;
    int blas_threads;
    const char *augment; /* "shift:2,flip" etc. (ed_augment.h); NULL or "none": no augmentation */
} ed_train_flags;

#define ED_TRAIN_FLAGS_OPTS 20

/* The defaults both `train` and `distill` start from (Adam, cosine schedule, seed 1, 10 epochs of
 * batch 128 at lr 1e-3, a 65,536-sample shuffle buffer, pixels scaled by 1/255), with arch. */
ed_train_flags ed_train_flags_defaults(const char *arch);

/* Writes the ED_TRAIN_FLAGS_OPTS option entries bound to f's fields into out (f's current values
 * are the defaults --help shows); returns the number written. */
int ed_train_flags_options(ed_train_flags *f, ed_cli_opt *out);

/* Checks the settings and parses the architecture into *arch. Errors name the option:
 * "--optimizer 'adamw' is not known (adam, sgd)", "--dropout-in 1.5 is outside [0, 1)", ...;
 * --augment must parse. */
int ed_train_flags_validate(const ed_train_flags *f, ed_stack *arch, ed_err *err);

/* For `train`, where --augment transforms the model's own input: it must fit arch's input shape
 * (an image CxHxW: a flat input such as the legacy MLP's 784 is refused, with the layer-stack
 * spelling to use instead). `distill` augments the raw samples instead (st_augment). */
int ed_train_flags_check_augment_input(const ed_train_flags *f, const ed_stack *arch, ed_err *err);

/* The parsed --augment of f (after ed_train_flags_validate succeeded: then it cannot fail). */
int ed_train_flags_augment(const ed_train_flags *f, ed_augment *out, ed_err *err);

typedef struct {
    long steps_per_epoch;
    long total_steps;
    int epochs;
    ed_opt_config opt; /* optimizer with the schedule spread over total_steps */
} ed_train_plan;

typedef struct cJSON cJSON;

/* Adds the settings that determine the trained weights to the JSON object obj, keyed by option
 * name ("batch-size", "lr-min", ...): arch, seed (a decimal string, exact for 64 bits), epochs or
 * steps, batch size, optimizer, schedule, regularization, shuffle buffer, input scaling, and
 * "augment" (canonical text) only when augmentation is on, so configs of runs without it are
 * unchanged. Leaves out blas-threads, which changes no result. Used for model provenance and
 * checkpoint configs. */
void ed_train_flags_to_json(const ed_train_flags *f, cJSON *obj);

/* Provenance of a model file: {tool, edistill_version, created (UTC), settings...} as a new cJSON
 * object the caller adds its own fields to and frees. NULL when out of memory. */
cJSON *ed_train_flags_provenance(const ed_train_flags *f, const char *tool);

/* Plans a run over samples_per_epoch samples (after ed_train_flags_validate succeeded). */
void ed_train_flags_plan(const ed_train_flags *f, long samples_per_epoch, ed_train_plan *plan);

/* Steps of epoch `epoch` (1-based) under plan: steps_per_epoch, fewer in a last epoch cut short by
 * --steps, 0 for an epoch outside 1..epochs. The one definition of an epoch's length. */
long ed_train_plan_epoch_steps(const ed_train_plan *plan, long epoch);

/* Checks a checkpoint's position against plan: (epoch, step, epoch_step) inside the plan and
 * consistent with each other, or the finished position (epochs + 1, total_steps, 0), and the
 * optimizer's step count opt_t equal to step. 0, or ED_EFORMAT naming `path` and the numbers. */
int ed_train_plan_check_position(const ed_train_plan *plan, int64_t epoch, int64_t step,
                                 int64_t epoch_step, long opt_t, const char *path, ed_err *err);

#endif
