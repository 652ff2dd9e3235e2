// SPDX-License-Identifier: GPL-2.0
/* The jitter probe's kernel side: tp_btf sched_wakeup, sched_wakeup_new
 * and sched_switch, filtered to one process (targ_tgid), timing each of
 * its threads from runnable to running. Settings are rodata set before
 * load; results go into one histogram per role. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "jitter.h"

#define TASK_RUNNING 0

const volatile pid_t targ_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);   /* tid */
	__type(value, u64); /* when it became runnable */
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u32); /* tid */
	__type(value, u32); /* enum dd_jit_role */
} roles SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DD_JIT_ROLES);
	__type(key, u32);
	__type(value, struct dd_jit_hist);
} hists SEC(".maps");

static __always_inline u32 log2_u64(u64 v)
{
	u32 r = 0, s;
	s = (v > 0xffffffffULL) << 5; v >>= s; r |= s;
	s = (v > 0xffff) << 4; v >>= s; r |= s;
	s = (v > 0xff) << 3; v >>= s; r |= s;
	s = (v > 0xf) << 2; v >>= s; r |= s;
	s = (v > 0x3) << 1; v >>= s; r |= s;
	r |= (u32)(v >> 1);
	return r;
}

static __always_inline u32 slot_of(u64 v)
{
	if (v < DD_JIT_SUB)
		return (u32)v;
	u32 e = log2_u64(v);
	if (e > DD_JIT_POW)
		return DD_JIT_SLOTS - 1;
	u32 m = (u32)(v >> (e - DD_JIT_SUB_BITS)) & (DD_JIT_SUB - 1);
	return DD_JIT_SUB + (e - DD_JIT_SUB_BITS) * DD_JIT_SUB + m;
}

static __always_inline struct dd_jit_hist *hist_of(u32 tid)
{
	u32 *r = bpf_map_lookup_elem(&roles, &tid);
	u32 role = r && *r < DD_JIT_ROLES ? *r : DD_JIT_OTHER;
	return bpf_map_lookup_elem(&hists, &role);
}

static __always_inline void runnable(struct task_struct *p)
{
	if (BPF_CORE_READ(p, tgid) != targ_tgid)
		return;
	u32 tid = BPF_CORE_READ(p, pid);
	u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &tid, &now, BPF_ANY);
}

static __always_inline int switched(bool preempt, struct task_struct *prev,
				    struct task_struct *next)
{
	/* taken off the CPU while still runnable (preempted, or it yielded):
	 * its wait starts now; only a preemption is counted as one */
	if (BPF_CORE_READ(prev, tgid) == targ_tgid &&
	    BPF_CORE_READ(prev, __state) == TASK_RUNNING) {
		u32 ptid = BPF_CORE_READ(prev, pid);
		u64 now = bpf_ktime_get_ns();
		bpf_map_update_elem(&start, &ptid, &now, BPF_ANY);
		struct dd_jit_hist *h = preempt ? hist_of(ptid) : 0;
		if (h)
			__sync_fetch_and_add(&h->preempted, 1);
	}
	if (BPF_CORE_READ(next, tgid) != targ_tgid)
		return 0;
	u32 tid = BPF_CORE_READ(next, pid);
	u64 *t0 = bpf_map_lookup_elem(&start, &tid);
	if (!t0)
		return 0;
	u64 d = bpf_ktime_get_ns() - *t0;
	bpf_map_delete_elem(&start, &tid);
	struct dd_jit_hist *h = hist_of(tid);
	if (!h)
		return 0;
	u32 s = slot_of(d) & (DD_JIT_SLOT_CAP - 1); /* slot_of() < DD_JIT_SLOTS already */
	__sync_fetch_and_add(&h->slot[s], 1);
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum, d);
	if (d > h->max)
		h->max = d; /* racy between CPUs: a lower max may win, rarely */
	return 0;
}

/* BTF-typed tracepoints (5.5+), the default */
SEC("tp_btf/sched_wakeup")
int BPF_PROG(on_wakeup, struct task_struct *p)
{
	runnable(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(on_wakeup_new, struct task_struct *p)
{
	runnable(p);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return switched(preempt, prev, next);
}

/* Raw tracepoints: the fallback where tp_btf cannot load (the loader
 * enables one set or the other) */
SEC("raw_tp/sched_wakeup")
int BPF_PROG(on_wakeup_raw, struct task_struct *p)
{
	runnable(p);
	return 0;
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(on_wakeup_new_raw, struct task_struct *p)
{
	runnable(p);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(on_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return switched(preempt, prev, next);
}

char LICENSE[] SEC("license") = "GPL";
