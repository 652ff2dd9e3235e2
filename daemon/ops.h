/* daemon/ops*.c — what the operation files share. Private. */
#ifndef DD_DAEMON_OPS_H
#define DD_DAEMON_OPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "events.h"
#include "proto.h"
#include "server.h"

#define SUBMIT_CHECK_NS 100000000ull /* a submit waiting this long: is the log stuck? */
#define DEFAULT_TTR_NS 60000000000ull

/* ops.c: answers and rights */
void dd_ops_send_json(struct conn *c, json_t *o); /* steals o */
json_t *dd_ops_error_obj(json_t *tag, const char *code, const char *msg);
void dd_ops_engine_error(struct conn *c, json_t *tag, int err, const char *what);
bool dd_ops_may_touch(const struct conn *c, const struct dd_job_info *in);

/* ops_pend.c: an answer that waits, on @c's behalf, with its kind's
 * callbacks and room for @n ids; NULL when out of memory. */
struct pend *dd_pend_new(struct conn *c, const struct dd_pend_ops *ops, json_t *tag, size_t n);

/* ops_jobs.c */
/* The request's "id"; answers the error itself and returns false. */
bool dd_ops_get_id(struct conn *c, struct dd_req *r, uint64_t *id);
/* Looks a job up for @c; answers the error itself and returns false. */
bool dd_ops_lookup(struct conn *c, json_t *tag, uint64_t id, struct dd_job_info *in, bool own);
void dd_op_get(struct conn *c, struct dd_req *r);
void dd_op_wait(struct conn *c, struct dd_req *r);
void dd_op_watch(struct conn *c, struct dd_req *r, bool on);
/* A state change for the connections that watch it. */
void dd_op_watch_event(struct dd_server *srv, const struct dd_evrec *r);
void dd_op_cancel(struct conn *c, struct dd_req *r);
void dd_op_list(struct conn *c, struct dd_req *r);
void dd_op_output(struct conn *c, struct dd_req *r);

/* ops_signal.c */
void dd_op_signal(struct conn *c, struct dd_req *r);

/* ops_submit.c */
void dd_op_submit(struct conn *c, struct dd_req *r, bool batch, const char *line, size_t len);
/* A plain submit_batch through daemon/fastsub.c: true once handled (and
 * answered, now or when durable), false when the full decoder must run. */
bool dd_op_submit_fast(struct conn *c, const char *line, size_t len);

/* ops_lease.c */
void dd_op_reserve(struct conn *c, struct dd_req *r);
void dd_op_lease(struct conn *c, struct dd_req *r);

#endif
