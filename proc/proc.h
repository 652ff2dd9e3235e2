/* proc/ — starting a process: the exec spec's encoding (execspec.c),
 * owners' credentials (creds.c), the environment and the child that takes
 * the owner's credentials, enters cwd, opens stdin, sets rlimits and execs
 * (spawn.c), the files its output goes to (output.c), and the texts of its
 * exit status (status.c).
 *
 * It knows nothing of jobs, shards or the log: calls take plain inputs and
 * give back pids, pidfds and errors. The engine supervises what it starts
 * (engine/exec.c: watching, time-outs, output cuts, job records).
 *
 * Private header of the component; not part of the public API. Functions
 * returning int return 0 (or what they say) or -errno. */
#ifndef DD_PROC_H
#define DD_PROC_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dispatchd.h"

/* ---- the exec spec as bytes (execspec.c): the payload of a process job,
 * so that the log, the store and recovery carry it like any payload ---- */

/* A decoded spec: argv and the rest, in one allocation. */
struct dd_proc_spec {
	char **argv;  /* NULL-terminated, pointing into blk */
	char **env;   /* NULL-terminated, or NULL */
	bool env_replace;
	char *cwd;    /* or NULL */
	char *stdin_path; /* or NULL */
	char *stdout_path, *stderr_path; /* or NULL (patterns, as submitted) */
	unsigned umask; /* 022 unless the spec gave one */
	uint64_t output_max;
	uint64_t mem; /* the tree's memory limit, bytes; 0 none */
	uint32_t cpus; /* CPUs it asks for, at least 1 */
	struct dd_rlimit rl[DD_RLIMITS_MAX];
	unsigned nrl;
	void *blk;    /* one allocation holding all of it */
};

/* Encodes @x into *out (malloc'd, *len bytes; the caller frees it).
 * stdin_fd is not encoded: it is not durable. Returns 0, -EINVAL (no
 * program, an env entry without '=', a bad rlimit, umask or flag), -E2BIG
 * (over DD_EXEC_MAX bytes) or -ENOMEM. */
int dd_proc_spec_encode(const struct dd_exec_spec *x, void **out, size_t *len);
/* Decodes @len bytes of @buf, trusting nothing (recovered bytes, fuzz).
 * Returns 0 (free @out with dd_proc_spec_free), -EPROTO (not a spec: @out
 * holds nothing) or -ENOMEM. */
int dd_proc_spec_decode(const void *buf, size_t len, struct dd_proc_spec *out);
/* The resources a spec asks for (its CPUs, at least 1, and memory, 0
 * none), from its header alone: a few loads, for the reactor. Returns 0,
 * or -EPROTO (not a spec: 1 and 0 given back). */
int dd_proc_spec_request(const void *buf, size_t len, uint32_t *cpus, uint64_t *mem);
/* The spec @buf (@len bytes) with the "KEY=VALUE" strings of @add
 * (NULL-terminated) in its environment, replacing the spec's own of those
 * keys: *out (malloc'd, *outlen bytes). An array's elements get their
 * index this way. Returns 0, -EPROTO (not a spec), -E2BIG, -ENOMEM. */
int dd_proc_spec_add_env(const void *buf, size_t len, const char *const *add, void **out,
			 size_t *outlen);
/* The spec @buf with stdout and stderr paths @out_path and @err_path in
 * place of its own (its patterns, expanded by the caller): *res
 * (malloc'd, *reslen bytes). Returns as dd_proc_spec_add_env(). */
int dd_proc_spec_set_output(const void *buf, size_t len, const char *out_path,
			    const char *err_path, void **res, size_t *reslen);
/* What a person is shown of the spec @buf (@len bytes): its argv joined by
 * spaces into @cmd (cut to fit, ending "..." when cut) and its working
 * directory into @cwd ("" for none). Both "" when it is not a spec. */
void dd_proc_spec_describe(const void *buf, size_t len, char *cmd, size_t cmdn, char *cwd,
			   size_t cwdn);
/* Frees what decode allocated; @d is zeroed (a second free does nothing). */
void dd_proc_spec_free(struct dd_proc_spec *d);

/* ---- owners' credentials (creds.c): passwd entry and groups per uid,
 * resolved once and cached (any thread) ---- */
struct dd_proc_cred {
	uint32_t uid;
	int err;          /* 0, or -ENOENT: no passwd entry */
	int ngroups;
	uint32_t *groups; /* supplementary groups (getgrouplist of the name) */
	char *env[4];     /* "USER=", "LOGNAME=", "HOME=", "SHELL=" from passwd */
	unsigned refs;    /* under the cache's lock */
	bool stale;       /* dropped by a reload: freed by the last put */
	struct dd_proc_cred *next;
};
struct dd_proc_creds;
/* Returns 0 or -ENOMEM. */
int dd_proc_creds_create(struct dd_proc_creds **out);
void dd_proc_creds_destroy(struct dd_proc_creds *c);
/* @uid's entry, with a reference the caller puts back. May block (NSS)
 * the first time a uid is asked for. Returns 0; -ENOENT when @uid has no
 * passwd entry (remembered: NSS is not asked again until a reload), which
 * refuses to run anything as it; -ENOMEM; or -errno of an NSS look-up that
 * failed (not remembered). On an error @why (when not NULL) says it:
 * "uid 5000 has no passwd entry", "cannot look up uid 5000: ...". */
int dd_proc_creds_get(struct dd_proc_creds *c, uint32_t uid, struct dd_proc_cred **out,
		      char *why, size_t whyn);
/* Puts back a reference from get; @cr NULL does nothing. */
void dd_proc_creds_put(struct dd_proc_creds *c, struct dd_proc_cred *cr);
/* Forgets every entry: the next get reads passwd and groups again. */
void dd_proc_creds_reload(struct dd_proc_creds *c);

/* ---- starting a process (spawn.c) ---- */

/* Where a child being started reports to its parent (a page of its own
 * per thread). Its watchdog, another thread, may kill a start that hangs
 * through dd_proc_report_pid() and dd_proc_spawn_abort(). */
struct dd_proc_report;

/* A start that takes longer than this is the watchdog's to kill: nothing a
 * process's own start does should take it, and the starting thread is held
 * meanwhile. */
#define DD_PROC_SPAWN_LIMIT_NS (10ull * 1000000000ull)

/* What to start, and as whom. */
struct dd_proc_spawn {
	const struct dd_proc_spec *spec; /* argv, env, cwd, umask, stdin path,
					  * rlimits (output_max is the caller's) */
	/* Another user's process: its owner's entry (from dd_proc_creds_get),
	 * whose USER, LOGNAME, HOME and SHELL it gets; the environment is then
	 * the spec's alone. NULL: the caller's own process. */
	const struct dd_proc_cred *cred;
	/* Become @uid/@gid with cred's groups (a root caller and a cred):
	 * cwd, stdin and PATH are entered, opened and searched as the owner. */
	bool setuid;
	uint32_t uid, gid;
	int in;        /* stdin; -1: /dev/null. A spec's stdin_path replaces it. */
	int out, err;  /* stdout, stderr */
	const cpu_set_t *cpus; /* the child's CPUs; NULL: the caller's */
	/* cgroup.procs files (open for writing) the child enters before
	 * anything else, ended by -1 (dd_proc_cg_job.procs); NULL: none */
	const int *cg_procs;
	/* Called with where the child reports before it starts, and with NULL
	 * once vfork has returned (exec'd or failed): a watchdog's window.
	 * Runs on the calling thread; NULL: none. */
	void (*watch)(void *arg, volatile struct dd_proc_report *rep);
	void *watch_arg;
};

/* A started process: our child, unreaped. */
struct dd_proc_child {
	pid_t pid;  /* also its process group and session id */
	int pidfd;  /* the caller's to watch, waitid() and close */
};

/* Starts @sp in a session and process group of its own, with default
 * signal dispositions, fds 0-2 only. Blocks the calling thread until the
 * child has exec'd (vfork; for as long as a hung file system or NSS makes
 * it, unless a watchdog aborts it); allocates; never call it from a signal
 * handler. Returns:
 *   0: started, @c filled;
 *   > 0: the wait status of a child that could not go on (exit 126, or 127
 *        for a program not found), @why saying why as a shell would
 *        ("cannot enter /x: Permission denied", "cmd: No such file or
 *        directory");
 *   -errno: nothing started (-ETIMEDOUT: aborted by the watchdog, @why
 *        says so; -ENOMEM; vfork's error).
 * @why is left as it was when there is nothing more to say than the code. */
int dd_proc_spawn(const struct dd_proc_spawn *sp, struct dd_proc_child *c, char *why, size_t whyn);
/* The environment of @x's process: without @cr, the caller's with the
 * spec's added, or the spec's alone (env_replace); with @cr (another
 * user's), the spec's alone whatever env_replace says, and USER, LOGNAME,
 * HOME, SHELL from @cr where the spec gives none. Returns a malloc'd
 * NULL-terminated array pointing into environ, @x and @cr (free the array
 * alone), or NULL (out of memory). */
char **dd_proc_env(const struct dd_proc_spec *x, const struct dd_proc_cred *cr);
/* Watchdog (any thread): the pid of the child reporting to @rep, 0 before
 * it runs. */
int dd_proc_report_pid(const volatile struct dd_proc_report *rep);
/* Watchdog: kills @pid (read by dd_proc_report_pid, the start since
 * checked to be the same) unless it was killed already; the start then
 * fails with -ETIMEDOUT. Returns whether this call killed it. */
bool dd_proc_spawn_abort(volatile struct dd_proc_report *rep, int pid);

/* ---- output files (output.c) ---- */

/* Opens an output file for a process: nameless in @dir (O_TMPFILE) where
 * the file system allows (give it @path later with dd_proc_output_name),
 * else @path itself, created or truncated (*named set); /dev/null when
 * @dir is NULL (*named set). Append-only, close-on-exec, 0600, as the
 * caller. Returns the fd or -errno. */
int dd_proc_output_open(const char *dir, const char *path, bool *named);
/* Gives the nameless file @fd the name @path, replacing a file left there.
 * Returns 0 or -errno. */
int dd_proc_output_name(int fd, const char *path);

/* ---- a cgroup per process (cgroup.c) ---- */

/* The caller's subtree of cgroups: on cgroup v2, with memory on v2 or on a
 * v1 memory hierarchy. */
struct dd_proc_cg;
/* One process tree's cgroup (on v2, and on v1 memory where that is used). */
struct dd_proc_cg_job {
	int dir;      /* its v2 directory */
	int procs[5]; /* cgroup.procs (v2, then each v1 hierarchy used) for the
		       * child, -1 ended */
	int events;   /* v2 cgroup.events: "populated", pollable (POLLPRI) */
	int v1[3];    /* its v1 memory, pids and cpuset directories, or -1 */
	int cpu_stat; /* v2 cpu.stat, or -1 */
	int mem[3];   /* v1 memory.max_usage_in_bytes ("0" resets it),
		       * memory.oom_control, memory.usage_in_bytes; or -1 */
	uint64_t mem_max; /* its memory limit; 0 none */
	/* what its cgroups hold now (a reused v1 one, its last tree's): each
	 * is written only when a tree asks otherwise */
	uint64_t pids_max; /* pids.max; 0 "max" */
	uint64_t oom_base; /* the v1 memory kill count before this tree */
	bool narrowed;     /* cpuset.cpus is @cpus, not the subtree's */
	cpu_set_t cpus;
	char name[48];
};
/* What a cgroup's processes used, over their lives. */
struct dd_proc_usage {
	bool have_cpu, have_mem;
	uint64_t cpu_ns;    /* user + system */
	uint64_t mem_peak;  /* bytes */
	uint64_t oom_kills; /* processes the kernel killed for the limit */
};
/* Creates (or takes over) the subtree @name in the caller's own cgroup,
 * enabling the memory controller for it where it can be.
 * Returns 0, or -errno with @why saying why cgroups cannot be used (no
 * cgroup2 mount; not root and not delegated). */
int dd_proc_cg_open(const char *name, struct dd_proc_cg **out, char *why, size_t whyn);
/* Closes @cg and removes the subtree unless a process's cgroup is left in
 * it. @cg NULL does nothing. */
void dd_proc_cg_close(struct dd_proc_cg *cg);
/* "cgroup2 /sys/fs/cgroup/unified/x, memory on v1 /sys/fs/cgroup/memory/x" */
const char *dd_proc_cg_describe(const struct dd_proc_cg *cg);
/* A memory limit can be set and a peak read. */
bool dd_proc_cg_memory(const struct dd_proc_cg *cg);
/* A limit on a tree's processes (pids controller) can be set. */
bool dd_proc_cg_pids(const struct dd_proc_cg *cg);
/* A tree can be confined to CPUs (cpuset controller). */
bool dd_proc_cg_cpuset(const struct dd_proc_cg *cg);
/* Creates the cgroup @name (an empty one left there is taken over) with
 * memory limit @mem_max (0: none); @cpus, what it is to be confined to
 * (or NULL), chooses among spares. Returns 0; -EBUSY: a populated cgroup
 * of that name is there (its processes run on); -EOPNOTSUPP: a limit
 * without a memory controller; -errno. Pass j->procs to dd_proc_spawn. */
int dd_proc_cg_job_create(struct dd_proc_cg *cg, const char *name, uint64_t mem_max,
			  const cpu_set_t *cpus, struct dd_proc_cg_job *j);
/* Opens the cgroup @name that a process (of an earlier engine) runs in,
 * to follow it as dd_proc_cg_job_create() would have (@mem_max: the limit
 * it was made with). Returns 0 or -errno (-ENOENT: there is none). */
int dd_proc_cg_job_open(const struct dd_proc_cg *cg, const char *name, uint64_t mem_max,
			struct dd_proc_cg_job *j);
/* Before its process starts: limits @j's tree to @pids_max processes (0:
 * none) and its CPUs to @cpus (NULL: all of the subtree's), where the
 * controllers are there (see dd_proc_cg_pids, dd_proc_cg_cpuset; else
 * nothing is done for that one). Returns 0 or -errno. */
int dd_proc_cg_job_confine(const struct dd_proc_cg *cg, struct dd_proc_cg_job *j,
			   uint64_t pids_max, const cpu_set_t *cpus);
/* 1 while a process is in @j's cgroup, 0 when none is, or -errno. */
int dd_proc_cg_job_populated(const struct dd_proc_cg_job *j);
/* Signals every process in @j (SIGKILL through cgroup.kill where the
 * kernel has it). Returns how many were signalled one by one, 0 for
 * cgroup.kill, or -errno. */
int dd_proc_cg_job_signal(const struct dd_proc_cg *cg, const struct dd_proc_cg_job *j, int sig);
/* The same for the v2 cgroup whose directory is open at @dir, where
 * @kill_file says whether it has cgroup.kill (the supervisor's, for a
 * cgroup it knows by path alone). */
int dd_proc_cg_signal_at(int dir, bool kill_file, int sig);
/* What @j's processes used so far. Returns 0. */
int dd_proc_cg_job_usage(const struct dd_proc_cg *cg, const struct dd_proc_cg_job *j,
			 struct dd_proc_usage *u);
/* The pids in @j (up to @max). Returns the count or -errno. */
int dd_proc_cg_job_procs(const struct dd_proc_cg_job *j, pid_t *pids, int max);
/* Removes @j's cgroups and closes its files. Returns 0, or -EBUSY while a
 * process is in them (@j left as it was: call it again once empty). */
int dd_proc_cg_job_destroy(const struct dd_proc_cg *cg, struct dd_proc_cg_job *j);
/* As dd_proc_cg_job_destroy(), but @j's v1 cgroups are kept, empty, for
 * a later dd_proc_cg_job_create() where they can be (not for a cgroup of
 * dd_proc_cg_job_open()). Any thread. */
int dd_proc_cg_job_recycle(struct dd_proc_cg *cg, struct dd_proc_cg_job *j);
/* Closes @j's files and leaves its cgroups where they are. */
void dd_proc_cg_job_release(struct dd_proc_cg_job *j);

/* ---- exit status (status.c) ---- */

/* "exit 3", "signal 9 (Killed)": the text of a wait status, in static
 * storage (a record may keep the pointer). Any thread. */
const char *dd_proc_status_text(int status);

#endif
