/*
 * st_pool_flags: the shared teacher-pool option table (st_pool_flags.h).
 */
#include "st_pool_flags.h"

st_pool_flags st_pool_flags_defaults(void)
{
    return (st_pool_flags){
        .inflight = 4,
        .per_request = 1,
        .quorum = 0,
        .timeout = 10.0f,
        .connect_timeout = 60.0f,
        .max_wait = 60.0f,
        .resolve_interval = 10.0f,
        .health_interval = 2.0f,
    };
}

int st_pool_flags_options(st_pool_flags *f, st_pool_flags_set set, bool teachers_required,
                          const char *quorum_help, ed_cli_opt *opts)
{
    const bool all = set == ST_POOL_FLAGS_ALL;
    int n = 0;
    opts[n++] = (ed_cli_opt){
        "teachers",
        ED_CLI_STR,
        &f->teachers,
        "LIST",
        "comma-separated teacher endpoints (tcp://, ipc://) and/or model files (in-process)",
        "EDISTILL_TEACHERS",
        teachers_required};
    opts[n++] = (ed_cli_opt){"timeout",
                             ED_CLI_FLOAT,
                             &f->timeout,
                             "SECONDS",
                             all ? "deadline of one teacher request; a teacher that misses it is "
                                   "marked down"
                                 : "how long to wait for every teacher's member info",
                             NULL,
                             false};
    if (all) {
        opts[n++] = (ed_cli_opt){
            "inflight", ED_CLI_INT, &f->inflight, "N", "batches in flight to the teachers",
            NULL,       false};
        opts[n++] = (ed_cli_opt){"batches-per-request",
                                 ED_CLI_INT,
                                 &f->per_request,
                                 "N",
                                 "consecutive batches a remote teacher gets in one request (its "
                                 "forward pass runs N times the rows: larger GEMMs, fewer round "
                                 "trips); 1..16, at most --inflight",
                                 NULL,
                                 false};
        opts[n++] = (ed_cli_opt){"quorum",
                                 ED_CLI_INT,
                                 &f->quorum,
                                 "K",
                                 quorum_help ? quorum_help
                                             : "members that must answer a batch (0: all); "
                                               "fewer answers -> a degraded batch",
                                 NULL,
                                 false};
        opts[n++] = (ed_cli_opt){"max-wait",
                                 ED_CLI_FLOAT,
                                 &f->max_wait,
                                 "SECONDS",
                                 "how long a batch waits for its quorum before the run stops",
                                 NULL,
                                 false};
        opts[n++] = (ed_cli_opt){"resolve-interval",
                                 ED_CLI_FLOAT,
                                 &f->resolve_interval,
                                 "SECONDS",
                                 "re-resolve teacher host names (elastic membership; 0: never)",
                                 NULL,
                                 false};
        opts[n++] = (ed_cli_opt){"health-interval",
                                 ED_CLI_FLOAT,
                                 &f->health_interval,
                                 "SECONDS",
                                 "ping idle and down teachers",
                                 NULL,
                                 false};
        opts[n++] = (ed_cli_opt){"connect-timeout",
                                 ED_CLI_FLOAT,
                                 &f->connect_timeout,
                                 "SECONDS",
                                 "wait for teachers to report ready",
                                 NULL,
                                 false};
    }
    opts[n++] = (ed_cli_opt){"curve-secret",
                             ED_CLI_STR,
                             &f->curve_secret,
                             "FILE",
                             "CurveZMQ: this trainer's secret key file (teacher_worker keygen; "
                             "mode 0600); its .pub goes into the workers' --curve-clients",
                             "EDISTILL_CURVE_CLIENT_SECRET",
                             false};
    opts[n++] = (ed_cli_opt){"curve-server-keys",
                             ED_CLI_STR,
                             &f->curve_server_keys,
                             "FILE",
                             "the teachers' public key: one .pub file shared by all, or a file of "
                             "`TEACHERS-ENTRY KEY` lines (docs/SECURITY.md)",
                             "EDISTILL_CURVE_SERVER_KEYS",
                             false};
    return n;
}

int st_pool_flags_check(st_pool_flags *f, ed_err *err)
{
    if (f->inflight < 1)
        return ed_err_set(err, ED_EINVAL, "--inflight must be >= 1 (got %d)", f->inflight);
    if (f->per_request < 1 || f->per_request > ST_POOL_MAX_GROUP || f->per_request > f->inflight)
        return ed_err_set(err, ED_EINVAL,
                          "--batches-per-request must be in 1..%d and at most --inflight (%d); "
                          "got %d",
                          ST_POOL_MAX_GROUP, f->inflight, f->per_request);
    if (f->quorum < 0)
        return ed_err_set(err, ED_EINVAL, "--quorum must be >= 0 (got %d; 0 means all members)",
                          f->quorum);
    const struct {
        const char *name;
        float v;
    } secs[] = {{"--timeout", f->timeout},
                {"--connect-timeout", f->connect_timeout},
                {"--max-wait", f->max_wait},
                {"--health-interval", f->health_interval}};
    for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++)
        if (!(secs[i].v > 0))
            return ed_err_set(err, ED_EINVAL, "%s must be > 0 seconds (got %g)", secs[i].name,
                              (double)secs[i].v);
    if (!(f->resolve_interval >= 0))
        return ed_err_set(err, ED_EINVAL, "--resolve-interval must be >= 0 seconds (got %g)",
                          (double)f->resolve_interval);
    return st_curve_load(&f->curve, f->curve_secret, f->curve_server_keys, err);
}

void st_pool_flags_apply(const st_pool_flags *f, st_pool_config *pc)
{
    pc->depth = f->inflight;
    pc->group = f->per_request;
    pc->timeout_s = f->timeout;
    pc->connect_timeout_s = f->connect_timeout;
    pc->quorum = f->quorum;
    pc->max_wait_s = f->max_wait;
    pc->resolve_interval_s = f->resolve_interval;
    pc->health_interval_s = f->health_interval;
    pc->overlap = f->overlap;
    st_curve_apply(&f->curve, pc);
}
