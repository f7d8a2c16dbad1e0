/*
 * st_resolve: the pool's DNS sources (--teachers tcp://NAME:PORT). Every A/AAAA record of a name is
 * a replica endpoint; addresses that appear join, addresses that vanish leave.
 *
 * At open every name is resolved synchronously (the run needs its teachers before it starts).
 * During the run re-resolution is asynchronous (glibc's getaddrinfo_a): stp_resolve_start asks,
 * stp_resolve_poll applies an answer once it is in. A slow or dead DNS server therefore never
 * stalls the trainer's loop (a blocking getaddrinfo there waited up to timeout x attempts per name,
 * 20 s under docker-compose's resolver, with every batch in flight held up).
 */
#define _GNU_SOURCE /* getaddrinfo_a, struct gaicb */
#include "st_pool_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "ed_log.h"

/* One asynchronous lookup in flight (owned by its source until answered or cancelled). */
struct st_resolve_req {
    struct gaicb cb;
    struct addrinfo hints;
    struct st_resolve_req *next; /* in s_orphans */
};

/* Lookups still running when their pool closed: glibc's resolver thread writes into them when it
 * gives up, so they are never freed; kept reachable here (one per dead name per closed pool). */
static struct st_resolve_req *s_orphans;

/* The address set `res` is now source si's: new addresses join (each a new replica), replicas of
 * si whose address is gone are dropped. Returns the first address that could not be added. */
static int s_apply(st_pool *p, int si, const struct addrinfo *res, ed_err *err)
{
    st_teacher_source *src = &p->sources[si];
    int first_rc = 0;
    for (int i = 0; i < p->n_reps; i++)
        p->reps[i].seen = false;
    for (const struct addrinfo *a = res; a; a = a->ai_next) {
        char ip[INET6_ADDRSTRLEN], ep[ST_ENDPOINT_LEN];
        if (a->ai_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)a->ai_addr)->sin_addr, ip, sizeof ip);
            snprintf(ep, sizeof ep, "tcp://%s:%s", ip, src->port);
        } else if (a->ai_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr, ip, sizeof ip);
            snprintf(ep, sizeof ep, "tcp://[%s]:%s", ip, src->port);
        } else {
            continue;
        }
        int found = -1;
        for (int i = 0; i < p->n_reps && found < 0; i++)
            if (p->reps[i].source == si && p->reps[i].state != ST_R_FREE &&
                p->reps[i].state != ST_R_GONE && !strcmp(p->reps[i].where, ep))
                found = i;
        if (found >= 0) {
            p->reps[found].seen = true;
            continue;
        }
        ed_err aerr = {0};
        int rc = stp_add_remote(p, si, ep, &aerr);
        if (rc == 0) {
            if (src->resolved_once)
                ed_log_info("teacher name %s: new address %s", src->host, ep);
            for (int i = 0; i < p->n_reps; i++)
                if (p->reps[i].source == si && !strcmp(p->reps[i].where, ep))
                    p->reps[i].seen = true;
        } else if (!first_rc) {
            /* Its entry was freed again; the first failure goes to the caller. */
            first_rc = rc;
            if (err)
                *err = aerr;
        }
    }
    for (int i = 0; i < p->n_reps; i++) {
        st_replica *r = &p->reps[i];
        if (r->source != si || r->seen || r->state == ST_R_FREE || r->state == ST_R_GONE)
            continue;
        ed_log_warn("teacher %s left %s's addresses: dropping it", r->where, src->host);
        stp_mark_down(p, i, "its address was removed");
        r->state = ST_R_GONE;
        stp_free_replica(p, r);
        r->state = ST_R_FREE;
        if (r->member >= 0)
            stp_describe_member(p, r->member);
    }
    src->resolved_once = true;
    return first_rc;
}

static void s_warn_unresolved(const st_teacher_source *src, int gai)
{
    ed_log_warn("teacher name %s: cannot resolve (%s); keeping its %s teachers", src->host,
                gai_strerror(gai), src->resolved_once ? "known" : "(no)");
}

int stp_resolve(st_pool *p, ed_err *err)
{
    int first_rc = 0;
    for (int si = 0; si < p->n_sources; si++) {
        st_teacher_source *src = &p->sources[si];
        if (src->kind != ST_SRC_DNS)
            continue;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(src->host, src->port, &hints, &res);
        if (gai) {
            s_warn_unresolved(src, gai);
            continue;
        }
        int rc = s_apply(p, si, res, first_rc ? NULL : err);
        freeaddrinfo(res);
        if (!first_rc)
            first_rc = rc;
    }
    return first_rc;
}

void stp_resolve_start(st_pool *p)
{
    for (int si = 0; si < p->n_sources; si++) {
        st_teacher_source *src = &p->sources[si];
        if (src->kind != ST_SRC_DNS || src->lookup)
            continue;
        struct st_resolve_req *q = calloc(1, sizeof *q);
        if (!q)
            return; /* tried again at the next interval */
        q->hints = (struct addrinfo){.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        q->cb =
            (struct gaicb){.ar_name = src->host, .ar_service = src->port, .ar_request = &q->hints};
        struct gaicb *list[1] = {&q->cb};
        int gai = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
        if (gai) {
            s_warn_unresolved(src, gai);
            free(q);
            continue;
        }
        src->lookup = q;
    }
}

int stp_resolve_poll(st_pool *p, ed_err *err)
{
    int first_rc = 0;
    for (int si = 0; si < p->n_sources; si++) {
        st_teacher_source *src = &p->sources[si];
        struct st_resolve_req *q = src->lookup;
        if (!q)
            continue;
        int gai = gai_error(&q->cb);
        if (gai == EAI_INPROGRESS)
            continue;
        if (gai == 0) {
            int rc = s_apply(p, si, q->cb.ar_result, first_rc ? NULL : err);
            if (!first_rc)
                first_rc = rc;
        } else {
            s_warn_unresolved(src, gai);
        }
        if (q->cb.ar_result)
            freeaddrinfo(q->cb.ar_result);
        free(q);
        src->lookup = NULL;
    }
    return first_rc;
}

void stp_resolve_cancel(st_pool *p)
{
    for (int si = 0; si < p->n_sources; si++) {
        struct st_resolve_req *q = p->sources[si].lookup;
        if (!q)
            continue;
        p->sources[si].lookup = NULL;
        if (gai_cancel(&q->cb) == EAI_NOTCANCELED) {
            /* glibc's resolver thread still writes into q: give it a little time, then leave q
             * to it rather than free memory it will write (a bounded wait at close). */
            const struct gaicb *list[1] = {&q->cb};
            const struct timespec limit = {.tv_sec = 2, .tv_nsec = 0};
            if (gai_suspend(list, 1, &limit) != 0 && gai_error(&q->cb) == EAI_INPROGRESS) {
                ed_log_debug("teacher name %s: lookup still running at close; left to finish",
                             p->sources[si].host);
                q->next = s_orphans;
                s_orphans = q;
                continue;
            }
        }
        if (gai_error(&q->cb) == 0 && q->cb.ar_result)
            freeaddrinfo(q->cb.ar_result);
        free(q);
    }
}
