/*
 * st_metrics: the Prometheus metrics and HTTP health endpoints of `student_trainer distill` and
 * `student_trainer label`.
 *
 * Both share the teacher-pool series and the readiness; distill adds its training series (a hook
 * per step, per epoch and per checkpoint), label its shard series (a hook per batch written). The
 * teacher pool
 * reports requests, replies (with their round trip), failovers and replicas going down or up
 * through its observer (st_pool_config.observe = st_metrics_observe). Everything runs on the
 * trainer's thread and costs a few atomic updates; ed_http's thread renders. Every hook accepts
 * NULL (metrics off). /readyz is 200 while at least a quorum of members (all of them when
 * --quorum is 0) has a live replica. Series: docs/OPERATIONS.md.
 */
#ifndef ST_METRICS_H
#define ST_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ed_error.h"
#include "ed_trainer.h"
#include "st_pool.h"

typedef struct st_metrics st_metrics;

/* Which command's series to register besides the pool's, the readiness and the process's. */
typedef enum { ST_METRICS_DISTILL, ST_METRICS_LABEL } st_metrics_kind;

/* Starts the listener on `listen` (ed_http_parse_listen syntax). NULL with err set on failure. */
st_metrics *st_metrics_new(const char *listen, st_metrics_kind kind, ed_err *err);

const char *st_metrics_address(const st_metrics *m);

/* The pool is open (pool events before this are ignored: members are numbered only at the end of
 * st_pool_open). quorum as in st_pool_config (<= 0: all members). pool NULL (soft targets read
 * from a store, no teachers): ready at once. */
void st_metrics_attach(st_metrics *m, const st_pool *pool, int quorum);

/* st_pool_observe_fn: arg is the st_metrics (or NULL). */
void st_metrics_observe(void *arg, st_pool_event ev, int member, const char *replica, double value);

/* One optimizer step done: its stats, the epoch, whether the batch was degraded, how long the
 * loop was blocked waiting for the teachers, and the epoch's running labeled accuracy (< 0: none).
 */
void st_metrics_step(st_metrics *m, const ed_step_stats *st, int epoch, bool degraded,
                     double blocked_s, double accuracy_labeled);

/* End of an epoch: test accuracy (< 0: not evaluated). */
void st_metrics_epoch(st_metrics *m, int epoch, double test_accuracy);

/* A checkpoint was written now. */
void st_metrics_checkpoint(st_metrics *m);

/* label: shard `shard` of `n_shards` of `store` holds `samples` samples, `done` of them written
 * already (a --resume continues after them). */
void st_metrics_label_shard(st_metrics *m, const char *store, int shard, int n_shards,
                            int64_t samples, int64_t done);

/* label: a batch came back without a member (the run stops; counted as a degraded batch). */
void st_metrics_label_missing(st_metrics *m);

/* label: n more samples (`bytes` bytes in the store's arrays) were written; `done` of the shard's
 * samples are now written. */
void st_metrics_label_written(st_metrics *m, int n, size_t bytes, int64_t done);

/* Stops the listener and frees. Accepts NULL; clears *pm. */
void st_metrics_destroy(st_metrics **pm);

#endif
