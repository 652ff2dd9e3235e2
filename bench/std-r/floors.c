/* Runs the physical floors one after another, before the engine starts
 * (its threads would be the noise they measure otherwise). */
#include <stdio.h>
#include <string.h>

#include "floor.h"

void floors_measure(double seconds, const char *state_dir, const char *program,
		    unsigned spawn_threads, struct floors *f)
{
	memset(f, 0, sizeof(*f));
	int r;
	if ((r = stall_floor_measure(seconds, &f->stall)) < 0)
		fprintf(stderr, "std-r: cannot measure the stall floor: %s\n", strerror(-r));
	f->stall_ok = r == 0;
	if (cyclictest_floor_measure(seconds, &f->cyclictest) < 0)
		fprintf(stderr, "std-r: no cyclictest floor: %s\n", f->cyclictest.status);
	if (state_dir) {
		if ((r = fsync_floor_measure(state_dir, seconds, &f->fsync)) < 0)
			fprintf(stderr, "std-r: cannot measure the fsync floor in %s: %s\n", state_dir,
				strerror(-r));
		f->fsync_ok = r == 0;
	}
	if (program) {
		if ((r = spawn_floor_measure(program, spawn_threads, seconds, &f->spawn)) < 0)
			fprintf(stderr, "std-r: cannot measure the spawn floor with %s: %s\n", program,
				strerror(-r));
		f->spawn_ok = r == 0;
	}
	/* a hand-over is ~100 ns: half a second holds millions */
	if ((r = handoff_floor_measure(seconds < 0.5 ? seconds : 0.5, &f->handoff)) < 0)
		fprintf(stderr, "std-r: no cache-line hand-off floor: %s\n",
			f->handoff.cpu_b < 0 ? "fewer than two CPUs" : strerror(-r));
	f->handoff_ok = r == 0;
}
