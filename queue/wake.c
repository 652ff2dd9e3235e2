/* Spin-then-park wake-up (an event count; see queue.h for the protocol). */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "dd_clock.h"
#include "queue.h"

void dd_queue_wake_init(struct dd_queue_wake *w)
{
	atomic_init(&w->epoch, 0);
	atomic_init(&w->sleeping, 0);
	atomic_init(&w->parks, 0);
	atomic_init(&w->wakes, 0);
	w->park = NULL;
	w->park_ctx = NULL;
}

void dd_queue_wake_notify(struct dd_queue_wake *w)
{
	/* Pairs with the fence in dd_queue_wake_wait(): our element store is
	 * ordered before the load of "sleeping". */
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&w->sleeping, memory_order_relaxed))
		return;
	atomic_fetch_add_explicit(&w->epoch, 1, memory_order_release);
	atomic_fetch_add_explicit(&w->wakes, 1, memory_order_relaxed);
	syscall(SYS_futex, &w->epoch, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

int dd_queue_wake_wait(struct dd_queue_wake *w, dd_queue_ready_fn ready, void *arg,
		       uint64_t spin_ns, uint64_t timeout_ns)
{
	if (ready(arg))
		return 1;
	uint64_t start = 0;
	uint64_t budget = w->spin_budget && w->spin_budget < spin_ns ? w->spin_budget : spin_ns;
	if (budget) {
		start = dd_mono_ns();
		for (unsigned i = 1;; i++) {
			if (ready(arg)) {
				w->spin_budget = budget * 2 < spin_ns ? budget * 2 : spin_ns;
				return 1;
			}
			dd_queue_cpu_relax();
			if ((i & 63) == 0) {
				/* Spin politely: a thread that shares this CPU (a
				 * submitter, on a small machine) gets it at once. */
				sched_yield();
				uint64_t now = dd_mono_ns();
				if (now - start >= budget)
					break;
				if (timeout_ns != UINT64_MAX && now - start >= timeout_ns)
					return 0;
			}
		}
	}
	uint32_t epoch = atomic_load_explicit(&w->epoch, memory_order_acquire);
	atomic_store_explicit(&w->sleeping, 1, memory_order_relaxed);
	/* Pairs with the fence in dd_queue_wake_notify(). */
	atomic_thread_fence(memory_order_seq_cst);
	if (ready(arg)) {
		atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
		return 1;
	}
	struct timespec ts, *tsp = NULL;
	if (timeout_ns != UINT64_MAX) {
		uint64_t left = timeout_ns;
		if (budget) {
			uint64_t spent = dd_mono_ns() - start;
			left = spent >= timeout_ns ? 0 : timeout_ns - spent;
		}
		ts.tv_sec = (time_t)(left / 1000000000ull);
		ts.tv_nsec = (long)(left % 1000000000ull);
		tsp = &ts;
	}
	atomic_fetch_add_explicit(&w->parks, 1, memory_order_relaxed);
	uint64_t parked = spin_ns ? dd_mono_ns() : 0;
	/* EAGAIN: a producer bumped the epoch after we read it, so it saw us. */
	if (w->park)
		w->park(w->park_ctx, &w->epoch, epoch, tsp);
	else
		syscall(SYS_futex, &w->epoch, FUTEX_WAIT_PRIVATE, epoch, tsp, NULL, 0);
	atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
	if (spin_ns) {
		/* woken within what a full spin would have covered: spin longer
		 * next time; else the CPU is better given away sooner */
		uint64_t slept = dd_mono_ns() - parked;
		if (slept < spin_ns)
			budget = budget * 2 > DD_QUEUE_SPIN_FLOOR_NS ? budget * 2 : DD_QUEUE_SPIN_FLOOR_NS;
		else
			budget /= 2;
		w->spin_budget = budget < DD_QUEUE_SPIN_FLOOR_NS ? DD_QUEUE_SPIN_FLOOR_NS
				 : budget < spin_ns		  ? budget
								  : spin_ns;
	}
	return ready(arg) ? 1 : 0;
}
