/* daemon/ops*.c — what the operation files share. Private. */
#ifndef DD_DAEMON_OPS_H
#define DD_DAEMON_OPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto.h"
#include "server.h"

#define SUBMIT_CHECK_NS 100000000ull /* a submit waiting this long: is the log stuck? */
#define DEFAULT_TTR_NS 60000000000ull

/* ops.c: answers and rights */
void send_json(struct conn *c, json_t *o); /* steals o */
json_t *error_obj(json_t *tag, const char *code, const char *msg);
void engine_error(struct conn *c, json_t *tag, int err, const char *what);
bool may_touch(const struct conn *c, const struct dd_job_info *in);

/* ops_pend.c */
struct pend *pend_new(struct conn *c, enum pend_kind kind, json_t *tag, size_t n);
json_t *ids_json(const uint64_t *ids, size_t n);
void submit_answer(struct dd_server *srv, struct pend *p);
void on_durable(void *val, uint64_t id, void *arg);

/* ops_jobs.c */
bool get_id(struct conn *c, struct dd_req *r, uint64_t *id);
/* Looks a job up for @c; answers the error itself and returns false. */
bool lookup(struct conn *c, json_t *tag, uint64_t id, struct dd_job_info *in, bool own);
void wait_answer(struct dd_server *srv, struct pend *p);
void on_end(void *val, uint64_t id, void *arg);
void op_get(struct conn *c, struct dd_req *r);
void op_wait(struct conn *c, struct dd_req *r);
void op_watch(struct conn *c, struct dd_req *r, bool on);
void op_cancel(struct conn *c, struct dd_req *r);
void op_list(struct conn *c, struct dd_req *r);
void op_output(struct conn *c, struct dd_req *r);

/* ops_signal.c */
void op_signal(struct conn *c, struct dd_req *r);

/* ops_submit.c */
void op_submit(struct conn *c, struct dd_req *r, bool batch, const char *line, size_t len);
/* Tries a held submit again (its connection reads nothing meanwhile). */
void dd_submit_retry(struct pend *p);
/* Drops @p's held request, if any, and lets its connection read again. */
void dd_held_release(struct pend *p);
/* A plain submit_batch through daemon/fastsub.c: true once handled (and
 * answered, now or when durable), false when the full decoder must run. */
bool op_submit_fast(struct conn *c, const char *line, size_t len);

/* ops_lease.c */
/* Returns 1 leased (answered), 0 none now, -1 error (answered). */
int try_reserve(struct conn *c, json_t *tag, const char *queue, uint64_t ttr, uint32_t owner);
void op_reserve(struct conn *c, struct dd_req *r);
void op_lease(struct conn *c, struct dd_req *r);

#endif
