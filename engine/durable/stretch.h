/* engine/durable/ — the applier naps between short stretches of work
 * while it has time to spare (its CPU time over the last window, not
 * urgent): stretch.c. Applier thread only. */
#ifndef DD_ENGINE_DURABLE_STRETCH_H
#define DD_ENGINE_DURABLE_STRETCH_H

#include <stdbool.h>
#include <stdint.h>

struct dd_stretch {
	bool on;
	uint64_t wall0, cpu0; /* the window's start: wall and thread CPU time */
};
void dd_stretch_init(struct dd_stretch *t, uint64_t now);
/* Closes the window at @now and decides for the next one. */
void dd_stretch_window(struct dd_stretch *t, uint64_t now, bool urgent);
/* A nap if on (@arg: the struct dd_stretch); a store pause hook. */
void dd_stretch_pause(void *arg);

#endif
