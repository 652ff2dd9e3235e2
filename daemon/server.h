/* dispatchd's server: one thread, an epoll loop over the listening sockets,
 * the connections, a signalfd and an eventfd that the engine's callbacks
 * ring (events.c). Requests are answered in order per connection unless
 * they wait (submit until durable, wait, reserve), and then carry their
 * tag. Private to daemon/. */
#ifndef DD_DAEMON_SERVER_H
#define DD_DAEMON_SERVER_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "dd_clock.h"
#include "dispatchd.h"
#include "fastsub.h"
#include "idmap.h"

struct dd_server;

/* Descriptors a connection may have passed and not used yet; one more is
 * a protocol error that closes it. */
#define DD_CONN_FDS 8
/* descriptors passed and not used yet, over all connections: a user who
 * passes them on thousands of connections must not take the daemon's own */
#define DD_SERVER_FDS 512

struct conn {
	struct conn *next, *prev;
	struct dd_server *srv;
	int fd;
	uint64_t serial;
	uint32_t uid, gid; /* the peer's (SO_PEERCRED); TCP: the daemon's, once authed */
	pid_t pid;
	bool tcp, authed;
	bool closing;      /* flush what is queued, then close */
	bool dead;         /* closed; freed when refs drops to 0 */
	bool paused;       /* not reading: too much output queued */
	struct pend *held; /* not reading: a submit waits for the engine's room */
	bool resume;       /* held no more: handle the lines read meanwhile */
	bool watching;
	uint32_t armed;    /* the epoll events last set for fd */
	json_t *watch_ids; /* object "id" -> true, or NULL for every job */
	json_t *watch_tag;
	char watch_queue[64]; /* "" = every queue */
	struct dd_stats_window *win; /* "stats" with "window": since its last such */
	unsigned refs;     /* pending answers that point here */
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_off, out_cap;
	int fds[DD_CONN_FDS]; /* passed with SCM_RIGHTS, not used yet: oldest first */
	unsigned nfds;
};

/* An answer that waits: submit (until durable), wait, reserve. The
 * generic part (ops_pend.c) keeps the list, the ids and the clock; each
 * kind brings its callbacks and its own fields below. */
struct pend;
struct dd_server;

/* One tick of dd_ops_tick(), as each pend's tick sees it. */
struct dd_pend_tick {
	uint64_t now; /* CLOCK_MONOTONIC ns */
	int log_err;  /* dd_state_error() while answers wait for durability, else 0 */
};

struct dd_pend_ops {
	/* ids[] are in p->map, and one of them is done there (durable, or
	 * ended): once p->left reaches 0 the answer goes out. May free @p. */
	void (*release)(struct dd_server *srv, struct pend *p, uint64_t id);
	/* Every tick while not held: time-outs, polls, a dead connection.
	 * May free @p. */
	void (*tick)(struct dd_server *srv, struct pend *p, const struct dd_pend_tick *t);
	/* Every tick while held (p->held): the request tries again. May free @p. */
	void (*retry)(struct dd_server *srv, struct pend *p);
	/* What the kind holds, freed before @p goes; NULL none. */
	void (*destroy)(struct dd_server *srv, struct pend *p);
	bool poll; /* ticks every 5 ms, not 50 (a reserve that waits) */
};

struct pend {
	struct pend *next, *prev; /* the server's list, for time-outs */
	const struct dd_pend_ops *ops;
	struct conn *c;
	json_t *tag;
	uint64_t deadline;  /* CLOCK_MONOTONIC ns, UINT64_MAX none */
	uint64_t *ids;
	size_t n, left;     /* left: ids in @map not done yet */
	struct dd_idmap *map; /* where ids wait (the server's durable_wait or
			       * end_wait), or NULL */
	uint64_t since;     /* when it began waiting */
	struct held_req *held; /* a request held for the engine's room: its
				* connection reads nothing meanwhile (ops_submit.c) */
	/* submit */
	struct dd_perr_s { const char *code; char msg[320]; } err; /* submit_batch cut short */
	bool has_err;
	bool batch;         /* answered with "ids", else "id" */
	size_t sent;        /* jobs in the engine so far */
	bool *known;        /* ids[i] is an earlier job's (known key) */
	int *fds;           /* job i's stdin descriptor (-1 none), or NULL;
			     * closed once the engine has its copy */
	/* wait */
	json_t *jobs;       /* answers so far, by index */
	uint32_t *order;    /* indexes of ids, sorted by id */
	bool single;        /* answered with "job", else "jobs" */
	/* reserve */
	char queue[64];
	uint64_t ttr;
	uint32_t owner;
};

struct dd_server {
	struct dd_dcfg cfg;
	struct dd_engine *eng;
	int epfd, sigfd, evfd;
	int unix_fd, tcp_fd;
	char token[256];
	struct conn conns; /* list head */
	struct conn *graveyard; /* closed, unreferenced: freed after the turn */
	_Atomic unsigned nconns; /* atomic: the metrics thread reads it */
	uint64_t serial;
	struct pend pends; /* list head */
	struct dd_idmap *durable_wait; /* job id -> struct pend (submit) */
	struct dd_idmap *end_wait;     /* job id -> struct pend (wait) */
	struct dd_events *events;
	unsigned npolls, nwatchers, nheld, nresume; /* npolls: pends whose ops poll */
	bool draining, stop;
	/* a signal (not a drain) stops it: running process jobs go on under
	 * the supervisor for the next start */
	bool leave_running;
	unsigned held_fds;     /* passed, not used yet: every conn's nfds */
	uint64_t accept_resume; /* CLOCK_MONOTONIC ns: listening paused (out of
				 * descriptors) until then; 0 not paused */
	_Atomic uint64_t requests, errors; /* likewise */
	struct dd_metrics *metrics;
	int64_t rt_offset; /* CLOCK_REALTIME - CLOCK_MONOTONIC */
	struct dd_fastsub fast; /* the submit_batch fast path's buffers */
	int state_err;          /* dd_state_error() when last read, for the log */
	uint64_t state_checked, state_err_since;
};

/* server.c */
/* Points stderr, the log, at @path (appended), a line at a time.
 * Returns 0 or -errno. */
int dd_server_open_log(const char *path);
int dd_server_init(struct dd_server *srv);
int dd_server_listen_unix(struct dd_server *srv, const char *path, char *err, size_t errlen);
int dd_server_listen_tcp(struct dd_server *srv, const char *hostport, char *err, size_t errlen);
/* Runs until a drain (signal or request). Returns 0 or -1. */
int dd_server_run(struct dd_server *srv);
void dd_server_close_listeners(struct dd_server *srv);
/* After the engine stopped: last answers, then every connection closed. */
void dd_server_finish(struct dd_server *srv);
void dd_server_destroy(struct dd_server *srv);
/* Queues one line (adds the newline) for @c; the loop flushes it. */
void dd_conn_send(struct conn *c, const char *line, size_t len);
void dd_conn_unref(struct conn *c);
/* The oldest descriptor @c passed and has not used (the caller owns it
 * now), or -1 when there is none. */
int dd_conn_take_fd(struct conn *c);
void dd_server_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* metrics.c: Prometheus text on --metrics HOST:PORT (libmicrohttpd, its
 * own thread). Returns 0, or -1 with a message in @err. */
int dd_metrics_start(struct dd_server *srv, const char *hostport, char *err, size_t errlen);
void dd_metrics_stop(struct dd_server *srv);

/* ops.c */
void dd_ops_handle(struct conn *c, const char *line, size_t len);
void dd_ops_reply(struct conn *c, json_t *tag, json_t *result);
void dd_ops_error(struct conn *c, json_t *tag, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* After the engine's callbacks rang: answers that were waiting for them. */
void dd_ops_events(struct dd_server *srv);
/* Time-outs of waits and reserves, retries of reserves, log errors. */
void dd_ops_tick(struct dd_server *srv);
uint64_t dd_ops_next_tick(struct dd_server *srv); /* ms to wait, -1 none */
void dd_pend_free(struct dd_server *srv, struct pend *p);

/* jobjson.c */
json_t *dd_job_json(const struct dd_server *srv, const struct dd_job_info *info);
json_t *dd_event_json(const struct dd_server *srv, const struct dd_event *ev);
/* @win: counters and latencies since the window's last read, or NULL;
 * !@latency: no histogram summaries (no "latency" objects, and the probe
 * only its status); then @win must be NULL */
json_t *dd_stats_json(struct dd_server *srv, struct dd_stats_window *win, bool latency);

#endif
