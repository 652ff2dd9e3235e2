/* engine/ — shards, reactors, workers and the job lifecycle.
 *
 * Private header: the types every file of the engine shares (the job
 * record, the worker, the shard, the engine), the clock, the log, and how
 * a job ends. Each interface between two files is in a header beside its
 * .c (jobtab.h, deps.h, lifecycle.h, ...; durable/durable.h for the
 * durable side), included by the files that use it. Ownership: a job record belongs to its shard's reactor,
 * which is the only thread that writes it, except that the worker running
 * an attempt writes the attempt's result and times before handing the
 * record back through its completion ring (release/acquire on the ring).
 */
#ifndef DD_ENGINE_H
#define DD_ENGINE_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "dispatchd.h"
#include "dd_clock.h"
#include "dd_numa.h"
#include "queue.h"

#define DD_ID_SHARD_SHIFT 56
#define DD_ID_SEQ_MASK ((1ull << DD_ID_SHARD_SHIFT) - 1)
#define DD_INLINE_PAYLOAD 48
#define DD_INLINE_DEPS 2
#define DD_MAX_HANDLERS 1024

static inline unsigned dd_id_shard(uint64_t id)
{
	return (unsigned)(id >> DD_ID_SHARD_SHIFT);
}

/* ---- handlers (registry.c) ---- */

struct dd_handler {
	char name[64];
	dd_handler_fn fn;
	void *arg;
};

/* defined beside the files that own them */
struct dd_array;
struct dd_cmd;
struct dd_durable;
struct dd_exec_run;
struct dd_pending;
struct dd_proc_creds;
struct dd_sup_client;
struct dd_limits;
struct dd_sup_shard;
struct dd_proc_cg;
struct dd_pool;
struct dd_proc_report;
struct dd_tabslot;
struct dd_tel_probe;
struct dd_tel_shist;
struct dd_xs_overflow;

/* ---- job record ---- */

enum {
	JF_ON_WORKER = 1u, /* a worker holds the record: not evictable */
	JF_LOGGED = 2u,    /* its transitions go to the log */
	JF_HELD = 4u,      /* strict: an extra unmet "dependency" until durable */
	JF_EXEC = 8u,      /* a process job: payload is its encoded spec */
	JF_EXTQ = 16u,     /* queued in an external queue's lanes (lease.c) */
	JF_LEASED = 32u,   /* running under a lease; the timer is its deadline */
	JF_REASON_OWN = 64u, /* reason is the record's own arena copy */
	JF_POOLQ = 128u,   /* a process job waiting for room in the pool (pool.c) */
};
#define DD_HANDLER_UNRESOLVED 0xffffu /* recovered before its kind was registered */

struct dd_jobrec {
	struct dd_queue_node link;   /* lane, retention FIFO or free list */
	struct dd_queue_timer timer; /* delay, back-off or time-out */
	uint64_t id;
	uint8_t state;
	uint8_t priority;
	uint8_t flags;
	uint16_t handler;
	uint32_t attempt;
	uint32_t max_attempts;
	uint32_t deps_unmet;
	int32_t worker; /* of the current/last attempt, -1 none */
	_Atomic uint32_t cancel; /* 0, or the state the job ended in early */
	int32_t result;
	int32_t w_result;   /* written by the worker while JF_ON_WORKER */
	int32_t stdin_fd;   /* JF_EXEC: stdin of its attempts (read by the
			     * worker), -1 none; in a hole before w_start_ns */
	uint64_t w_start_ns; /* likewise */
	const char *reason;
	uint64_t timeout_ns, backoff_ns, backoff_max_ns;
	uint64_t not_before_ns;
	uint64_t intended_ns, submitted_ns, queued_ns, started_ns, ended_ns;
	uint32_t payload_len;
	uint32_t ndependants, capdependants;
	void *payload; /* points at inline_payload or an arena copy */
	uint64_t *dependants; /* ids waiting on this job (any shard) */
	struct dd_cmd *waiters; /* dd_wait() callers */
	char *key;
	char *name;   /* dd_job_spec.name (arena copy), or NULL */
	uint64_t key_hash;
	uint64_t sub_lsn, end_lsn; /* its SUBMIT and END records, 0 = none */
	uint8_t level;              /* enum dd_durability */
	uint8_t pending_sig;        /* JF_EXEC: a signal asked for while on its
				     * worker, sent once its process is known */
	bool start_pending;         /* its START waits for the next log batch
				     * (durable/durable.c); the reactor's alone */
	uint8_t lim;                /* JF_EXEC: DD_LIM_* (limits.h) */
	uint32_t uid, gid;          /* owner */
	int32_t pid;                /* JF_EXEC: last attempt's process, 0 none */
	struct dd_exec_run *proc;   /* JF_EXEC: its running process, or NULL */
	uint64_t output_cut[2];     /* JF_EXEC: dd_job_info.output_cut */
	uint64_t cpu_ns, mem_peak;  /* JF_EXEC: the last attempt's tree's use,
				     * with DD_USE_CPU / DD_USE_MEM in use */
	uint8_t use;
#define DD_USE_CPU 1u
#define DD_USE_MEM 2u
	char *kind; /* DD_HANDLER_UNRESOLVED: the kind's name (arena copy) */
	struct dd_array *arr; /* an array's own job or one of its elements
			       * (array.c), else NULL */
	unsigned char inline_payload[DD_INLINE_PAYLOAD];
};

/* ---- workers ---- */

struct dd_worker {
	struct dd_shard *shard;
	unsigned index;
	int cpu; /* -1 unpinned */
	pthread_t thread;
	struct dd_queue_spsc *inbox; /* reactor -> worker: struct dd_jobrec * */
	struct dd_queue_spsc *done;  /* worker -> reactor: struct dd_jobrec * */
	struct dd_queue_wake wake;   /* the worker parks here */
	unsigned inflight;           /* reactor's count of jobs handed over */
	_Atomic uint64_t job_ns;     /* worker's moving mean time per job (its
				      * handler and hand-back), for the reactor */
	_Atomic bool stop;
	/* while it spawns a process: since when (0: not spawning), and where
	 * its child reports (exec.c): the reactor's watchdog reads both */
	_Atomic uint64_t spawn_since;
	volatile struct dd_proc_report *spawn_rep;
	int sup_conn; /* its connection to the process supervisor, -1 none */
};

/* ---- shards ---- */

struct dd_fatepage;
struct dd_seqmap { /* the fate of every sequence number, in pages (fate.c) */
	struct dd_fatepage **page;
	size_t npages;
};

struct dd_shard {
	struct dd_engine *eng;
	unsigned index;
	int node;    /* engine's node index */
	int os_node; /* kernel node, -1 when made up */
	int cpu;     /* reactor CPU, -1 unpinned */
	pthread_t thread;
	struct dd_numa_arena *arena;

	/* producer side, read by any thread */
	struct dd_queue_mpsc *sub[DD_PRIO_LEVELS];
	struct dd_queue_mpsc *cmds; /* struct dd_cmd * */
	struct dd_queue_wake wake;
	_Alignas(DD_CACHELINE) _Atomic uint64_t next_seq;
	/* Durable state: sequence numbers below this are reserved in the log
	 * (a RESERVE record on the device), so an id handed out is never
	 * handed out again after a crash. UINT64_MAX without durability. */
	_Atomic uint64_t reserved_seq;
	_Alignas(DD_CACHELINE) _Atomic int64_t live; /* non-terminal jobs */

	/* reactor-owned */
	_Alignas(DD_CACHELINE) struct dd_queue_lanes lanes;
	struct dd_queue_wheel wheel;
	struct dd_worker *workers;
	unsigned nworkers;
	unsigned rr;
	struct dd_tabslot *tab; /* open addressing by seq (jobtab.c) */
	size_t tabcap, tabcount;
	struct dd_queue_node retained; /* terminal records, oldest first */
	size_t nretained;
	struct dd_jobrec *freelist;
	void **slabs;
	size_t nslabs, capslabs;
	struct dd_seqmap seqmap;
	struct dd_pending **pending; /* hash by dep seq */
	size_t pendcap, npending;
	struct dd_cmd *retry_cmds;   /* for jobs that have not arrived yet */
	struct dd_queue_spsc **xs_in;  /* [from shard] */
	struct dd_queue_spsc **xs_out; /* [to shard], same rings seen from the producer */
	struct dd_xs_overflow *xs_over; /* [to shard] */
	uint64_t xs_dirty; /* shards sent events this turn, to be woken */
	unsigned workers_started;
	bool reactor_started;
	uint64_t now;
	bool stopping;
	bool forced; /* running jobs were cancelled at the end of the grace */
	uint64_t stop_deadline;
	uint64_t first_seq;     /* ids below were made before this run */
	int64_t rt_offset;      /* CLOCK_REALTIME - CLOCK_MONOTONIC, ns */
	struct dd_durable *dur; /* NULL: durability none */
	struct dd_uring *uring;  /* the shard's io_uring (uring.c), or NULL */
	struct dd_pool *pool;      /* CPUs and memory for process jobs (pool.c) */
	struct dd_exec_run *procs; /* running processes (exec.c), a list */
	struct dd_sup_shard *sup;  /* its connection to the supervisor, or NULL */
	struct dd_queue_lanes held; /* process jobs over a limit (limits.c) */
	size_t nheld;
	uint64_t held_seen;        /* the limits' epoch of its last full look */
	unsigned nprocs;
	unsigned procs_ending;  /* exited, waiting for their output's last cut */
	_Atomic bool out_wake;  /* the output helper asks for a sweep now: it
				 * finished such a cut, or free space fell
				 * below the reserve */
	uint64_t proc_sweep_ns; /* next look at their output sizes */
	struct dd_queue_node nohandler; /* recovered jobs whose kind is unknown yet */
	struct dd_array **arrs;  /* arrays whose own job is in memory, by id (array.c) */
	size_t narrs, caparrs;
	struct dd_array **act;   /* ...of them, those with elements to make */
	size_t nact, capact;
	bool filling;            /* in dd_array_fill (array.c) */
	struct dd_queue_lanes **extq;   /* [handler]: queued jobs of external
					 * queues, allocated when first used */
	unsigned seen_handlers;

	struct dd_tel_shist *hist; /* [DD_HIST_COUNT], written by the reactor */

	/* published counters: written by the reactor, read by dd_stats() */
	_Alignas(DD_CACHELINE) _Atomic uint64_t st[24];
};

struct dd_engine {
	struct dd_config cfg;
	struct dd_numa_topo *topo;
	struct dd_shard *shards;
	unsigned nshards;
	_Atomic unsigned rr; /* round-robin routing */
	_Atomic bool stopping;
	struct dd_idem *idem;
	struct dd_handler handlers[DD_MAX_HANDLERS];
	_Atomic unsigned nhandlers; /* release publishes handlers[n-1] */
	pthread_mutex_t reg_lock;   /* registration only */
	struct dd_recovery recovery;
	char *output_dir; /* process jobs' output files, or NULL */
	char *state_dir;  /* cfg.state_dir resolved (trust.c), or NULL */
	int state_fd;     /* it, open; -1 none */
	struct dd_outcut *outcut; /* their helper (outcut.c), with output_dir */
	uint32_t euid, egid; /* the engine's, the default owner */
	struct dd_tel_probe *probe; /* the jitter probe, or NULL */
	char probe_status[160];
	struct dd_proc_creds *creds; /* owners' passwd entries and groups (proc/creds.c) */
	struct dd_proc_cg *cg; /* the process jobs' cgroups (proctree.c), or NULL */
	char cg_status[1400];  /* what dd_engine_cgroups() says */
	struct dd_sup_client *sup; /* the process supervisor (supervise.c), or NULL */
	struct dd_limits *limits;  /* on running process jobs (limits.c) */
	char sup_status[1200];  /* what dd_engine_supervisor() says */
	/* destroy leaves process jobs to the supervisor: set before stopping,
	 * read by the reactors once they see it */
	_Atomic bool leave_running;
	cpu_set_t proc_cpus; /* the CPUs the process had before we pinned any
			      * thread: jobs' processes get these, not the
			      * spawning worker's one CPU */
	bool proc_cpus_ok;
	/* standard inputs passed with DD_EXEC_STDIN_FD held by jobs now, and
	 * the most there may be: a quarter of the descriptors the process may
	 * open, so that jobs holding theirs (queued, delayed, waiting) never
	 * take those of the log, the store and the daemon's connections */
	_Atomic int64_t stdin_held;
	int64_t stdin_max;
};

/* log.c: messages through cfg.on_log (dropped when NULL); @level is a
 * syslog priority (LOG_ERR...). Any thread. */
void dd_log(const struct dd_engine *e, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The components' log hook (dd_state_store_opts.log, the jitter probe's
 * print): @arg is the engine. */
void dd_log_state(int level, const char *msg, void *arg);
/* strings.c: why a job ended, as the engine's own static strings (a
 * reason of these is compared by pointer). A record's reason points at one
 * of them, at a process status text (proc/status.c, static too), or at the
 * record's own arena copy (JF_REASON_OWN: a text made for this job alone,
 * such as "cannot enter /x: Permission denied"; at most DD_REASON_MAX
 * bytes, freed with the record, so reasons cost no more than the records
 * that hold them). */
enum {
	R_HANDLER_FAILED, R_TIMEOUT, R_CANCELLED, R_SHUTDOWN, R_DEPENDENCY, R_LOST,
	R_NOT_LOGGED, R_LEASE_EXPIRED, R_NACK, R_COUNT,
};
extern const char *const dd_reason[R_COUNT];

/* Ending a job, and the reason it carries (lifecycle.c): every executor
 * calls these, on the reactor. */
/* j->reason = @text, an arena copy j owns from now on. */
void dd_job_own_reason(struct dd_shard *s, struct dd_jobrec *j, char *text);
/* An arena copy of @text cut to DD_REASON_MAX - 1 bytes (any thread),
 * or NULL. */
char *dd_reason_dup(struct dd_shard *s, const char *text);
void dd_reason_free(struct dd_shard *s, char *text);
void dd_job_finish(struct dd_shard *s, struct dd_jobrec *j, enum dd_state st,
		   const char *reason);
/* An attempt ended with @result (0 = success): succeed, retry or fail. */
void dd_job_attempt_done(struct dd_shard *s, struct dd_jobrec *j, int result,
			 const char *fail_reason);

#endif
