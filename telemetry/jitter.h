/* The eBPF jitter probe: what its kernel side (jitter.bpf.c) and loader
 * (jitter.c) share. Run-queue latency — from a thread being made runnable
 * (woken, or preempted while still runnable) to its getting a CPU — per
 * role, in log-linear nanosecond buckets: 16 per power of two, so the
 * 32-64 µs range around a 50 µs target is split into 2 µs steps. */
#ifndef DD_TEL_JITTER_H
#define DD_TEL_JITTER_H

#define DD_JIT_SUB_BITS 4
#define DD_JIT_SUB (1u << DD_JIT_SUB_BITS)
#define DD_JIT_POW 40 /* 2^40 ns ~ 18 min; longer waits clamp */
#define DD_JIT_SLOTS (DD_JIT_SUB + (DD_JIT_POW - DD_JIT_SUB_BITS + 1) * DD_JIT_SUB)
/* the array is a power of two long, so that the BPF side can mask an index
 * where the verifier would not follow a comparison */
#define DD_JIT_SLOT_CAP 1024

enum dd_jit_role {
	DD_JIT_OTHER = 0, /* a thread of the process not registered */
	DD_JIT_REACTOR = 1,
	DD_JIT_WORKER = 2,
	DD_JIT_IO = 3,    /* the applier, io_uring workers */
	DD_JIT_ROLES = 4,
};

struct dd_jit_hist {
	unsigned long long slot[DD_JIT_SLOT_CAP]; /* [DD_JIT_SLOTS..] stay 0 */
	unsigned long long count, sum, max;
	unsigned long long preempted; /* involuntary switches away (not yields) */
};

#endif
