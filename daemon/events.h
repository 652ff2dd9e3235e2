/* From the engine's threads to the server's: state changes and
 * durability, queued under a mutex and signalled on an eventfd. The
 * callbacks run on reactors, so they copy and return; when nobody waits
 * for an end and nobody watches they do almost nothing. Also the per-user
 * count of live jobs, for back-pressure. */
#ifndef DD_DAEMON_EVENTS_H
#define DD_DAEMON_EVENTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dispatchd.h"

struct dd_events;

int dd_events_create(struct dd_events **out);
void dd_events_destroy(struct dd_events *q);
int dd_events_fd(const struct dd_events *q);
/* For dd_config: on_event / on_durable with this queue as the argument. */
void dd_events_on_event(const struct dd_event *ev, void *arg);
void dd_events_on_durable(const uint64_t *ids, size_t n, void *arg);
/* Interest: ends are queued while ends > 0, every change while all > 0. */
void dd_events_want(struct dd_events *q, int ends, int all);
/* A state change as queued: the event, with its kind and reason copied
 * (the engine's pointers are good only during the callback; a reason may
 * be the job's own text). ev.kind and ev.reason are NULL. */
struct dd_evrec {
	struct dd_event ev;
	char kind[64];
	char reason[DD_REASON_MAX];
};

/* Server: swaps out what was queued. The arrays stay valid until the next
 * call; clears the eventfd. */
void dd_events_take(struct dd_events *q, const struct dd_evrec **ev, size_t *nev,
		    const uint64_t **dur, size_t *ndur);

/* Live jobs per uid: add at submit (server), drop at the end (callback). */
void dd_events_user_add(struct dd_events *q, uint32_t uid, int64_t n);
int64_t dd_events_user_live(struct dd_events *q, uint32_t uid);

#endif
