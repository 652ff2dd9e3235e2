/* Answers that wait: their bookkeeping, what the engine's callbacks
 * release (durability, ends, watch events), and the clock (time-outs,
 * reserves that wait, a log that cannot be written). */
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

struct pend *pend_new(struct conn *c, enum pend_kind kind, json_t *tag, size_t n)
{
	struct dd_server *srv = c->srv;
	struct pend *p = calloc(1, sizeof(*p));
	if (!p || (n && !(p->ids = calloc(n, sizeof(uint64_t)))) ||
	    (n && kind == PEND_SUBMIT && !(p->known = calloc(n, sizeof(bool))))) {
		if (p)
			free(p->ids);
		free(p);
		return NULL;
	}
	p->kind = kind;
	p->c = c;
	c->refs++;
	p->tag = tag ? json_incref(tag) : NULL;
	p->n = n;
	p->deadline = UINT64_MAX;
	p->since = dd_mono_ns();
	p->next = &srv->pends;
	p->prev = srv->pends.prev;
	srv->pends.prev->next = p;
	srv->pends.prev = p;
	return p;
}

void dd_pend_free(struct dd_server *srv, struct pend *p)
{
	p->prev->next = p->next;
	p->next->prev = p->prev;
	struct dd_idmap *m = p->kind == PEND_SUBMIT ? srv->durable_wait : srv->end_wait;
	if (p->left)
		for (size_t i = 0; i < p->n; i++)
			dd_idmap_del(m, p->ids[i], p);
	if (p->kind == PEND_WAIT)
		dd_events_want(srv->events, -1, 0);
	if (p->kind == PEND_RESERVE)
		srv->nreserves--;
	dd_held_release(p); /* shutting down while it waited for room */
	json_decref(p->tag);
	json_decref(p->jobs);
	free(p->order);
	free(p->ids);
	free(p->known);
	dd_conn_unref(p->c);
	free(p);
}

json_t *ids_json(const uint64_t *ids, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer((json_int_t)ids[i]));
	return a;
}

/* {"tag":T,"ok":true,"result":{"ids":[...]}} written directly: the bytes
 * dd_ops_reply() would send (jansson keeps insertion order), without a
 * JSON object per id, which under load cost as much as the decoding. */
static void send_ids(struct conn *c, json_t *tag, const uint64_t *ids, size_t n)
{
	char *t = tag ? json_dumps(tag, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	size_t tl = t ? strlen(t) : 0, cap = tl + 64 + n * 21;
	char *s = (!tag || t) ? malloc(cap) : NULL;
	if (!s) {
		free(t);
		dd_ops_reply(c, tag, json_pack("{s:o}", "ids", ids_json(ids, n))); /* says ENOMEM */
		return;
	}
	size_t k = 0;
	if (t)
		k += (size_t)sprintf(s, "{\"tag\":%s,", t);
	else
		s[k++] = '{';
	k += (size_t)sprintf(s + k, "\"ok\":true,\"result\":{\"ids\":[");
	for (size_t i = 0; i < n; i++) {
		char d[20];
		int nd = 0;
		uint64_t v = ids[i];
		do
			d[nd++] = (char)('0' + v % 10);
		while ((v /= 10));
		if (i)
			s[k++] = ',';
		while (nd)
			s[k++] = d[--nd];
	}
	memcpy(s + k, "]}}", 3);
	dd_conn_send(c, s, k + 3);
	free(s);
	free(t);
}

void submit_answer(struct dd_server *srv, struct pend *p)
{
	if (!p->c->dead && p->batch && !p->has_err) {
		send_ids(p->c, p->tag, p->ids, p->n);
	} else if (!p->c->dead) {
		json_t *r = p->batch ? json_pack("{s:o}", "ids", ids_json(p->ids, p->n))
				     : json_pack("{s:I}", "id", (json_int_t)p->ids[0]);
		if (p->has_err) {
			json_t *o = error_obj(p->tag, p->err.code, p->err.msg);
			json_object_set_new(json_object_get(o, "error"), "submitted", r);
			p->c->srv->errors++;
			send_json(p->c, o);
		} else {
			dd_ops_reply(p->c, p->tag, r);
		}
	}
	p->left = 0;
	dd_pend_free(srv, p);
}

void on_durable(void *val, uint64_t id, void *arg)
{
	struct pend *p = val;
	if (--p->left == 0 && !p->held) /* held: answered once all are in */
		submit_answer(arg, p);
}


/* ---- from the engine's callbacks, and the clock ---- */

static void send_event(struct dd_server *srv, const struct dd_evrec *r)
{
	struct dd_event e = r->ev;
	const struct dd_event *ev = &e;
	e.reason = r->reason;
	char key[24];
	snprintf(key, sizeof(key), "%llu", (unsigned long long)ev->id);
	for (struct conn *c = srv->conns.next; c != &srv->conns; c = c->next) {
		if (!c->watching || c->dead || (c->watch_ids && !json_object_get(c->watch_ids, key)) ||
		    (c->watch_queue[0] && strcmp(c->watch_queue, r->kind)))
			continue;
		json_t *o = json_object();
		if (c->watch_tag)
			json_object_set(o, "tag", c->watch_tag);
		json_object_set_new(o, "event", dd_event_json(srv, ev));
		send_json(c, o);
	}
}

void dd_ops_events(struct dd_server *srv)
{
	const struct dd_evrec *ev;
	const uint64_t *dur;
	size_t nev, ndur;
	dd_events_take(srv->events, &ev, &nev, &dur, &ndur);
	for (size_t i = 0; i < ndur; i++)
		dd_idmap_take(srv->durable_wait, dur[i], on_durable, srv);
	for (size_t i = 0; i < nev && srv->eng; i++) {
		if (dd_state_terminal(ev[i].ev.state))
			dd_idmap_take(srv->end_wait, ev[i].ev.id, on_end, srv);
		if (srv->nwatchers)
			send_event(srv, &ev[i]);
	}
}

/* ETIMEDOUT naming the jobs that had not ended (the first few of them). */
static void wait_timed_out(struct pend *p)
{
	char ids[160];
	size_t k = 0, named = 0;
	ids[0] = 0;
	for (size_t i = 0; i < p->n && named < 5; i++) {
		if (!json_is_null(json_array_get(p->jobs, i)))
			continue;
		k += (size_t)snprintf(ids + k, sizeof(ids) - k, "%s%llu", named ? ", " : "",
				      (unsigned long long)p->ids[i]);
		named++;
	}
	if (p->left == 1)
		dd_ops_error(p->c, p->tag, "ETIMEDOUT", "job %s: had not ended within the timeout", ids);
	else
		dd_ops_error(p->c, p->tag, "ETIMEDOUT",
			     "jobs %s%s: %zu of %zu had not ended within the timeout", ids,
			     p->left > named ? ", ..." : "", p->left, p->n);
}

void dd_ops_tick(struct dd_server *srv)
{
	uint64_t now = dd_mono_ns();
	/* not dd_stats(): its histogram summaries cost tens of µs, and this
	 * runs every millisecond (5 % of a CPU under load, perf) */
	int log_err = dd_idmap_count(srv->durable_wait) ? dd_state_error(srv->eng) : 0;
	for (struct pend *p = srv->pends.next, *nx; srv->nheld && p != &srv->pends; p = nx) {
		nx = p->next;
		if (p->held)
			dd_submit_retry(p);
	}
	for (struct pend *p = srv->pends.next, *nx; p != &srv->pends; p = nx) {
		nx = p->next;
		if (p->held)
			continue; /* not all in the engine yet */
		if (p->kind == PEND_SUBMIT && log_err && now - p->since > SUBMIT_CHECK_NS) {
			/* the log cannot take them: the jobs failed "not logged" */
			struct dd_perr pe;
			dd_perr_engine(&pe, log_err, "not on disk");
			p->has_err = true;
			p->err.code = pe.code;
			snprintf(p->err.msg, sizeof(p->err.msg),
				 "%s; these jobs will not run: submit them again", pe.msg);
			submit_answer(srv, p);
		} else if (p->kind == PEND_RESERVE && !p->c->dead) {
			int got = try_reserve(p->c, p->tag, p->queue, p->ttr, p->owner);
			if (got == 0 && now >= p->deadline)
				dd_ops_reply(p->c, p->tag, json_pack("{s:n}", "job"));
			if (got != 0 || now >= p->deadline)
				dd_pend_free(srv, p);
		} else if (p->kind == PEND_WAIT && now >= p->deadline) {
			if (!p->c->dead)
				wait_timed_out(p);
			dd_pend_free(srv, p);
		} else if (p->c->dead && p->kind != PEND_SUBMIT) {
			dd_pend_free(srv, p);
		}
	}
}

uint64_t dd_ops_next_tick(struct dd_server *srv)
{
	if (srv->nheld)
		return 1; /* ms: a submit held for the engine's room tries again */
	if (srv->nreserves)
		return 5; /* ms: a reserve that waits looks again this often */
	if (srv->pends.next != &srv->pends)
		return 50;
	return (uint64_t)-1;
}
