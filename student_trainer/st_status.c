/*
 * st_status: `student_trainer status --teachers LIST`: asks every teacher for its member info
 * through the same pool code as distill (st_pool in probe mode: any dimensions accepted, and the
 * endpoints that do not answer within --timeout are reported instead of failing the open; CURVE
 * options as in distill), then prints one row per endpoint (address, member, fingerprint, arch,
 * state, round trip of its last member-info answer, live replicas of its member) as a table or as
 * JSON (written with cJSON).
 *
 * Exit status: 0 when every member has a live replica and every endpoint answered; 1 when a member
 * has none, or an endpoint never answered (its member is then unknown, so it may be one with no
 * live replica); 2 for a usage error.
 */
#include "st_commands.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ed_cli.h"
#include "ed_log.h"
#include "st_pool.h"
#include "st_pool_flags.h"

/* True when the run would find every member with a live replica. */
static bool s_all_ok(const st_pool *pool)
{
    st_pool_replica_info ri;
    for (int i = 0; i < st_pool_replica_slots(pool); i++)
        if (st_pool_replica_get(pool, i, &ri) && ri.member < 0)
            return false;
    for (int k = 0; k < st_pool_member_count(pool); k++)
        if (st_pool_replicas_up(pool, k) == 0)
            return false;
    return true;
}

static void s_print_table(const st_pool *pool)
{
    printf("%-28s %-14s %-25s %-16s %-10s %8s %s\n", "ENDPOINT", "MEMBER", "FINGERPRINT", "ARCH",
           "STATE", "RTT_MS", "MEMBER_UP");
    st_pool_replica_info ri;
    for (int i = 0; i < st_pool_replica_slots(pool); i++) {
        if (!st_pool_replica_get(pool, i, &ri))
            continue;
        char rtt[32] = "-", up[32] = "-";
        if (ri.rtt_s >= 0)
            snprintf(rtt, sizeof rtt, "%.2f", 1000.0 * ri.rtt_s);
        if (ri.member >= 0)
            snprintf(up, sizeof up, "%d/%d", st_pool_replicas_up(pool, ri.member),
                     st_pool_replica_count(pool, ri.member));
        printf("%-28s %-14s %-25s %-16s %-10s %8s %s\n", ri.where, *ri.name ? ri.name : "?",
               *ri.fingerprint ? ri.fingerprint : "?", *ri.arch ? ri.arch : "?", ri.state, rtt, up);
        if (ri.why && *ri.why)
            printf("    %s\n", ri.why);
    }
    for (int k = 0; k < st_pool_member_count(pool); k++)
        if (st_pool_replicas_up(pool, k) == 0)
            printf("member %s has no live replica\n", st_pool_member_name(pool, k));
}

static int s_print_json(const st_pool *pool, bool ok)
{
    cJSON *root = cJSON_CreateObject(), *eps = cJSON_AddArrayToObject(root, "endpoints");
    cJSON *members = cJSON_AddArrayToObject(root, "members");
    st_pool_replica_info ri;
    for (int i = 0; i < st_pool_replica_slots(pool); i++) {
        if (!st_pool_replica_get(pool, i, &ri))
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "endpoint", ri.where);
        const char *keys[3] = {"member", "fingerprint", "arch"};
        const char *vals[3] = {ri.name, ri.fingerprint, ri.arch};
        for (int j = 0; j < 3; j++) {
            if (*vals[j])
                cJSON_AddStringToObject(e, keys[j], vals[j]);
            else
                cJSON_AddNullToObject(e, keys[j]);
        }
        if (ri.member >= 0)
            cJSON_AddNumberToObject(e, "member_replicas_up", st_pool_replicas_up(pool, ri.member));
        cJSON_AddStringToObject(e, "state", ri.state);
        cJSON_AddBoolToObject(e, "up", ri.up);
        if (ri.rtt_s >= 0)
            cJSON_AddNumberToObject(e, "rtt_ms", 1000.0 * ri.rtt_s);
        else
            cJSON_AddNullToObject(e, "rtt_ms");
        if (ri.why && *ri.why)
            cJSON_AddStringToObject(e, "why", ri.why);
        cJSON_AddItemToArray(eps, e);
    }
    for (int k = 0; k < st_pool_member_count(pool); k++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "member", st_pool_member_name(pool, k));
        cJSON_AddNumberToObject(m, "replicas", st_pool_replica_count(pool, k));
        cJSON_AddNumberToObject(m, "replicas_up", st_pool_replicas_up(pool, k));
        cJSON_AddItemToArray(members, m);
    }
    cJSON_AddBoolToObject(root, "ok", ok);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return -1;
    printf("%s\n", text);
    cJSON_free(text);
    return 0;
}

int st_status_main(int argc, char **argv)
{
    st_pool_flags pf = st_pool_flags_defaults();
    pf.timeout = 5.0f;
    bool json = false;
    ed_cli_opt opts[1 + ST_POOL_FLAGS_OPTS] = {
        {"json", ED_CLI_FLAG, &json, NULL, "print JSON instead of a table", NULL, false},
    };
    const int n_opts = 1 + st_pool_flags_options(&pf, ST_POOL_FLAGS_PROBE, true, NULL, opts + 1);
    const ed_cli_spec spec = {
        "student_trainer status --teachers LIST [--json]",
        "Asks every teacher for its member info and prints one row per endpoint: member,\n"
        "fingerprint, arch, state, round trip, live replicas of its member. Exits 1 when a member\n"
        "has no live replica or an endpoint did not answer within --timeout.",
        opts, n_opts,
        "example:\n  student_trainer status --teachers tcp://10.0.0.5:5555,tcp://10.0.0.6:5555 "
        "--json"};
    int rc;
    if (!ed_cli_parse_command(&spec, "student_trainer status", argc, argv, &rc))
        return rc;
    ed_err err = {0};
    if (st_pool_flags_check(&pf, &err) < 0) {
        ed_cli_report("student_trainer status", &err);
        return 2;
    }
    /* A probe: every wait is --timeout, one slot, pings every second, no re-resolution. */
    pf.inflight = 1;
    pf.connect_timeout = pf.max_wait = pf.timeout;
    pf.health_interval = 1.0f;
    pf.resolve_interval = 0.0f;
    st_pool_config pc = {.input_dim = 1, .classes = 1, .max_batch = 1, .probe = true};
    st_pool_flags_apply(&pf, &pc);
    st_pool *pool = st_pool_open(pf.teachers, &pc, &err);
    if (!pool) {
        ed_cli_report("student_trainer status", &err);
        return 1;
    }
    bool ok = s_all_ok(pool);
    if (json)
        s_print_json(pool, ok);
    else
        s_print_table(pool);
    st_pool_close(&pool);
    return ok ? 0 : 1;
}
