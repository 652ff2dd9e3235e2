/* Answers that wait: their bookkeeping, and what moves them on: the
 * engine's reports (an id durable, a job ended) and the clock. What an
 * answer waits for and how it ends are its kind's (struct dd_pend_ops:
 * submit in ops_submit.c, wait in ops_jobs.c, reserve in ops_lease.c). */
#include <stdlib.h>

#include "events.h"
#include "ops.h"
#include "server.h"

struct pend *dd_pend_new(struct conn *c, const struct dd_pend_ops *ops, json_t *tag, size_t n)
{
	struct dd_server *srv = c->srv;
	struct pend *p = calloc(1, sizeof(*p));
	if (!p || (n && !(p->ids = calloc(n, sizeof(uint64_t))))) {
		free(p);
		return NULL;
	}
	p->ops = ops;
	p->c = c;
	c->refs++;
	p->tag = tag ? json_incref(tag) : NULL;
	p->n = n;
	p->deadline = UINT64_MAX;
	p->since = dd_mono_ns();
	if (ops->poll)
		srv->npolls++;
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
	if (p->left && p->map)
		for (size_t i = 0; i < p->n; i++)
			dd_idmap_del(p->map, p->ids[i], p);
	if (p->ops->destroy)
		p->ops->destroy(srv, p);
	if (p->ops->poll)
		srv->npolls--;
	json_decref(p->tag);
	free(p->ids);
	dd_conn_unref(p->c);
	free(p);
}

static void release(void *val, uint64_t id, void *arg)
{
	struct pend *p = val;
	p->ops->release(arg, p, id);
}

void dd_ops_events(struct dd_server *srv)
{
	const struct dd_evrec *ev;
	const uint64_t *dur;
	size_t nev, ndur;
	dd_events_take(srv->events, &ev, &nev, &dur, &ndur);
	for (size_t i = 0; i < ndur; i++)
		dd_idmap_take(srv->durable_wait, dur[i], release, srv);
	for (size_t i = 0; i < nev && srv->eng; i++) {
		if (dd_state_terminal(ev[i].ev.state))
			dd_idmap_take(srv->end_wait, ev[i].ev.id, release, srv);
		if (srv->nwatchers)
			dd_op_watch_event(srv, &ev[i]);
	}
}

void dd_ops_tick(struct dd_server *srv)
{
	struct dd_pend_tick t = {.now = dd_mono_ns()};
	/* not dd_stats(): its histogram summaries cost tens of µs, and this
	 * runs every millisecond (measured: docs/BENCHMARKS.md, "Measured
	 * choices: stats without histograms") */
	t.log_err = dd_idmap_count(srv->durable_wait) ? dd_state_error(srv->eng) : 0;
	for (struct pend *p = srv->pends.next, *nx; srv->nheld && p != &srv->pends; p = nx) {
		nx = p->next;
		if (p->held)
			p->ops->retry(srv, p);
	}
	for (struct pend *p = srv->pends.next, *nx; p != &srv->pends; p = nx) {
		nx = p->next;
		if (!p->held) /* held: not all in the engine yet */
			p->ops->tick(srv, p, &t);
	}
}

uint64_t dd_ops_next_tick(struct dd_server *srv)
{
	if (srv->nheld)
		return 1; /* ms: a request held for the engine's room tries again */
	if (srv->npolls)
		return 5; /* ms: an answer that polls (a reserve that waits) looks again */
	if (srv->pends.next != &srv->pends)
		return 50;
	return (uint64_t)-1;
}
