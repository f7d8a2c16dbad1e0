/*
 * ed_http: the operations HTTP listener of a long-running edistill process: /metrics (Prometheus
 * text format from an ed_metrics registry), /healthz (the process is alive) and /readyz (the
 * program says it is ready: worker = model loaded and serving, trainer = a quorum of members up).
 *
 * HTTP is libmicrohttpd's (Debian libmicrohttpd12), never parsed here. It runs on its own thread,
 * so a scrape never blocks the compute path, with a small connection limit, a connection timeout
 * and a per-connection memory limit (oversized headers get 431), answering only GET and HEAD.
 * Signals are blocked on its thread, so they keep going to the program's own handlers.
 *
 *     ed_http *h = ed_http_start("127.0.0.1:9100", registry, &err);
 *     ...load the model...
 *     ed_http_set_ready(h, true);
 *     ed_http_stop(&h);
 */
#ifndef ED_HTTP_H
#define ED_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "ed_error.h"
#include "ed_metrics.h"

#define ED_HTTP_MAX_CONNECTIONS 8 /* concurrent connections; more are refused at accept */
#define ED_HTTP_TIMEOUT_S 5       /* idle/slow connections are closed after this */
/* Per-connection buffer: bounds the request line + headers. */
#define ED_HTTP_MEMORY_LIMIT (16 * 1024)

typedef struct ed_http ed_http;

/* Parses a listen address: "PORT" (loopback 127.0.0.1), "HOST:PORT" with HOST an IPv4 literal,
 * "localhost" or "0.0.0.0", or "[IPv6]:PORT"; PORT 0..65535 (0 = any free port). Fills host (at
 * least 64 bytes) with the numeric address and *port. ED_EINVAL with err naming the problem. */
int ed_http_parse_listen(const char *spec, char *host, size_t host_len, int *port, ed_err *err);

/* Starts listening on `listen` (see ed_http_parse_listen) serving `metrics` (borrowed: must
 * outlive the listener; may be NULL: /metrics is then empty). Not ready until ed_http_set_ready.
 * NULL on failure with err set (ED_EINVAL: bad address; ED_EIO: cannot bind, names the address). */
ed_http *ed_http_start(const char *listen, ed_metrics *metrics, ed_err *err);

/* The bound port (the real one when 0 was asked for); -1 for NULL. */
int ed_http_port(const ed_http *h);

/* The listen address as "HOST:PORT" with the bound port (static per listener). */
const char *ed_http_address(const ed_http *h);

/* /readyz answers 200 when ready, 503 otherwise. Thread-safe; NULL: no-op. */
void ed_http_set_ready(ed_http *h, bool ready);

/* Stops the thread, closes every connection, frees. Accepts NULL; clears *ph. */
void ed_http_stop(ed_http **ph);

/* Name, environment variable and help of every program's --metrics-listen option (one spelling). */
#define ED_HTTP_LISTEN_ENV "EDISTILL_METRICS_LISTEN"
#define ED_HTTP_LISTEN_HELP                                                                        \
    "serve /metrics (Prometheus), /healthz and /readyz over HTTP on HOST:PORT (PORT alone = "      \
    "127.0.0.1; 0.0.0.0:PORT for every interface; off when unset)"

#endif
