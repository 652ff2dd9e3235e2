/* The request decoder: one NDJSON line into an operation and its checked
 * fields (docs/PROTOCOL.md). Pure functions of their input: no engine, no
 * sockets, so the fuzz target drives exactly what the server runs. */
#ifndef DD_DAEMON_PROTO_H
#define DD_DAEMON_PROTO_H

#include <jansson.h>
#include <stdbool.h>

#include "b64.h"
#include "dispatchd.h"

enum dd_op {
	OP_PING, OP_AUTH, OP_SUBMIT, OP_SUBMIT_BATCH, OP_GET, OP_WAIT, OP_WATCH, OP_UNWATCH,
	OP_CANCEL, OP_LIST, OP_OUTPUT, OP_RESERVE, OP_ACK, OP_NACK, OP_TOUCH, OP_STATS,
	OP_DRAIN, OP_SIGNAL, OP_COUNT,
};

/* An error for the client: a short code ("EINVAL") and a message. */
struct dd_perr {
	const char *code;
	char msg[256];
};
#define DD_PERR_MSG 256

struct dd_req {
	json_t *root; /* owned */
	json_t *tag;  /* borrowed from root, NULL if none */
	enum dd_op op;
};

/* Parses one request line (without its newline). Checks that it is a JSON
 * object with a known "op" and only that op's fields, each of its type.
 * Returns 0, or -1 with @e filled (r->tag is still set when the line was
 * an object with a tag, so the error can carry it). */
int dd_proto_parse(const char *line, size_t len, struct dd_req *r, struct dd_perr *e);
void dd_req_free(struct dd_req *r);
const char *dd_op_name(enum dd_op op);

/* A job description decoded into an engine spec, with the storage it
 * points into. */
struct dd_jobdec {
	struct dd_job_spec spec;
	struct dd_exec_spec exec;
	struct dd_rlimit rl[DD_RLIMITS_MAX];
	const char **argv, **env;
	char *envbuf; /* "K=V\0K=V\0..." */
	uint64_t *deps;
	uint8_t *kinds; /* [spec.ndeps] with "dependency", else NULL */
	void *payload;
	char queue[64];
	struct dd_array_spec array;
	struct dd_array_range *ranges; /* "array": malloc'd, or NULL */
};

/* submit_batch's top-level "env", shared by the process jobs of the batch:
 * decoded once, then each job's "env" adds to it and overrides it. */
struct dd_envdec {
	json_t *obj;      /* borrowed from the request; NULL: the batch has none */
	const char **env; /* "K=V" strings, NULL-terminated */
	char *buf;
	size_t bytes;     /* what the strings take, NULs included */
};

/* Decodes @root's "env" (a submit_batch request) into @ed (zeroed when it
 * has none). Returns 0, or -1 with @e filled; free @ed either way. */
int dd_proto_batch_env(json_t *root, struct dd_envdec *ed, struct dd_perr *e);
void dd_envdec_free(struct dd_envdec *ed);

/* Decodes a submit's fields (@top: the request itself, which also holds
 * op and tag) or one element of submit_batch's "jobs" (@shared: the
 * batch's env, or NULL; it must outlive @jd), field names and types
 * checked. A job with "stdin_fd" gets DD_EXEC_STDIN_FD and stdin_fd -1:
 * the caller supplies the descriptor. Returns 0, or -1 with @e filled. */
int dd_proto_job(json_t *obj, bool top, const struct dd_envdec *shared, struct dd_jobdec *jd,
		 struct dd_perr *e);
void dd_jobdec_free(struct dd_jobdec *jd);

/* Helpers for optional fields that dd_proto_parse() has type-checked. */
bool dd_get_u64(json_t *o, const char *key, uint64_t *out);
bool dd_get_secs(json_t *o, const char *key, uint64_t *ns); /* seconds -> ns */

/* Error code and message for an engine error. */
void dd_perr_engine(struct dd_perr *e, int err, const char *what);

#endif
