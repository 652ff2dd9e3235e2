/* engine/ — shards, reactors, workers and the job lifecycle.
 *
 * Private header. Ownership: a job record belongs to its shard's reactor,
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
#include "dd_numa.h"
#include "queue.h"
#include "state.h"
#include "telemetry.h"

#define DD_ID_SHARD_SHIFT 56
#define DD_ID_SEQ_MASK ((1ull << DD_ID_SHARD_SHIFT) - 1)
#define DD_INLINE_PAYLOAD 48
#define DD_INLINE_DEPS 2
#define DD_MAX_HANDLERS 1024
#define DD_WORKER_INFLIGHT 256 /* per worker, at most: see DD_HAND_AHEAD_NS */
/* How much handler time the reactor hands a worker ahead of its
 * completions, by the worker's recent mean time per job. The bound is what
 * keeps priorities meaningful: an urgent job waits behind at most this much
 * work already handed over. Short jobs go over in large batches, which is
 * what makes the hand-over cheap: a worker wakes once per batch, and with
 * a fixed 32 the two workers of a 2-vCPU machine at 600,000 jobs/s woke
 * 19,500 times a second (docs/ENGINE.md). */
#define DD_HAND_AHEAD_NS 50000
#define DD_HAND_AHEAD_MIN 2 /* one running, one waiting: no idle round trip */
#define DD_XS_RING 4096       /* cross-shard event ring cells */
#define DD_DRAIN_BUDGET 1024  /* submissions taken per reactor turn */

static inline uint64_t dd_clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t dd_now_ns(void)
{
	return dd_clock_ns(CLOCK_MONOTONIC);
}

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

/* ---- idempotency keys (idem.c): engine-wide, striped locks ---- */

struct dd_idem;
int dd_idem_create(struct dd_idem **out);
void dd_idem_destroy(struct dd_idem *m);
void dd_idem_lock(struct dd_idem *m, uint64_t hash);
void dd_idem_unlock(struct dd_idem *m, uint64_t hash);
/* Keys are per owner: @uid and @key name one binding; @hash is
 * dd_idem_hash(uid, key). */
/* Under the stripe lock: id bound to the key, or 0. */
uint64_t dd_idem_find(struct dd_idem *m, uint64_t hash, uint32_t uid, const char *key);
/* Under the stripe lock: binds key to id. */
int dd_idem_insert(struct dd_idem *m, uint64_t hash, uint32_t uid, const char *key, uint64_t id);
/* Takes the lock itself: forgets the key if it is still bound to @id. */
void dd_idem_remove(struct dd_idem *m, uint64_t hash, uint32_t uid, const char *key, uint64_t id);
uint64_t dd_idem_hash(uint32_t uid, const char *key);

/* ---- submission message: one MPSC cell ---- */

struct dd_sub {
	uint64_t id;
	uint64_t intended_ns;
	uint64_t not_before_ns; /* absolute, 0 = now */
	uint64_t timeout_ns;
	uint64_t backoff_ns;
	uint64_t backoff_max_ns;
	uint32_t max_attempts;
	uint32_t payload_len;
	uint32_t ndeps;
	uint16_t handler;
	uint8_t priority;
	union {
		unsigned char inl[DD_INLINE_PAYLOAD];
		void *heap; /* arena copy, ownership passes to the record */
	} payload;
	union {
		uint64_t inl[DD_INLINE_DEPS];
		uint64_t *heap; /* arena copy, freed by the reactor */
	} deps;
	char *key; /* arena copy, owned by the record, or NULL */
	uint64_t key_hash;
	uint8_t level;  /* enum dd_durability, resolved */
	uint8_t strict; /* DD_JOB_STRICT */
	uint8_t exec;   /* the payload is an encoded process spec (exec.c) */
	uint32_t uid, gid; /* owner */
	int32_t stdin_fd;  /* DD_EXEC_STDIN_FD: the engine's copy, owned by the
			    * message and then the record; else -1 */
};

/* ---- job record ---- */

enum {
	JF_ON_WORKER = 1u, /* a worker holds the record: not evictable */
	JF_LOGGED = 2u,    /* its transitions go to the log */
	JF_HELD = 4u,      /* strict: an extra unmet "dependency" until durable */
	JF_EXEC = 8u,      /* a process job: payload is its encoded spec */
	JF_EXTQ = 16u,     /* queued in an external queue's lanes (lease.c) */
	JF_LEASED = 32u,   /* running under a lease; the timer is its deadline */
	JF_REASON_OWN = 64u, /* reason is the record's own arena copy */
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
	uint64_t key_hash;
	uint64_t sub_lsn, end_lsn; /* its SUBMIT and END records, 0 = none */
	uint8_t level;              /* enum dd_durability */
	uint8_t pending_sig;        /* JF_EXEC: a signal asked for while on its
				     * worker, sent once its process is known */
	bool start_pending;         /* its START waits for the next log batch
				     * (durable.c); the reactor's alone */
	uint32_t uid, gid;          /* owner */
	int32_t pid;                /* JF_EXEC: last attempt's process, 0 none */
	struct dd_proc *proc;       /* JF_EXEC: its running process, or NULL */
	uint64_t output_cut[2];     /* JF_EXEC: dd_job_info.output_cut */
	char *kind; /* DD_HANDLER_UNRESOLVED: the kind's name (arena copy) */
	unsigned char inline_payload[DD_INLINE_PAYLOAD];
};

/* ---- commands from API callers to a reactor ---- */

enum dd_cmd_type {
	CMD_GET, CMD_WAIT, CMD_UNWAIT, CMD_CANCEL, CMD_WAIT_DURABLE,
	CMD_RESERVE, CMD_ACK, CMD_NACK, CMD_TOUCH, CMD_SIGNAL,
};

struct dd_cmd {
	enum dd_cmd_type type;
	uint64_t id;
	struct dd_cmd *target; /* CMD_UNWAIT: the wait to withdraw */
	struct dd_cmd *next;   /* in a record's waiter list or the retry list */
	int rc;
	struct dd_job_info info;
	uint64_t lsn;  /* CMD_WAIT_DURABLE: the record it waits for */
	uint8_t level; /* ...at this durability level */
	/* leases: CMD_RESERVE (handler, owner, ttr -> lease), ACK/NACK/TOUCH */
	uint16_t handler;
	uint32_t owner, attempt;
	int result; /* also CMD_SIGNAL: the signal */
	uint64_t ttr;
	struct dd_lease *lease;
	_Atomic uint32_t done; /* futex word: 1 when the reactor has answered */
};

/* ---- cross-shard events (deps.c) ---- */

enum { XS_SUBSCRIBE = 1, XS_OUTCOME = 2 };

struct dd_xs_event {
	uint32_t type;
	uint32_t ok;        /* XS_OUTCOME: dependency succeeded */
	uint64_t dep;       /* the dependency's id */
	uint64_t waiter;    /* the dependant's id */
};

struct dd_xs_overflow {
	struct dd_xs_event *ev;
	size_t n, cap;
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
	volatile struct dd_spawn_report *spawn_rep;
};

/* ---- shards ---- */

/* A slot of the id table. The id sits next to the pointer so that a probe
 * and a backward shift read the table only, not each record it passes:
 * at hundreds of thousands of jobs in memory every record is a cache miss
 * (the table's insert and remove were a third of the reactor's time). */
struct dd_tabslot {
	uint64_t id;
	struct dd_jobrec *rec; /* NULL: empty */
};

struct dd_fatepage;
struct dd_seqmap { /* the fate of every sequence number, in pages (fate.c) */
	struct dd_fatepage **page;
	size_t npages;
};

enum { SEQ_UNSEEN = 0, SEQ_LIVE = 1, SEQ_ENDED_OK = 2, SEQ_ENDED_BAD = 3 };

struct dd_pending { /* dependants of a job that has not arrived yet */
	uint64_t dep;
	uint64_t waiter;
	struct dd_pending *next;
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
	struct dd_proc *procs;  /* running processes (exec.c), a list */
	unsigned nprocs;
	unsigned procs_ending;  /* exited, waiting for their output's last cut */
	_Atomic bool out_wake;  /* the output helper asks for a sweep now: it
				 * finished such a cut, or free space fell
				 * below the reserve */
	uint64_t proc_sweep_ns; /* next look at their output sizes */
	struct dd_queue_node nohandler; /* recovered jobs whose kind is unknown yet */
	struct dd_queue_lanes **extq;   /* [handler]: queued jobs of external
					 * queues, allocated when first used */
	unsigned seen_handlers;

	struct dd_tel_shist *hist; /* [DD_HIST_COUNT], written by the reactor */

	/* published counters: written by the reactor, read by dd_stats() */
	_Alignas(DD_CACHELINE) _Atomic uint64_t st[16];
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
	struct dd_creds *creds; /* owners' passwd entries and groups (creds.c) */
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

/* log.c: messages through cfg.on_log (stderr when NULL); @level is a
 * syslog priority (LOG_ERR...). Any thread. */
void dd_log(const struct dd_engine *e, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The state component's log hook (dd_state_store_opts.log): @arg is the engine. */
void dd_log_state(int level, const char *msg, void *arg);

/* trust.c: the state directory is used only when it is the engine's own
 * (DESIGN.md section 9). Each returns 0, -EPERM (not ours: the message,
 * through dd_log(), names the path, its owner and mode, and the fix) or
 * another -errno (said too). */
/* Resolves and checks cfg.state_dir (creating it 0700) and the output dir
 * (cfg.output_dir, or <state_dir>/output); sets e->state_dir, e->state_fd
 * and e->output_dir. Nothing to do without either. */
int dd_trust_open(struct dd_engine *e);
/* <state_dir>/shard-@index, its wal and store dirs (created 0700), every
 * file in wal, and the store's data.mdb and lock.mdb when present. */
int dd_trust_shard(struct dd_engine *e, unsigned index);

/* placement.c: background work off the hot CPUs */
/* The process's CPUs that no reactor or worker is pinned to; false when
 * there are none (or nothing is pinned). */
bool dd_cold_cpus(const struct dd_engine *e, cpu_set_t *set);
/* Moves the calling thread (the applier) to the cold CPUs, if any. */
void dd_place_applier(const struct dd_engine *e);
/* Called by the reactor: its ring's kernel workers go to the cold CPUs. */
void dd_place_uring_workers(struct dd_shard *s);
/* Turns cfg.spin_ns = DD_SPIN_AUTO into a number (see dispatchd.h). */
void dd_resolve_spin(struct dd_engine *e);



/* submit.c: closes a job's copy of its standard input (@fd >= 0) */
void dd_stdin_release(struct dd_engine *e, int fd);
/* submit.c: frees the arena copies a message carries (key binding untouched) */
void dd_sub_release(struct dd_shard *s, struct dd_sub *m);

/* strings.c: why a job ended, as the engine's own static strings (a
 * reason of these is compared by pointer). A record's reason points at one
 * of them, at a process status text (exec.c, static too), or at the
 * record's own arena copy (JF_REASON_OWN: a text made for this job alone,
 * such as "cannot enter /x: Permission denied"; at most DD_REASON_MAX
 * bytes, freed with the record, so reasons cost no more than the records
 * that hold them). */
enum {
	R_HANDLER_FAILED, R_TIMEOUT, R_CANCELLED, R_SHUTDOWN, R_DEPENDENCY, R_LOST,
	R_NOT_LOGGED, R_LEASE_EXPIRED, R_NACK, R_COUNT,
};
extern const char *const dd_reason[R_COUNT];
_Static_assert(DD_STATE_REASON_MAX == DD_REASON_MAX, "the store keeps a whole reason");

/* ---- owners' credentials (creds.c): passwd entry and groups per uid,
 * resolved once and cached (any thread) ---- */
struct dd_cred {
	uint32_t uid;
	int err;          /* 0, or -ENOENT: no passwd entry */
	int ngroups;
	uint32_t *groups; /* supplementary groups (getgrouplist of the name) */
	char *env[4];     /* "USER=", "LOGNAME=", "HOME=", "SHELL=" from passwd */
	unsigned refs;    /* under the cache's lock */
	bool stale;       /* dropped by a reload: freed by the last put */
	struct dd_cred *next;
};
struct dd_creds;
int dd_creds_create(struct dd_creds **out);
void dd_creds_destroy(struct dd_creds *c);
/* @uid's entry with a reference (looked up on first use; a uid with no
 * passwd entry gets one with err set). Returns 0, -ENOMEM, or -errno of a
 * failed NSS look-up (nothing kept). May block (NSS) the first time. */
int dd_creds_get(struct dd_creds *c, uint32_t uid, struct dd_cred **out);
void dd_creds_put(struct dd_creds *c, struct dd_cred *cr);
/* Forgets every entry: the next get reads passwd and groups again. */
void dd_creds_reload(struct dd_creds *c);

/* registry.c */
int dd_handler_find(struct dd_engine *e, const char *name);
/* The kind of a process job: any name, registered (without a handler)
 * the first time it is seen. Returns its index or a negative code. */
int dd_kind_for_exec(struct dd_engine *e, const char *name);

/* jobtab.c: records, id table */
struct dd_jobrec *dd_jobrec_alloc(struct dd_shard *s);
void dd_jobrec_free(struct dd_shard *s, struct dd_jobrec *j);
int dd_tab_insert(struct dd_shard *s, struct dd_jobrec *j);
/* The home slot of @id in a table of @cap (a power of two). */
static inline size_t dd_tab_slot(uint64_t id, size_t cap)
{
	/* splitmix64 finaliser: sequential ids must not form probe runs */
	uint64_t h = id & DD_ID_SEQ_MASK;
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
	h ^= h >> 31;
	return (size_t)h & (cap - 1);
}
/* Starts loading @id's slot: a table of hundreds of thousands of jobs is
 * a cache miss per insert and remove (together a sixth of the reactor's
 * time, perf), which the reactor hides by asking ahead. */
static inline void dd_tab_prefetch(const struct dd_shard *s, uint64_t id)
{
	if (s->tabcap)
		__builtin_prefetch(&s->tab[dd_tab_slot(id, s->tabcap)], 1);
}
struct dd_jobrec *dd_tab_find(const struct dd_shard *s, uint64_t id);
void dd_tab_remove(struct dd_shard *s, uint64_t id);
void dd_jobtab_destroy(struct dd_shard *s);

/* fate.c: what became of every sequence number (SEQ_*) */
uint8_t dd_seq_get(const struct dd_shard *s, uint64_t id);
/* dd_seq_get(), asking the store about ids from before this run. */
uint8_t dd_seq_fate(struct dd_shard *s, uint64_t id);
int dd_seq_set(struct dd_shard *s, uint64_t id, uint8_t fate);
void dd_fate_destroy(struct dd_shard *s);

/* lifecycle.c: state transitions, all on the reactor */
/* j->reason = @reason, freeing the text j owned before (unless it is
 * @reason itself). */
void dd_job_set_reason(struct dd_shard *s, struct dd_jobrec *j, const char *reason);
/* j->reason = @text, an arena copy j owns from now on. */
void dd_job_own_reason(struct dd_shard *s, struct dd_jobrec *j, char *text);
/* An arena copy of @text cut to DD_REASON_MAX - 1 bytes (any thread),
 * or NULL. */
char *dd_reason_dup(struct dd_shard *s, const char *text);
void dd_reason_free(struct dd_shard *s, char *text);
void dd_job_arrive(struct dd_shard *s, struct dd_sub *m);
void dd_job_make_ready(struct dd_shard *s, struct dd_jobrec *j);
void dd_job_finish(struct dd_shard *s, struct dd_jobrec *j, enum dd_state st,
		   const char *reason);
void dd_job_completed(struct dd_shard *s, struct dd_jobrec *j);
/* An attempt ended with @result (0 = success): succeed, retry or fail. */
void dd_job_attempt_done(struct dd_shard *s, struct dd_jobrec *j, int result,
			 const char *fail_reason);
/* exit_code/term_signal of a process job from its result (wait status). */
void dd_job_info_exec(struct dd_job_info *info, bool exec, int result);
int dd_job_cancel(struct dd_shard *s, struct dd_jobrec *j, enum dd_state how,
		  const char *reason);
void dd_job_timer_fired(struct dd_queue_timer *t, void *arg);
void dd_job_info_fill(const struct dd_shard *s, const struct dd_jobrec *j,
		      struct dd_job_info *info);
void dd_shard_set_state(struct dd_shard *s, struct dd_jobrec *j, enum dd_state st);

/* lease.c: external queues (reactor side) */
static inline bool dd_job_external(const struct dd_shard *s, const struct dd_jobrec *j)
{
	return !(j->flags & JF_EXEC) && j->handler != DD_HANDLER_UNRESOLVED &&
	       !s->eng->handlers[j->handler].fn;
}
/* Queues j (QUEUED, external kind) in its queue's lanes. */
void dd_lease_queue(struct dd_shard *s, struct dd_jobrec *j);
/* Takes j out of them (finish, cancel). */
void dd_lease_unqueue(struct dd_shard *s, struct dd_jobrec *j);
void dd_lease_cmd(struct dd_shard *s, struct dd_jobrec *j, struct dd_cmd *c);
void dd_lease_reserve(struct dd_shard *s, struct dd_cmd *c);
void dd_lease_destroy(struct dd_shard *s);
/* reactor.c: jobs whose kind was unknown, looked at again after a
 * registration (also before a reserve) */
void dd_requeue_nohandler(struct dd_shard *s);
/* reactor.c: the attempt's bookkeeping, shared with reserve */
void dd_start_attempt(struct dd_shard *s, struct dd_jobrec *j, int worker);

/* deps.c */
void dd_deps_subscribe(struct dd_shard *s, uint64_t dep, uint64_t waiter);
void dd_deps_release(struct dd_shard *s, struct dd_jobrec *j);
void dd_deps_arrived(struct dd_shard *s, struct dd_jobrec *j);
size_t dd_deps_drain(struct dd_shard *s);
void dd_deps_flush(struct dd_shard *s);
bool dd_deps_ready(struct dd_shard *s);
void dd_deps_destroy(struct dd_shard *s);
bool dd_deps_backlog(const struct dd_shard *s);

/* command.c */
int dd_cmd_call(struct dd_engine *e, struct dd_cmd *c);
size_t dd_cmd_drain(struct dd_shard *s);
void dd_cmd_complete(struct dd_cmd *c, int rc);
void dd_cmd_fail_all(struct dd_shard *s, int rc);

/* uring.c (see uring.h) */
size_t dd_uring_reap(struct dd_shard *s);
bool dd_uring_ready(const struct dd_shard *s);

/* exec.c: the process executor. Spawning runs on a worker; the rest on
 * the reactor. */
struct dd_proc;
/* Worker: starts j's process; sets j->proc and w_result (0, or -errno). */
void dd_exec_spawn(struct dd_shard *s, struct dd_jobrec *j);
/* Reactor: j came back from its worker; watch its process or end it. */
void dd_exec_started(struct dd_shard *s, struct dd_jobrec *j);
/* Reactor: a completion for p's exit watch. */
void dd_exec_reaped(struct dd_shard *s, struct dd_proc *p, int res);
/* Reactor: signal a running process job's group (cancel, time-out); the
 * job ends when the process has gone. */
void dd_exec_kill(struct dd_shard *s, struct dd_jobrec *j);
/* A process start that takes longer than this is killed: nothing a job's
 * own start does should take it, and a worker is held meanwhile. */
#define DD_SPAWN_LIMIT_NS (10ull * 1000000000ull)
/* Reactor: kills the children of starts that hung (DD_SPAWN_LIMIT_NS);
 * true while any worker is starting a process. */
bool dd_exec_watchdog(struct dd_shard *s);
/* Reactor: output size checks; returns the next time it wants to run. */
void dd_exec_sweep(struct dd_shard *s);
/* Reactor exit: kill what still runs and wait for it (bounded). */
void dd_exec_shutdown(struct dd_shard *s);
/* After the ring is closed: frees what is left. */
void dd_exec_free_all(struct dd_shard *s);
void dd_exec_grace_over(struct dd_shard *s, struct dd_jobrec *j);
/* Reactor: dd_job_signal() for a job in memory. */
int dd_exec_signal(struct dd_shard *s, struct dd_jobrec *j, int sig);
/* Text for an exit status (result of a process job): "exit 3",
 * "signal 9 (Killed)"; static storage. */
const char *dd_exec_status_text(int status);
/* Encoded process spec (execspec.c). */
int dd_exec_encode(const struct dd_exec_spec *x, void **out, size_t *len);
struct dd_exec_decoded {
	char **argv;  /* NULL-terminated, pointing into blk */
	char **env;   /* NULL-terminated, or NULL */
	bool env_replace;
	char *cwd;    /* or NULL */
	char *stdin_path; /* or NULL */
	unsigned umask; /* 022 unless the spec gave one */
	uint64_t output_max;
	struct dd_rlimit rl[DD_RLIMITS_MAX];
	unsigned nrl;
	void *blk;    /* one allocation holding all of it */
};
int dd_exec_decode(const void *buf, size_t len, struct dd_exec_decoded *out);
void dd_exec_decoded_free(struct dd_exec_decoded *d);

/* worker.c */
void *dd_worker_main(void *arg);
/* Runs j's handler on the calling thread, starting at now (the caller's
 * clock reading); fills w_start_ns and w_result. */
void dd_run_handler(struct dd_shard *s, struct dd_jobrec *j, unsigned worker, uint64_t now);
/* How many more jobs the reactor may hand w now (worker.c). */
unsigned dd_worker_room(const struct dd_shard *s, const struct dd_worker *w);

/* The shard whose reactor is the calling thread, or NULL: calls that would
 * wait for that reactor must not (inline handlers, event callbacks). */
extern _Thread_local struct dd_shard *dd_tls_reactor;

/* reactor.c */
void *dd_reactor_main(void *arg);

#endif
