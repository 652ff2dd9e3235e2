/* dispatchd.h — the public API of libdispatchd.
 *
 * A low-jitter job-dispatch engine: jobs are submitted from any thread into
 * per-shard lock-free rings; each shard's reactor thread (pinned to a core of
 * its NUMA node) schedules them by priority, delay and dependencies and hands
 * them to pinned worker threads that run in-process handlers.
 *
 * Conventions (as in liburing and LMDB):
 *  - every int function returns 0 on success or a negative code: -errno, or
 *    a DD_E* code from the range [DD_ERR_LAST, DD_ERR_FIRST], below errno;
 *    dd_strerror() names both;
 *  - constructors return the code and fill an out-parameter;
 *  - the library never calls abort() or exit() on a runtime failure.
 *
 * Thread safety: every function may be called from any thread once
 * dd_engine_create() has returned, except dd_engine_destroy(), which no other
 * call may race with. Handlers and the event callback run on engine threads.
 */
#ifndef DISPATCHD_H
#define DISPATCHD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DD_VERSION_MAJOR 0
#define DD_VERSION_MINOR 1

/* ---- errors -------------------------------------------------------------- */

#define DD_ERR_FIRST (-5001)
#define DD_ETERMINAL (-5001)  /* the job already ended; its state cannot change */
#define DD_ENOHANDLER (-5002) /* no handler is registered under that kind */
#define DD_EDEPS (-5003)      /* a dependency id names no job that can exist */
#define DD_ESHUTDOWN (-5004)  /* the engine is stopping */
#define DD_EEVICTED (-5005)   /* the job ended and left memory (retention) */
#define DD_ESTOREFULL (-5006) /* the state store reached its map_max */
#define DD_ERESOURCES (-5007) /* a process job asks for more CPUs or memory
			       * than the engine's pool holds */
#define DD_ERR_LAST (-5007)

/* Text for a code returned by this library (DD_E* or -errno). Static storage;
 * never NULL. */
const char *dd_strerror(int err);

/* ---- jobs ---------------------------------------------------------------- */

enum dd_state {
	DD_WAITING = 1, /* dependencies unmet */
	DD_DELAYED,     /* not-before time (or retry back-off) in the future */
	DD_QUEUED,      /* ready, waiting for a worker */
	DD_RUNNING,
	DD_SUCCEEDED, /* the four below are terminal and never change */
	DD_FAILED,
	DD_CANCELLED,
	DD_TIMED_OUT,
};
#define DD_STATE_COUNT 9

/* Lower-case state name ("queued"), or "invalid". */
const char *dd_state_name(enum dd_state s);

static inline bool dd_state_terminal(enum dd_state s)
{
	return s >= DD_SUCCEEDED;
}

/* Strict priorities, most urgent first; FIFO within a level. */
enum dd_priority {
	DD_PRIO_URGENT = 0,
	DD_PRIO_HIGH = 1,
	DD_PRIO_NORMAL = 2,
	DD_PRIO_LOW = 3,
};
#define DD_PRIO_LEVELS 4

/* A resource limit for a process job: setrlimit(2) inside the child, after
 * it switched to the job's owner (an owner cannot raise a hard limit). */
struct dd_rlimit {
	int resource;  /* RLIMIT_* */
	uint64_t cur, max;
};
#define DD_RLIMITS_MAX 16

/* A process to run: a job with one is started by the process executor
 * (fork-free vfork-style spawn on a worker thread, exit collected through a
 * pidfd on the shard's io_uring) instead of an in-process handler. Every
 * pointer is read during dd_submit() only.
 *
 * Whose process it is. A job owned by the engine's effective uid (the
 * default) runs as the engine, with the environment env_replace says. A
 * job owned by another uid (DD_JOB_OWNER) never gets the engine's own
 * environment, whatever env_replace says: it gets exactly env, plus USER,
 * LOGNAME, HOME and SHELL from the owner's passwd entry where env has none.
 * An engine running as root runs such a job as its owner: the owner's
 * supplementary groups (initgroups semantics, from the owner's passwd name;
 * resolved once per uid and cached until dd_engine_reload()), gid = the
 * job's gid, uid = its uid; then, as the owner, it enters cwd, sets the
 * umask, opens stdin_path, and looks argv[0] up in the PATH of the job's
 * environment (default "/usr/local/bin:/usr/bin:/bin"). An engine not
 * running as root cannot switch: it runs such a job as its own user, with
 * the environment above. A uid with no passwd entry fails the attempt
 * ("uid N has no passwd entry"; exit_code -1: no process ran).
 *
 * A process that cannot start ends its attempt FAILED (retried while
 * attempts remain) with exit_code 127 when argv[0] is not found, 126 for
 * any other failure in the child (not executable, cwd, stdin, rlimits,
 * credentials), and a reason naming the cause: "cannot enter DIR:
 * Permission denied", "cannot open stdin FILE: No such file or directory",
 * "ARGV0: No such file or directory". The reason also goes to the job's
 * stderr as a line "dispatchd: REASON", as a shell would say it. */
struct dd_exec_spec {
	const char *const *argv; /* NULL-terminated, at least argv[0]; a name
				  * without '/' is looked up in PATH */
	const char *const *env;  /* "KEY=VALUE" strings, NULL-terminated, or NULL */
	bool env_replace;        /* env is the whole environment (default: added
				  * to the engine's own) */
	const char *cwd;         /* working directory, NULL = the engine's */
	uint64_t output_max;     /* bytes of stdout and of stderr kept; 0 = the
				  * engine's output_max */
	const struct dd_rlimit *rlimits;
	unsigned nrlimits;       /* at most DD_RLIMITS_MAX */
	unsigned flags;          /* DD_EXEC_UMASK | DD_EXEC_STDIN_FD */
	unsigned umask;          /* with DD_EXEC_UMASK: the process's umask,
				  * at most 0777 (without it: 022) */
	const char *stdin_path;  /* opened O_RDONLY as the job's owner in the
				  * child, after it entered cwd (a relative path
				  * is relative to cwd); NULL: /dev/null */
	const char *stdout_path; /* a file for stdout, or NULL: the engine keeps
				  * it (output_dir). A pattern of
				  * dd_output_pattern(), expanded at each start;
				  * opened as the job's owner in the child after it
				  * entered cwd, created (0666 less the umask) or
				  * truncated, as sbatch's --output. Alone, stderr
				  * goes there too */
	const char *stderr_path; /* likewise, for stderr */
	uint64_t mem;            /* bytes: the memory limit of the process's
				  * whole tree (its cgroup's), 0 = none. Over
				  * it, the kernel kills the tree's largest
				  * process and the job fails "out of memory:
				  * limit <mem>". Refused at the start
				  * (the job fails, saying why) without a
				  * memory controller: dd_engine_cgroups() */
	unsigned cpus;           /* CPUs the process needs, 0 or 1 = one, at
				  * most DD_EXEC_CPUS_MAX: it starts only when
				  * that many of the engine's pool are free
				  * (see dd_config.pool_cpus), and runs on them */
	int stdin_fd;            /* with DD_EXEC_STDIN_FD (and no stdin_path):
				  * dup'd (close-on-exec) during dd_submit(), read
				  * by every attempt this engine starts (they share
				  * its offset); not durable: an attempt after a
				  * restart reads /dev/null. The engine closes its
				  * copy when the job ends or leaves memory */
};
#define DD_EXEC_UMASK 1u
#define DD_EXEC_STDIN_FD 2u
#define DD_EXEC_MAX (1u << 20) /* encoded argv + env + cwd + stdin_path, bytes */
#define DD_EXEC_CPUS_MAX 4096u

/* What a submitter asks for. Zero-initialise it and set what you need; every
 * pointer is read during dd_submit() only (the engine copies what it keeps).
 */
struct dd_job_spec {
	const char *kind;      /* name of a registered handler (required) */
	const void *payload;   /* bytes passed to the handler, may be NULL */
	size_t payload_len;    /* at most DD_PAYLOAD_MAX */
	int priority;          /* enum dd_priority; 0 in a zeroed spec is URGENT,
				* so set it (DD_PRIO_NORMAL is the usual) */
	uint64_t delay_ns;     /* not before now + delay */
	uint64_t timeout_ns;   /* per attempt (a process job's from its process's
				* start); 0 = none */
	uint32_t max_attempts; /* 0 or 1 = no retry */
	uint64_t backoff_ns;   /* first retry delay; doubles per attempt (default 10 ms) */
	uint64_t backoff_max_ns; /* cap on the back-off (default 60 s) */
	const uint64_t *deps;  /* ids this job waits for: see dep_kinds */
	uint32_t ndeps;        /* at most DD_DEPS_MAX */
	const uint8_t *dep_kinds; /* [ndeps] enum dd_dep_kind, or NULL: every
				* one DD_DEP_AFTEROK */
	int node;              /* NUMA node (engine's numbering) to run on, -1 = any */
	int shard;             /* shard to run on, -1 = any (overrides node) */
	const char *idem_key;  /* idempotency key, NUL-terminated, or NULL;
				* scoped per owner (uid) */
	uint64_t intended_ns;  /* CLOCK_MONOTONIC time the caller meant to submit,
				* for latency accounting; 0 = now */
	int durability;        /* enum dd_durability: DEFAULT (0) takes the
				* engine's; a job may only lower it */
	unsigned flags;        /* DD_JOB_STRICT, DD_JOB_OWNER */
	const struct dd_exec_spec *exec; /* a process job (kind is then only a
				* label, and need not name a handler), or NULL */
	uint32_t uid, gid;     /* with DD_JOB_OWNER: the job's owner. A process
				* job of an engine running as root runs as its
				* owner; without the flag the owner is the
				* engine's effective uid/gid */
	const struct dd_array_spec *array; /* a job array, or NULL: see below */
	const char *name;      /* what people call it (Slurm's --job-name), at
				* most DD_NAME_MAX bytes, NUL-terminated, or NULL;
				* an array's elements share their array's */
};
#define DD_NAME_MAX 128u

/* The path @pattern names for a job, Slurm's way: %j the job's id, %A its
 * array's id (its own outside an array), %a its index in the array (""
 * outside one), %x its name ("" without one), %u its owner's user name,
 * %N the host's short name, %% a '%'.
 * @return the length written to @out (@n bytes, NUL included), -EINVAL
 * (another letter after '%', or a '%' at the end), -ENAMETOOLONG (no
 * room). @user, @name may be NULL. Any thread; allocates nothing. */
int dd_output_pattern(const char *pattern, uint64_t id, uint64_t array_id, int64_t index,
		      const char *name, const char *user, char *out, size_t n);

/* ---- job arrays ----------------------------------------------------------
 *
 * A spec with .array submits one array: a job that stands for the whole
 * (its id is the array's) and one element per index, each a copy of the
 * spec. Element k (0-based, in index order) has id = array id + 1 + k, so
 * an array of N takes N + 1 consecutive ids of its shard. The array is one
 * submission and one log record: elements are made (and logged) only as
 * they become ready to run, a window at a time, so a pending element costs
 * the engine nothing but its id. A process element's environment has
 * DD_ARRAY_ID (the array's id), DD_ARRAY_INDEX (its index), DD_ARRAY_COUNT,
 * and Slurm's SLURM_ARRAY_JOB_ID, SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT,
 * SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_MAX, for scripts written for it.
 *
 * The array's own job waits for its dependencies and delay, is QUEUED once
 * they are met, RUNNING once an element started, and ends when every
 * element has ended: SUCCEEDED when all succeeded, else FAILED ("N of M
 * elements failed"), or CANCELLED when dd_cancel() named it (which cancels
 * every element in one operation). dd_wait() and dd_job_get() on it give
 * the counts by state (dd_job_info.array_*); a dependency on it is on the
 * whole. Elements are ordinary jobs once made; an element not made yet is
 * answered for by its array (dd_job_get: its array's waiting state) and
 * cannot be cancelled alone (-EBUSY: cancel the array). */
struct dd_array_range {
	uint32_t first, last, step; /* first, first + step, ... <= last; step >= 1 */
};
#define DD_ARRAY_RANGES_MAX 256u
#define DD_ARRAY_MAX (1u << 24)       /* elements of one array, at most */
#define DD_ARRAY_INDEX_MAX 0x7fffffffu /* the largest index */

struct dd_array_spec {
	const struct dd_array_range *ranges; /* ascending and disjoint: each
					      * range's first is above the
					      * last of the one before */
	unsigned nranges;      /* 1..DD_ARRAY_RANGES_MAX */
	uint32_t max_running;  /* elements running at once, at most; 0 = no cap */
};

/* Reads Slurm's array syntax: "1-1000", "0-99:5" (a step), "1,3,5-9" (a
 * list, in any order), each with an optional "%MAX" at the end (elements
 * running at once). Steps are normalised (last is the last index reached)
 * and ranges sorted.
 * @param ranges   room for @max ranges; filled on success
 * @param n        set to the ranges used
 * @param max_running  set to the %MAX, 0 when none
 * @param count    set to the elements
 * @param why      a text saying what is wrong, on failure (may be NULL)
 * @return 0, -EINVAL (not the syntax, an index over DD_ARRAY_INDEX_MAX, an
 * index twice), -E2BIG (more than @max ranges, or over DD_ARRAY_MAX
 * elements). Allocates nothing; any thread. */
int dd_array_parse(const char *text, struct dd_array_range *ranges, unsigned max, unsigned *n,
		   uint32_t *max_running, uint64_t *count, char *why, size_t whyn);

/* Do not start the job before its submission record is durable (at its
 * durability level). Without it a job may run while its record is still on
 * its way to the device; dispatch latency then never includes an fsync. */
#define DD_JOB_STRICT 1u
/* spec.uid/gid name the job's owner. */
#define DD_JOB_OWNER 2u

/* What a dependency waits for (Slurm's --dependency kinds). A dependency
 * that can never be met ends its dependant FAILED, with a reason that
 * names it: "dependency afterok:ID did not succeed". */
enum dd_dep_kind {
	DD_DEP_AFTEROK = 0,    /* the job succeeds */
	DD_DEP_AFTERANY = 1,   /* the job ends, however */
	DD_DEP_AFTERNOTOK = 2, /* the job ends but does not succeed */
	DD_DEP_AFTERCORR = 3,  /* an array on an array: element i waits for
				* the other array's element of the same index
				* to succeed (an index it has not: no wait); the
				* array is then made on the other one's shard */
};
#define DD_DEP_KINDS 4
/* "afterok", "afterany", "afternotok", "aftercorr", or "invalid". */
const char *dd_dep_kind_name(enum dd_dep_kind k);

#define DD_PAYLOAD_MAX (16u << 20)
#define DD_DEPS_MAX 4096u
#define DD_KEY_MAX 256u

/* What a handler sees. Valid for the duration of the handler call. */
struct dd_job {
	uint64_t id;
	uint32_t attempt; /* 1 for the first attempt */
	uint32_t max_attempts;
	const char *kind;
	const void *payload;
	size_t payload_len;
	uint64_t intended_ns; /* intended submit time (CLOCK_MONOTONIC) */
	uint64_t start_ns;    /* when this attempt's handler was entered */
	unsigned shard;
	unsigned worker;
	const void *internal_; /* engine use */
	uint64_t array_id;     /* an array's element: its array, else 0 */
	uint32_t array_index;  /* ...and its index */
};

/* An in-process handler: returns 0 for success; any other value fails the
 * attempt (retried while attempts remain). Runs on a worker thread. */
typedef int (*dd_handler_fn)(const struct dd_job *job, void *arg);

/* True once the job was cancelled or its attempt timed out: a long handler
 * should poll it and return early. Cheap (one relaxed load). */
bool dd_job_cancelled(const struct dd_job *job);

/* Bytes of a job's reason text, its NUL included: a longer text (a long
 * cwd in "cannot enter DIR: ...") is cut to fit. */
#define DD_REASON_MAX 256

/* A snapshot of a job. */
struct dd_job_info {
	uint64_t id;
	enum dd_state state;
	int priority;
	uint32_t attempt;
	uint32_t max_attempts;
	int result;          /* handler's return value of the last attempt */
	char reason[DD_REASON_MAX]; /* why it ended FAILED/CANCELLED/TIMED_OUT
			      * (or why its last attempt failed), or "" */
	char kind[64];
	unsigned shard;
	int worker;          /* worker of the last attempt, -1 if none */
	uint64_t submitted_ns, queued_ns, started_ns, ended_ns; /* 0 = not yet */
	uint32_t uid, gid;   /* owner */
	bool exec;           /* a process job; then: */
	int exit_code;       /* of the last attempt's process, -1 if it did not exit */
	int term_signal;     /* signal that ended it, 0 if none */
	int pid;             /* last attempt's process id, 0 if none (in memory only) */
	uint64_t output_cut[2]; /* bytes of stdout / stderr the last attempt's
				 * process wrote that its output file does not
				 * hold (cut at output_max or below the free-space
				 * reserve; see dd_job_output_path); 0 = none */
	/* The last attempt's whole process tree, from its cgroup (none
	 * without cgroups, see dd_engine_cgroups): */
	bool have_cpu_time, have_mem_peak;
	uint64_t cpu_time_ns;  /* user + system CPU time */
	uint64_t mem_peak;     /* bytes: the most memory it held at once */
	/* Arrays: an element's array and index; the array's own job has
	 * array_id == id, its elements' count and their number by state (an
	 * element not made yet counts as the array's own state, WAITING,
	 * DELAYED or QUEUED, or CANCELLED once the array is). 0 elsewhere. */
	uint64_t array_id;
	uint32_t array_index;
	uint64_t array_count;
	uint64_t array_states[DD_STATE_COUNT];
	char name[DD_NAME_MAX + 1]; /* dd_job_spec.name, or "" */
	/* A process job's command (its argv, joined by spaces, cut to fit with
	 * "..." at the end) and working directory ("" for the engine's) */
	char command[256];
	char cwd[256];
};

/* ---- engine -------------------------------------------------------------- */

enum dd_durability {
	DD_DURABILITY_DEFAULT = 0,  /* in a job spec: the engine's level */
	DD_DURABILITY_NONE = 1,     /* acknowledged when queued in memory */
	DD_DURABILITY_BUFFERED = 2, /* ... when its log record is in the page
				     * cache: survives a crash of the process */
	DD_DURABILITY_FSYNC = 3,    /* ... when its log record is on the device
				     * (fdatasync done): survives power loss */
};

/* Lower-case name of a level: "none", "buffered", "fsync", or "default"
 * for DD_DURABILITY_DEFAULT; "invalid" for any other value. Static
 * storage, never NULL; allocates nothing, callable from anywhere. */
const char *dd_durability_name(enum dd_durability level);

/* The level that @name names, as dd_durability_name() writes it.
 * @param name   "none", "buffered" or "fsync" (NUL-terminated, exact case);
 *               "default" is not accepted: it is no level to ask for.
 * @param level  set on success, untouched otherwise.
 * @return 0, -EINVAL (no such level). Allocates nothing. */
int dd_durability_parse(const char *name, enum dd_durability *level);

/* A state change, delivered to the event callback. */
struct dd_event {
	uint64_t id;
	enum dd_state state;
	enum dd_state prev_state;
	uint32_t attempt;
	int result;
	const char *reason;   /* as dd_job_info's; valid during the callback */
	uint64_t intended_ns; /* intended submit time */
	uint64_t at_ns;       /* when the change happened */
	uint32_t uid;         /* the job's owner */
	const char *kind;     /* the job's kind (queue); valid during the callback */
	uint64_t array_id;    /* an array's element: its array, else 0 */
	uint32_t array_index; /* ...and its index */
};

/* Called on a shard's reactor thread for every state change whose bit
 * (1u << state) is in the config's event_mask. It is on the hot path: it
 * must not block, and must not call back into the engine except
 * dd_submit()/dd_submit_batch() without DD_SUBMIT_BLOCK. */
typedef void (*dd_event_fn)(const struct dd_event *ev, void *arg);

#define DD_EVENTS_TERMINAL ((1u << DD_SUCCEEDED) | (1u << DD_FAILED) | \
			    (1u << DD_CANCELLED) | (1u << DD_TIMED_OUT))
#define DD_EVENTS_ALL 0x3feu

/* Called on a shard's reactor after each log batch completes, with the ids
 * of the submissions it made durable at their level (in submission order
 * per shard). Same rules as dd_event_fn: it must not block. */
typedef void (*dd_durable_fn)(const uint64_t *ids, size_t n, void *arg);

/* A message from the engine: one line, no newline. @level is a syslog(3)
 * priority, LOG_ERR (3) to LOG_DEBUG (7) of <syslog.h>. Called from any of
 * the engine's threads (and from dd_engine_create()), possibly from several
 * at once; @msg is valid during the call. It must not block for long and
 * must not call into the engine. */
typedef void (*dd_log_fn)(int level, const char *msg, void *arg);

struct dd_config {
	unsigned shards;          /* 0 = one per NUMA node */
	unsigned workers;         /* per shard; 0 = the node's CPUs less one, at least 1 */
	bool inline_handlers;     /* run handlers on the reactor itself, no worker
				   * threads (default false). For short handlers on
				   * machines with few cores, where a worker would
				   * share a CPU with the reactor: saves a hand-off and
				   * a context switch per job. A running handler is not
				   * interrupted: a time-out or cancel takes effect when
				   * it returns (the job still ends TIMED_OUT/CANCELLED),
				   * and dd_job_cancelled() stays false while it runs.
				   * Inside such a handler, dd_job_get()/dd_cancel() on
				   * the same shard are answered at once, and a call
				   * that would wait on the same shard (dd_wait() on an
				   * unfinished job, a blocking submit into a full ring)
				   * returns -EDEADLK / -EAGAIN instead of hanging. */
	int pretend_nodes;        /* >0: split the CPUs into that many made-up nodes (tests) */
	bool pin;                 /* pin reactors and workers to their node's CPUs (default) */
	uint64_t spin_ns;         /* reactors and workers spin this long before
				   * parking. DD_SPIN_AUTO (the default): 50 µs when
				   * the process has a CPU beyond one per reactor and
				   * worker (and, with durable state, one for the
				   * log and store), else 0: a thread that spins on
				   * the only CPU the submitters could use takes it
				   * from them. dd_stats() says what was chosen. */
	unsigned worker_queue;    /* jobs handed to a worker ahead of its completions,
				   * at most, 1..256 (default 256). Within it the
				   * engine hands over about 50 µs of work by the
				   * worker's recent time per job (at least 2 jobs):
				   * short jobs go in large batches, and an urgent
				   * job waits behind little. 1 keeps priorities
				   * exact: each job is chosen when a worker is free. */
	enum dd_durability durability; /* default NONE; BUFFERED and FSYNC need
				   * state_dir */
	const char *state_dir;    /* durable state: a write-ahead log and an LMDB
				   * store per shard under <state_dir>/shard-N;
				   * created (0700) if missing; copied. Trusted
				   * only when it is the engine's own: it, every
				   * directory and file under it the engine opens,
				   * and output_dir must be owned by the effective
				   * uid, not writable by group or others and not
				   * symbolic links, and every directory above
				   * them owned by root or that uid and not
				   * writable by group or others unless sticky
				   * (as /tmp); else dd_engine_create() fails with
				   * -EPERM and says why through on_log */
	uint64_t segment_bytes;   /* log segment size (default 64 MiB) */
	size_t map_initial;       /* LMDB map per shard, starts at (default 64 MiB) */
	size_t map_max;           /* ...and doubles up to (default 64 GiB); beyond,
				   * submissions fail with DD_ESTOREFULL */
	uint64_t store_retain_ns; /* ended jobs leave the store after this long
				   * (default 7 days; 0 = no age limit) */
	size_t store_retain_count; /* ...or beyond this many per shard (default
				   * 10 Mi; SIZE_MAX = no limit; 0 = none, and
				   * a job that ends soon after its submission
				   * is never written to the store) */
	size_t store_lag_max;     /* log records per shard the store may be
				   * behind the log; beyond: -EAGAIN until it
				   * catches up (default 512 Ki; SIZE_MAX = no
				   * limit; at least 1024). An ended job leaves memory only once
				   * the store has it, so this bounds memory under
				   * a load the store cannot keep up with */
	const char *output_dir;   /* process jobs' stdout/stderr files, copied
				   * (default <state_dir>/output; without either,
				   * output goes to /dev/null) */
	uint64_t output_max;      /* bytes kept per stream (default 64 MiB): past
				   * it the file keeps its head and its newest
				   * bytes, about half each, with a marker line
				   * between (see dd_job_output_path) */
	uint64_t output_reserve;  /* bytes kept free for the log and store on the
				   * file system of state_dir: below it, process
				   * output on that file system is cut (never is a
				   * submission refused). DD_RESERVE_AUTO (the
				   * default): 1 GiB, or 5 % of the file system
				   * when that is less; 0: none. Output on another
				   * file system (output_dir) is not held to it */
	bool histograms;          /* record the latency histograms of dd_stats
				   * (default true; false measures their cost) */
	int probe;                /* the eBPF jitter probe: DD_PROBE_AUTO (default:
				   * load it if permitted, else say why in
				   * dd_stats and go on), DD_PROBE_ON (creating the
				   * engine fails without it), DD_PROBE_OFF */
	uint64_t kill_grace_ns;   /* a timed-out or cancelled process gets SIGTERM,
				   * then SIGKILL this long after (default 5 s) */
	dd_durable_fn on_durable; /* submissions made durable, see below */
	void *durable_arg;
	size_t ring_capacity;     /* submission ring cells per priority lane (default 4096) */
	size_t max_live_jobs;     /* per shard, non-terminal jobs; beyond: -EAGAIN (default 4 Mi) */
	size_t retain_terminal;   /* per shard, ended jobs kept in memory (default 1 Mi) */
	uint64_t shutdown_grace_ns; /* running handlers get this long before
				   * they are cancelled at destroy (default 5 s) */
	uint64_t tick_ns;         /* timer wheel resolution (default 100 µs) */
	dd_event_fn on_event;
	void *event_arg;
	uint32_t event_mask;      /* default DD_EVENTS_TERMINAL when on_event is set */
	unsigned pool_cpus;       /* CPUs process jobs may hold at once (each asks
				   * dd_exec_spec.cpus): DD_POOL_AUTO (default)
				   * the engine's CPUs (its affinity); 0: this
				   * engine runs no process job, they wait. A
				   * count above the CPUs shares them */
	uint64_t pool_mem;        /* bytes process jobs may ask for at once
				   * (dd_exec_spec.mem): DD_POOL_AUTO_MEM
				   * (default) the machine's memory */
	int cgroups;              /* a cgroup per process job (DESIGN.md section
				   * 10): DD_CGROUPS_AUTO (default: used where
				   * the engine may create them, else process
				   * groups, said once through on_log and by
				   * dd_engine_cgroups()), DD_CGROUPS_ON
				   * (creating the engine fails without them),
				   * DD_CGROUPS_OFF */
	const struct dd_run_limit *limits; /* limits on running process jobs
				   * (see dd_engine_set_limits), copied; */
	size_t nlimits;           /* none by default */
	uint64_t job_pids_max;    /* processes one process job's tree may hold
				   * at once (cgroups' pids controller: a fork
				   * bomb stays a job's own); 0 (default): no
				   * limit. Without the controller, said by
				   * dd_engine_cgroups() */
	const char *supervisor;   /* the dispatchd-supervisor program that holds
				   * process jobs so that they outlive the
				   * engine (DESIGN.md section 10; with a
				   * state_dir only). NULL (default):
				   * $DISPATCHD_SUPERVISOR, else the installed
				   * one; "": none, process jobs end with the
				   * engine. One that cannot be started is
				   * said through on_log and by
				   * dd_engine_supervisor(); the engine then
				   * starts process jobs itself */
	dd_log_fn on_log;         /* the engine's messages (why a state dir is
				   * refused, a log that cannot be written...);
				   * NULL: dropped (the library never prints) */
	void *log_arg;
};

/* A limit on running process jobs: at most @max at once (0: none) of
 * owner @uid (DD_LIMIT_ANY_USER: of each owner without a limit of their
 * own) when @kind is NULL, else of the kind (queue) @kind. A process job
 * over a limit waits aside, QUEUED with the reason saying so, and never
 * holds back other jobs waiting for the pool. */
#define DD_LIMIT_ANY_USER UINT32_MAX
struct dd_run_limit {
	uint32_t uid;
	const char *kind;
	uint32_t max;
};

/* Fills @cfg with the defaults above. */
void dd_config_init(struct dd_config *cfg);

struct dd_engine;

/* Creates an engine and starts its threads.
 * @param cfg  settings, copied; NULL for the defaults.
 * @param out  the engine on success.
 * @return 0, -EINVAL (bad setting, e.g. durability not supported yet),
 *         -ENOMEM, -EAGAIN (threads could not be started), -ENODEV (no CPU),
 *         -EPERM (state_dir or output_dir, or something under them, is not
 *         the engine's own: see state_dir; the message names the path, its
 *         owner and mode and what to do), another -errno from opening the
 *         state (the message says which path).
 * Allocates; blocks until every thread is running. */
int dd_engine_create(const struct dd_config *cfg, struct dd_engine **out);

/* Stops accepting submissions, cancels jobs that have not started (reason
 * "shutdown"), lets running handlers finish — cancelling them (dd_job_cancelled)
 * after shutdown_grace_ns — then joins every thread and frees everything.
 * Blocks until handlers return. NULL does nothing. */
void dd_engine_destroy(struct dd_engine *e);

/* dd_engine_destroy() and what @flags ask:
 * DD_DESTROY_LEAVE_RUNNING: running process jobs are neither waited for
 * nor killed; they go on in the process supervisor, and the next engine
 * on the same state_dir takes them over (dd_recovery.jobs_adopted): their
 * output goes on into the same files, and their exit status, time-out
 * and cancel are as if the engine had never stopped. Without a supervisor
 * (see dd_engine_supervisor) they are killed as by dd_engine_destroy(). */
#define DD_DESTROY_LEAVE_RUNNING 1u
void dd_engine_destroy_ex(struct dd_engine *e, unsigned flags);

/* Replaces the engine's limits on running process jobs with @v (@n of
 * them; 0 lifts them all). Jobs already running are not stopped; held
 * jobs that the new limits allow start. Any thread.
 * @return 0, -EINVAL (a kind of more than 63 bytes), -ENOMEM. */
int dd_engine_set_limits(struct dd_engine *e, const struct dd_run_limit *v, size_t n);

/* Registers @fn under @name for jobs of that kind. With @fn NULL, @name is
 * an external queue: its jobs wait until a worker outside the engine takes
 * them with dd_reserve() (process jobs of that kind still run here).
 * @return 0, -EINVAL (empty or over 63 bytes), -EEXIST, -ENOSPC (over 1024
 *         handlers), -ENOMEM. Handlers cannot be removed. */
int dd_handler_register(struct dd_engine *e, const char *name, dd_handler_fn fn, void *arg);

/* Re-reads what the engine caches from the system: owners' passwd
 * entries and supplementary groups (a daemon calls it on SIGHUP). Jobs
 * started afterwards see the new entries; a spawn under way keeps the
 * entry it took. Any thread; does not wait for the shards.
 * @return 0, -ENOMEM. */
int dd_engine_reload(struct dd_engine *e);

/* Whether process jobs run in cgroups of their own (*@on, may be NULL),
 * and what the engine says of it: "cgroup2 /sys/fs/cgroup/x, memory on
 * v1 /sys/fs/cgroup/memory/x", "off: ...", or "unavailable: <why>; ...".
 * The text lives as long as the engine. Any thread. */
const char *dd_engine_cgroups(const struct dd_engine *e, bool *on);

/* Whether process jobs run under the process supervisor, so that they
 * outlive the engine (*@on, may be NULL), and what the engine says of it:
 * "on: <program> (started by this engine)", "off: ...", or
 * "unavailable: <why>; ...". The text lives as long as the engine. Any
 * thread. */
const char *dd_engine_supervisor(const struct dd_engine *e, bool *on);

/* Number of shards, and the node each one serves. */
unsigned dd_engine_shards(const struct dd_engine *e);
int dd_engine_shard_node(const struct dd_engine *e, unsigned shard);

/* ---- submission ------------------------------------------------------------ */

#define DD_SUBMIT_BLOCK 1u /* wait for room instead of returning -EAGAIN */

/* Submits one job and returns its id (the owning shard is in the high 8
 * bits). An idempotency key belongs to the job's owner (spec.uid with
 * DD_JOB_OWNER, else the engine's effective uid): with a key this owner
 * already used, no job is created and the first job's id is returned; the
 * same key from another owner is another key.
 * @return 0, -EINVAL (bad spec), DD_ENOHANDLER, DD_EDEPS, -E2BIG (payload,
 *         deps or key too large), -EBADF (exec->stdin_fd is not open),
 *         -EMFILE (no descriptor left for its copy, or jobs already hold a
 *         quarter of RLIMIT_NOFILE in standard inputs: try again once some
 *         have ended), -EAGAIN (rings or max_live_jobs full, or
 *         the store over store_lag_max records behind the log; and
 *         no DD_SUBMIT_BLOCK), DD_ESHUTDOWN, -ENOMEM.
 * No system call, lock or allocation for jobs without a key and with a
 * payload of at most 48 bytes and at most 2 deps; keyed jobs take a striped
 * lock and, with a state_dir, read the store once (keys of earlier runs). Callable from handlers and the event callback (without BLOCK). */
int dd_submit(struct dd_engine *e, const struct dd_job_spec *spec, unsigned flags, uint64_t *id);

/* Submits @n jobs; ids[i] receives each id. Jobs go to their shards in runs
 * so that each run costs one atomic operation.
 * @param submitted  how many were accepted (a prefix of @specs).
 * @return 0 when all were accepted, else the error that stopped the batch. */
int dd_submit_batch(struct dd_engine *e, const struct dd_job_spec *specs, size_t n,
		    unsigned flags, uint64_t *ids, size_t *submitted);

/* dd_submit_batch(), also saying of each accepted job whether its
 * idempotency key was already bound (known[i] true: no job was made, and
 * ids[i] is the earlier job's, which may not have ended or be durable
 * yet; a key given twice in the batch is known the second time). For a
 * caller that accounts for the jobs it makes, such as a per-owner limit.
 * @known: at least @n entries; the accepted prefix is filled. */
int dd_submit_batch_known(struct dd_engine *e, const struct dd_job_spec *specs, size_t n,
			  unsigned flags, uint64_t *ids, bool *known, size_t *submitted);

/* ---- control and queries ---------------------------------------------------- */

/* Cancels a job: a waiting, delayed or queued job ends CANCELLED at once; a
 * running one ends CANCELLED at once too and its handler sees
 * dd_job_cancelled() (its return value is then ignored). A running process
 * job gets SIGTERM (its process group), SIGKILL after kill_grace_ns, and
 * ends CANCELLED when it has exited, with the signal recorded.
 * @return 0, DD_ETERMINAL (already ended), -ENOENT (no such job),
 *         DD_EEVICTED, DD_ESHUTDOWN. Blocks for a round trip to the shard. */
int dd_cancel(struct dd_engine *e, uint64_t id);

/* Sends @sig to the process group of a running process job (the job's
 * state does not change: the job ends as its process does). A process
 * being started gets it as soon as it exists; one that has just exited
 * (its job about to end) is not signalled, and the call returns 0.
 * @return 0, -ESRCH (not running a process now: queued, between attempts,
 *         or it could not start), -EINVAL (bad signal: 1..64),
 *         DD_ETERMINAL (already ended), -ENOENT, DD_EEVICTED, DD_ESHUTDOWN.
 * Blocks for a round trip to the shard. */
int dd_job_signal(struct dd_engine *e, uint64_t id, int sig);

/* Fills @info with the job's current state.
 * A job no longer in memory is read from the state store when there is
 * one (then info->worker is the last attempt's and times are as logged).
 * @return 0, -ENOENT, DD_EEVICTED (ended, no longer in memory or store),
 *         DD_ESHUTDOWN. Blocks for a round trip to the shard. */
int dd_job_get(struct dd_engine *e, uint64_t id, struct dd_job_info *info);

/* Path of a process job's captured output (@stream 1 = stdout, 2 =
 * stderr) of @attempt (1 the first; 0 the last started, which looks the
 * job up: a round trip to its shard, or a store read), into @buf of @n
 * bytes: <output_dir>/<id>.<attempt>.out or .err, id and attempt in
 * decimal. Each attempt has its own files, kept until retention removes
 * the job. A file exists once its attempt has written to that stream
 * (looked at every 250 ms while it runs, and when it ends): an attempt
 * that wrote nothing has none. Past output_max the file holds the head
 * and the newest bytes with one line between them,
 * "\n[dispatchd: N bytes cut here]\n" (N: bytes not kept; the line says
 * so when the free-space reserve cut them); dd_job_info.output_cut counts
 * them. While the process runs a cut moves the tail: offsets read before
 * it do not hold after it.
 * @return 0, -EINVAL, -ENAMETOOLONG, -EOPNOTSUPP (no output dir), and with
 *         @attempt 0 dd_job_get()'s codes. Blocks only with @attempt 0. */
int dd_job_output_path(struct dd_engine *e, uint64_t id, uint32_t attempt, int stream,
		       char *buf, size_t n);

/* Waits until the job is terminal or @timeout_ns passes (UINT64_MAX:
 * forever) and fills @info (may be NULL).
 * @return 0, -ETIMEDOUT, -ENOENT, DD_EEVICTED, DD_ESHUTDOWN. Blocks; never
 *         call it from a handler or the event callback. */
int dd_wait(struct dd_engine *e, uint64_t id, uint64_t timeout_ns, struct dd_job_info *info);

/* Waits until the job's submission record is durable at the job's level.
 * @return 0, -ETIMEDOUT, -EOPNOTSUPP (the job's durability is NONE),
 *         -ENOSPC / -EIO (the log cannot be written: the job is not durable
 *         yet; the engine retries on its own and service resumes when space
 *         returns), -ENOENT, DD_ESHUTDOWN. Blocks; not from a handler. */
int dd_wait_durable(struct dd_engine *e, uint64_t id, uint64_t timeout_ns);

/* Lists ids of jobs in @state, ascending, greater than @after (0 to start;
 * pass the last id returned to go on), at most @max, from the state store.
 * The store follows the log a few milliseconds behind: the call first waits
 * (up to 2 s) until it holds every change logged before it was called, so
 * a job that ended before the call is listed in its end state.
 * A non-terminal state there is the last one logged (WAITING, DELAYED,
 * QUEUED, RUNNING). SUCCEEDED is listed by reading the store's jobs in id
 * order (they have no index: they are most jobs), so a page of it costs
 * what the jobs read to fill it cost; every other state has an index.
 * @return 0 (*n filled; fewer than @max means the end), -EOPNOTSUPP (no
 *         state_dir), -EINVAL, -EIO. Any thread; does not wait for reactors. */
int dd_job_list(struct dd_engine *e, enum dd_state state, uint64_t after, uint64_t *ids,
		size_t max, size_t *n);

/* What the engine found in its state directory when it was created. */
struct dd_recovery {
	uint64_t jobs_loaded;   /* non-terminal jobs put back in memory */
	uint64_t jobs_lost;     /* were RUNNING with no attempt left: FAILED "lost" */
	uint64_t jobs_retried;  /* were RUNNING: queued for another attempt */
	uint64_t jobs_adopted;  /* were RUNNING and their process still ran (or
				 * had ended) under the supervisor: taken over */
	uint64_t records_replayed; /* log records applied to the stores */
	unsigned torn;          /* shards whose log ended in a torn or corrupt
				 * record (cut off, reported through on_log) */
	uint64_t ns;            /* time recovery took */
};
int dd_engine_recovery(struct dd_engine *e, struct dd_recovery *out);

/* ---- external workers: leases ----------------------------------------------
 *
 * A job of an external queue (a kind registered with no handler) is taken
 * by a worker outside the engine with dd_reserve(), which starts an attempt
 * (RUNNING) under a lease that ends at deadline_ns. The worker answers with
 * dd_lease_ack() (the attempt succeeded), dd_lease_nack() (it failed:
 * retried while attempts remain) or extends the lease with dd_lease_touch().
 * A lease that runs out is a failed attempt with reason "lease expired",
 * retried like any other. The job's timeout_ns does not apply to leases.
 * Each call names the attempt, so an answer to an expired lease can never
 * settle a later attempt of the same job. */

struct dd_lease {
	uint64_t id;
	uint32_t attempt, max_attempts;
	uint32_t uid, gid;     /* the job's owner */
	int priority;
	uint64_t deadline_ns;  /* CLOCK_MONOTONIC: answer or touch before */
	void *payload;         /* a malloc'd copy: the caller frees it */
	size_t payload_len;
};

#define DD_ANY_OWNER UINT32_MAX

/* Leases the most urgent, oldest queued job of @queue owned by @owner
 * (DD_ANY_OWNER: any) for @ttr_ns. Does not wait for one to arrive.
 * @return 0, -EAGAIN (none queued now), DD_ENOHANDLER (no such external
 *         queue: unknown, or it has an in-process handler), -EINVAL (ttr 0),
 *         -ENOMEM, DD_ESHUTDOWN. Blocks for a round trip to each shard. */
int dd_reserve(struct dd_engine *e, const char *queue, uint64_t ttr_ns, uint32_t owner,
	       struct dd_lease *out);
/* @return 0, -ESTALE (that attempt's lease is over), DD_ETERMINAL, -ENOENT,
 *         DD_EEVICTED, DD_ESHUTDOWN. */
int dd_lease_ack(struct dd_engine *e, uint64_t id, uint32_t attempt);
/* @result: the attempt's result (non-zero; 0 is taken as 1). Same codes. */
int dd_lease_nack(struct dd_engine *e, uint64_t id, uint32_t attempt, int result);
/* The lease now ends @ttr_ns from now. Same codes, and -EINVAL. */
int dd_lease_touch(struct dd_engine *e, uint64_t id, uint32_t attempt, uint64_t ttr_ns);

/* ---- statistics ------------------------------------------------------------ */

#define DD_MAX_SHARDS 64

/* Latency distributions each shard records (nanoseconds; log-linear
 * buckets, within 1/128 of the true value). */
enum dd_hist_kind {
	DD_HIST_DISPATCH = 0,    /* intended submit time -> the attempt started */
	DD_HIST_QUEUE_WAIT = 1,  /* queued -> the attempt started */
	DD_HIST_RUN = 2,         /* attempt started -> it ended (handler, process, lease) */
	DD_HIST_DURABLE_ACK = 3, /* submission -> its log record durable at its level */
	DD_HIST_LOG_IO = 4,      /* one log batch: write (+ fdatasync) */
};
#define DD_HIST_COUNT 5

struct dd_hist_summary {
	uint64_t count, sum_ns, min_ns, max_ns;
	uint64_t p50_ns, p90_ns, p99_ns, p999_ns;
};

struct dd_shard_stats {
	int node;
	unsigned workers;
	uint64_t submitted, dispatched, succeeded, failed, cancelled, timed_out, retried;
	uint64_t waiting, delayed, queued, running; /* current counts */
	uint64_t in_memory;      /* records held, terminal included */
	uint64_t parks, wakeups; /* reactor parked / was woken by a producer */
	uint64_t arena_bytes;    /* bytes in the shard's arena */
	uint64_t fate_bytes;     /* kept to answer for jobs that left memory:
				  * 64 KiB per 65,536 ids while any may change,
				  * then 2 bytes per failed job */
	uint64_t log_records, log_batches; /* written to the log */
	uint64_t durable_lsn;    /* last record on the device */
	uint64_t applied_lsn;    /* last record in the store */
	uint64_t store_jobs;     /* jobs held in the store */
	uint64_t store_map_bytes;
	int state_error;         /* 0, or why submissions are refused now
				  * (-ENOSPC, -EIO, DD_ESTOREFULL) */
	/* process jobs' trees (with cgroups, see dd_engine_cgroups) */
	uint64_t proc_cpu_ns;    /* CPU time of the attempts that ended */
	uint64_t proc_oom;       /* attempts killed for their memory limit */
	uint64_t proc_leftovers; /* attempts whose main process left others
				  * behind, which were killed */
	/* the pool process jobs take CPUs and memory from (dd_config.pool_cpus) */
	uint64_t pool_cpus, pool_cpus_free;
	uint64_t pool_mem, pool_mem_free; /* bytes */
	uint64_t pool_waiting;   /* process jobs queued for want of room */
	struct dd_hist_summary hist[DD_HIST_COUNT]; /* since the engine started */
};

enum { DD_PROBE_AUTO = 0, DD_PROBE_ON = 1, DD_PROBE_OFF = 2 };
enum { DD_CGROUPS_AUTO = 0, DD_CGROUPS_ON = 1, DD_CGROUPS_OFF = 2 };
#define DD_POOL_AUTO UINT32_MAX
#define DD_POOL_AUTO_MEM UINT64_MAX

/* Thread roles the jitter probe tells apart. */
enum dd_probe_role {
	DD_ROLE_OTHER = 0, DD_ROLE_REACTOR = 1, DD_ROLE_WORKER = 2, DD_ROLE_IO = 3,
};
#define DD_ROLE_COUNT 4

#define DD_SPIN_AUTO UINT64_MAX
#define DD_RESERVE_AUTO UINT64_MAX

struct dd_stats {
	unsigned nshards;
	uint64_t spin_ns;   /* what the engine's threads spin (DD_SPIN_AUTO resolved) */
	uint64_t window_ns; /* dd_stats_window_read(): the window's length; else 0 */
	/* The eBPF jitter probe: run-queue latency (made runnable -> on a CPU)
	 * of the engine's threads, by role, measured in the kernel, and how
	 * often they were preempted. */
	bool probe_loaded;
	char probe_status[160];  /* "loaded", "off", or "unavailable: <why>" */
	struct dd_hist_summary runq[DD_ROLE_COUNT];
	uint64_t preempted[DD_ROLE_COUNT];
	bool numa_available;
	bool jemalloc;
	bool cgroups;            /* process jobs run in cgroups of their own */
	char cgroup_status[1400]; /* dd_engine_cgroups()'s text */
	struct dd_shard_stats shard[DD_MAX_SHARDS];
	struct dd_shard_stats total; /* sums; node = -1 */
};

/* Fills @st from counters the reactors publish; lock-free and non-blocking,
 * each counter exact, the set not a single instant. Computes the histogram
 * summaries, so it costs tens of microseconds: not for a hot path. */
int dd_stats(struct dd_engine *e, struct dd_stats *st);

/* dd_stats() without any histogram summary (hist[] and runq[] stay zero,
 * probe_status says "not read"): the counters and gauges alone, a few
 * hundred atomic loads, for a caller that polls them every millisecond or
 * two (a closed-loop client bounding its backlog). Any thread. */
int dd_stats_counters(struct dd_engine *e, struct dd_stats *st);

/* dd_stats()'s total.state_error alone: 0, or why a shard refuses
 * submissions now (-ENOSPC, -EIO, DD_ESTOREFULL). A few atomic loads, for
 * a caller that asks every millisecond. Any thread. */
int dd_state_error(struct dd_engine *e);

/* A reader's window, for rates and recent percentiles: each
 * dd_stats_window_read() fills @st like dd_stats(), but its event counters
 * (submitted ... retried, log records and batches, parks, wake-ups) and its
 * histogram summaries cover only the time since the previous read with the
 * same window (the first: since the engine started), whose length is
 * st->window_ns. Gauges (queued, running ...) are as now. Each reader has
 * its own window; the engine's threads are not disturbed. Not for the jitter
 * probe's summaries, which stay cumulative.
 * @return 0, -ENOMEM. Not thread-safe per window. */
struct dd_stats_window;
int dd_stats_window_create(struct dd_engine *e, struct dd_stats_window **out);
void dd_stats_window_destroy(struct dd_stats_window *w);
int dd_stats_window_read(struct dd_engine *e, struct dd_stats_window *w, struct dd_stats *st);

/* One distribution as cumulative counts, for exposition (Prometheus
 * "le" buckets): @count_le[i] = values at most @le_ns[i] (to bucket
 * resolution), for @n bounds; *count and *sum_ns the totals.
 * @shard: a shard, or -1 for all of them.
 * @return 0, -EINVAL. Lock-free; tens of microseconds. */
int dd_stats_hist(struct dd_engine *e, int shard, enum dd_hist_kind kind, const uint64_t *le_ns,
		  size_t n, uint64_t *count_le, uint64_t *count, uint64_t *sum_ns);

#ifdef __cplusplus
}
#endif
#endif
