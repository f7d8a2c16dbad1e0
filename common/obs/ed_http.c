/*
 * ed_http: /metrics, /healthz, /readyz on libmicrohttpd (see ed_http.h).
 *
 * libmicrohttpd runs its own polling thread (MHD_USE_AUTO_INTERNAL_THREAD) and calls s_on_request
 * there; the handler only reads an atomic flag or renders the registry (which takes the registry's
 * short lock), so no state is shared with the program's threads beyond those two.
 */
#include "ed_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ed_log.h"

struct ed_http {
    struct MHD_Daemon *daemon;
    ed_metrics *metrics;
    atomic_bool ready;
    int port;
    char address[96];
};

int ed_http_parse_listen(const char *spec, char *host, size_t host_len, int *port, ed_err *err)
{
    if (!spec || !*spec)
        return ed_err_set(err, ED_EINVAL, "--metrics-listen: empty address");
    const char *p = spec;
    char h[64] = "127.0.0.1";
    const char *colon = NULL;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (!close || close[1] != ':' || (size_t)(close - p - 1) >= sizeof h || close == p + 1)
            return ed_err_set(err, ED_EINVAL, "--metrics-listen '%s': expected [IPv6]:PORT", spec);
        memcpy(h, p + 1, (size_t)(close - p - 1));
        h[close - p - 1] = '\0';
        colon = close + 1;
        struct in6_addr a6;
        if (inet_pton(AF_INET6, h, &a6) != 1)
            return ed_err_set(err, ED_EINVAL, "--metrics-listen '%s': '%s' is not an IPv6 address",
                              spec, h);
    } else if ((colon = strrchr(p, ':')) != NULL) {
        size_t n = (size_t)(colon - p);
        if (n == 0 || n >= sizeof h)
            return ed_err_set(err, ED_EINVAL, "--metrics-listen '%s': expected HOST:PORT or PORT",
                              spec);
        memcpy(h, p, n);
        h[n] = '\0';
        if (strcmp(h, "localhost") == 0)
            snprintf(h, sizeof h, "127.0.0.1");
        struct in_addr a4;
        if (inet_pton(AF_INET, h, &a4) != 1)
            return ed_err_set(err, ED_EINVAL,
                              "--metrics-listen '%s': host '%s' is not an IPv4 "
                              "address, localhost or [IPv6]",
                              spec, h);
    }
    const char *ps = colon ? colon + 1 : p;
    char *end = NULL;
    errno = 0;
    long v = strtol(ps, &end, 10);
    if (!*ps || errno || *end || v < 0 || v > 65535 || *ps == '-' || *ps == '+')
        return ed_err_set(err, ED_EINVAL, "--metrics-listen '%s': port '%s' is not in 0..65535",
                          spec, ps);
    if (strlen(h) + 1 > host_len)
        return ed_err_set(err, ED_EINVAL, "--metrics-listen '%s': host too long", spec);
    snprintf(host, host_len, "%s", h);
    *port = (int)v;
    return 0;
}

static enum MHD_Result s_reply(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                               const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result s_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    char *body = strdup(text);
    if (!body)
        return MHD_NO;
    return s_reply(c, status, body, strlen(body), "text/plain; charset=utf-8");
}

static enum MHD_Result s_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    (void)version;
    (void)upload_data;
    ed_http *h = cls;
    static int s_seen;
    if (*con_cls == NULL) { /* headers only so far: answer once the request is complete */
        *con_cls = &s_seen;
        return MHD_YES;
    }
    if (*upload_data_size) { /* a body nobody asked for: discard it */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return s_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    if (strcmp(url, "/metrics") == 0) {
        size_t len = 0;
        char *text = ed_metrics_render(h->metrics, &len);
        if (!text)
            return s_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        return s_reply(c, MHD_HTTP_OK, text, len, "text/plain; version=0.0.4; charset=utf-8");
    }
    if (strcmp(url, "/healthz") == 0)
        return s_text(c, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0) {
        if (atomic_load(&h->ready))
            return s_text(c, MHD_HTTP_OK, "ready\n");
        return s_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
    }
    return s_text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz, /readyz\n");
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (!ed_log_enabled(ED_LOG_DEBUG))
        return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    ed_log_debug("metrics listener: %s", msg);
}

ed_http *ed_http_start(const char *listen, ed_metrics *metrics, ed_err *err)
{
    char host[64];
    int port = 0;
    if (ed_http_parse_listen(listen, host, sizeof host, &port, err) < 0)
        return NULL;
    ed_http *h = calloc(1, sizeof *h);
    if (!h) {
        ed_err_set(err, ED_ENOMEM, "metrics listener: out of memory");
        return NULL;
    }
    h->metrics = metrics;
    atomic_init(&h->ready, false);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    bool v6 = strchr(host, ':') != NULL;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, host, &a->sin6_addr);
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, host, &a->sin_addr);
    }

    /* The polling thread inherits this mask: signals stay with the program's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    h->daemon =
        MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, s_on_request, h, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)ED_HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)ED_HTTP_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                         (size_t)ED_HTTP_MEMORY_LIMIT, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)16,
                         MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, NULL, MHD_OPTION_END);
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!h->daemon) {
        ed_err_set(err, ED_EIO,
                   "metrics listener: cannot listen on %s:%d (--metrics-listen %s): %s", host, port,
                   listen, e ? strerror(e) : "libmicrohttpd refused to start");
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? (int)info->port : port;
    snprintf(h->address, sizeof h->address, v6 ? "[%s]:%d" : "%s:%d", host, h->port);
    return h;
}

int ed_http_port(const ed_http *h)
{
    return h ? h->port : -1;
}

const char *ed_http_address(const ed_http *h)
{
    return h ? h->address : "";
}

void ed_http_set_ready(ed_http *h, bool ready)
{
    if (h)
        atomic_store(&h->ready, ready);
}

void ed_http_stop(ed_http **ph)
{
    if (!ph || !*ph)
        return;
    MHD_stop_daemon((*ph)->daemon);
    free(*ph);
    *ph = NULL;
}
