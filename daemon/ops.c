/* The operations (docs/PROTOCOL.md): each request line is decoded by
 * proto.c, checked against the caller's rights, and handed to its
 * operation (ops_*.c); answers go out at once, or later through a struct
 * pend when they wait for the engine (ops_pend.c). This file: answers,
 * rights, and the operations too small for a file of their own. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dd_config.h"
#include "events.h"
#include "ops.h"
#include "proto.h"
#include "server.h"

/* ---- answers ---- */

void dd_ops_send_json(struct conn *c, json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!s) {
		/* cannot even say it: the client would wait for ever */
		const char *oom = "{\"ok\":false,\"error\":{\"code\":\"ENOMEM\",\"message\":\"out of memory\"}}";
		dd_conn_send(c, oom, strlen(oom));
		return;
	}
	dd_conn_send(c, s, strlen(s));
	free(s);
}

void dd_ops_reply(struct conn *c, json_t *tag, json_t *result)
{
	json_t *o = json_object();
	if (tag)
		json_object_set(o, "tag", tag);
	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "result", result ? result : json_object());
	dd_ops_send_json(c, o);
}

json_t *dd_ops_error_obj(json_t *tag, const char *code, const char *msg)
{
	json_t *o = json_object();
	if (tag)
		json_object_set(o, "tag", tag);
	json_object_set_new(o, "ok", json_false());
	json_object_set_new(o, "error", json_pack("{s:s, s:s}", "code", code, "message", msg));
	return o;
}

void dd_ops_error(struct conn *c, json_t *tag, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->srv->errors++;
	if (c->srv->cfg.verbose > 1)
		dd_server_log("connection %llu: %s: %s", (unsigned long long)c->serial, code, msg);
	dd_ops_send_json(c, dd_ops_error_obj(tag, code, msg));
}

void dd_ops_engine_error(struct conn *c, json_t *tag, int err, const char *what)
{
	struct dd_perr e;
	dd_perr_engine(&e, err, what);
	dd_ops_error(c, tag, e.code, "%s", e.msg);
}

bool dd_ops_may_touch(const struct conn *c, const struct dd_job_info *in)
{
	return c->uid == 0 || c->uid == in->uid;
}

/* ---- the rest ---- */

static void op_auth(struct conn *c, struct dd_req *r)
{
	const char *t = json_string_value(json_object_get(r->root, "token"));
	size_t tl = t ? strlen(t) : 0, kl = strlen(c->srv->token);
	if (!c->tcp) {
		dd_ops_reply(c, r->tag, json_pack("{s:b}", "authenticated", 1));
		return;
	}
	/* compare all of it whatever the first difference: no timing hint */
	unsigned char d = tl != kl;
	for (size_t i = 0; i < kl; i++)
		d |= (unsigned char)(c->srv->token[i] ^ (i < tl ? t[i] : 0));
	if (d || !kl) {
		dd_ops_error(c, r->tag, "EPERM", "wrong token");
		c->closing = true; /* no second guess on this connection */
		return;
	}
	c->authed = true;
	c->uid = (uint32_t)geteuid();
	c->gid = (uint32_t)getegid();
	dd_ops_reply(c, r->tag, json_pack("{s:b}", "authenticated", 1));
}

static void op_drain(struct conn *c, struct dd_req *r)
{
	if (c->uid != 0 && c->uid != geteuid()) {
		dd_ops_error(c, r->tag, "EPERM", "only root or the daemon's user may drain it");
		return;
	}
	c->srv->draining = true;
	dd_server_log("drain requested by uid %u", c->uid);
	dd_ops_reply(c, r->tag, json_pack("{s:b}", "draining", 1));
}

/* "window": since this connection's last windowed read; "latency": false
 * leaves the histogram summaries out, which makes it cheap enough for a
 * client to poll every millisecond or two (they cost tens of µs here). */
/* Alive, who the caller is, and whether process jobs have cgroups and
 * the supervisor. */
static void op_ping(struct conn *c, struct dd_req *r)
{
	bool cg, sup;
	const char *cgs = dd_engine_cgroups(c->srv->eng, &cg);
	const char *sups = dd_engine_supervisor(c->srv->eng, &sup);
	dd_ops_reply(c, r->tag, json_pack("{s:b, s:s, s:i, s:b, s:s, s:b, s:s}", "pong", 1,
					  "version", DD_VERSION, "uid", (int)c->uid, "cgroups", cg,
					  "cgroup_status", cgs, "supervisor", sup,
					  "supervisor_status", sups));
}

static void op_stats(struct conn *c, struct dd_req *r)
{
	bool window = json_is_true(json_object_get(r->root, "window"));
	bool latency = !json_is_false(json_object_get(r->root, "latency"));
	if (window && !latency) {
		dd_ops_error(c, r->tag, "EINVAL",
			     "\"latency\": false is for cumulative stats: a window reads its "
			     "histograms to start the next one");
		return;
	}
	if (window && !c->win && dd_stats_window_create(c->srv->eng, &c->win) < 0)
		c->win = NULL; /* out of memory: cumulative it is */
	dd_ops_reply(c, r->tag, dd_stats_json(c->srv, window ? c->win : NULL, latency));
}

void dd_ops_handle(struct conn *c, const char *line, size_t len)
{
	struct dd_server *srv = c->srv;
	struct dd_req r;
	struct dd_perr e;
	srv->requests++;
	if ((!c->tcp || c->authed) && dd_op_submit_fast(c, line, len))
		return;
	if (dd_proto_parse(line, len, &r, &e) < 0) {
		dd_ops_error(c, r.tag, e.code, "%s", e.msg);
		dd_req_free(&r);
		return;
	}
	if (c->tcp && !c->authed && r.op != OP_AUTH && r.op != OP_PING) {
		dd_ops_error(c, r.tag, "EPERM", "authenticate first: {\"op\":\"auth\",\"token\":...}");
		dd_req_free(&r);
		return;
	}
	switch (r.op) {
	case OP_PING: op_ping(c, &r); break;
	case OP_AUTH: op_auth(c, &r); break;
	case OP_SUBMIT: dd_op_submit(c, &r, false, line, len); break;
	case OP_SUBMIT_BATCH: dd_op_submit(c, &r, true, line, len); break;
	case OP_GET: dd_op_get(c, &r); break;
	case OP_WAIT: dd_op_wait(c, &r); break;
	case OP_WATCH: dd_op_watch(c, &r, true); break;
	case OP_UNWATCH: dd_op_watch(c, &r, false); break;
	case OP_CANCEL: dd_op_cancel(c, &r); break;
	case OP_LIST: dd_op_list(c, &r); break;
	case OP_OUTPUT: dd_op_output(c, &r); break;
	case OP_RESERVE: dd_op_reserve(c, &r); break;
	case OP_ACK:
	case OP_NACK:
	case OP_TOUCH: dd_op_lease(c, &r); break;
	case OP_STATS: op_stats(c, &r); break;
	case OP_DRAIN: op_drain(c, &r); break;
	case OP_SIGNAL: dd_op_signal(c, &r); break;
	default: dd_ops_error(c, r.tag, "EINVAL", "unknown op"); break;
	}
	dd_req_free(&r);
}
