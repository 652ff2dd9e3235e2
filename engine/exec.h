/* The process executor: the engine's supervision of process jobs that
 * proc/ starts. exec.c (starting on a worker, watching on the reactor),
 * output.c (the output files) and outcut.c (cutting them). */
#ifndef DD_ENGINE_EXEC_H
#define DD_ENGINE_EXEC_H

#include <signal.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "proc.h"
#include "engine.h"
#include "pool.h"

/* One output stream of a running process. The reactor owns it, except
 * while @busy: then the output helper (outcut.c) owns @head, @mark_len,
 * @cut and @low_cut, and hands them back by clearing @busy (release,
 * paired with the reactor's acquire). */
struct dd_ostream {
	_Atomic bool busy;
	bool named;       /* the file has its name (see dd_output_open) */
	bool low_cut;     /* a cut was for the free-space reserve */
	uint64_t head;    /* bytes of the process's head kept; 0: never cut */
	uint64_t mark_len; /* the marker line's bytes after the head */
	uint64_t cut;     /* bytes written and not kept */
};

/* A process job's running attempt, on its shard's list. */
struct dd_exec_run {
	struct dd_exec_run *next, *prev;
	struct dd_jobrec *j;
	int pidfd;
	pid_t pid;
	int out, err; /* output files, kept for the size checks; -1 none */
	uint64_t out_max;
	uint64_t id;
	uint32_t attempt;
	struct dd_ostream os[2]; /* stdout, stderr */
	bool exited;  /* reaped, waiting for its last cuts (status below) */
	int status;
	bool kill_sent;
	bool sup;         /* the supervisor's child: it reports the exit */
	bool sup_lost;    /* ...and it went away while this ran */
	pid_t sup_pid;    /* the supervisor that holds it */
	bool detached;    /* left running to the next engine; freed once its
			   * output's cut (if one is under way) is done */
	bool cg_on;       /* in its cgroup (proctree.c) */
	uint64_t mem_max; /* its tree's memory limit, 0 none */
	bool tree_killed; /* its main process ended and the rest was killed */
	bool tree_wait;   /* reaped, waiting for the rest of its tree to go */
	bool recut;       /* ended: its output's cap looked at once more */
	struct dd_proc_cg_job cg;
	struct dd_proc_usage use; /* the tree's, read once it is empty */
	struct dd_grant grant;    /* what it holds of the pool (pool.c) */
	char *why; /* pid 0: the process did not start, and why (an arena
		    * copy the reactor hands to the job's reason), or NULL */
	siginfo_t si; /* IORING_OP_WAITID writes here */
};

/* The process executor: exec_start.c starts a process on a worker,
 * exec.c watches it on the reactor, exec_sup.c follows what the
 * supervisor holds. */
struct dd_exec_run;
/* Worker: starts j's process; sets j->proc and w_result (0, or -errno). */
void dd_exec_spawn(struct dd_shard *s, struct dd_jobrec *j);
/* Between exec*.c, on the reactor: p on the shard's list of running
 * processes; p's process ended with @status; p left to the supervisor
 * for the next engine; p freed (its grant given back); a signal to p's
 * tree (or group). */
void dd_exec_enlist(struct dd_shard *s, struct dd_exec_run *p);
void dd_exec_exited(struct dd_shard *s, struct dd_exec_run *p, int status);
void dd_exec_detach(struct dd_shard *s, struct dd_exec_run *p);
void dd_exec_proc_free(struct dd_shard *s, struct dd_exec_run *p);
void dd_exec_signal_group(struct dd_shard *s, struct dd_exec_run *p, int sig);
/* Reactor: j came back from its worker; watch its process or end it. */
void dd_exec_started(struct dd_shard *s, struct dd_jobrec *j);
/* Reactor: a completion for p's exit watch. */
void dd_exec_reaped(struct dd_shard *s, struct dd_exec_run *p, int res);
/* Reactor: p's cgroup.events changed (its tree may be empty now). */
void dd_exec_tree_event(struct dd_shard *s, struct dd_exec_run *p, int res);
/* Reactor: the supervisor says @id's @attempt exited with @status. */
void dd_exec_sup_exit(struct dd_shard *s, uint64_t id, uint32_t attempt, int status);
/* Reactor: the supervisor @pid went away: the shard's processes it held
 * are killed and their attempts fail. */
void dd_exec_sup_lost(struct dd_shard *s, pid_t pid);
/* Recovery: @j was running and the supervisor holds its attempt's
 * process (@h, whose files it takes): @j runs again, under this engine. */
struct dd_sup_held;
int dd_exec_adopt(struct dd_shard *s, struct dd_jobrec *j, struct dd_sup_held *h);
/* Reactor: the engine stops and leaves running processes to the
 * supervisor: their jobs leave memory as they are in the log (running). */
void dd_exec_detach_all(struct dd_shard *s);
/* Reactor, first turn: the exits of adopted processes that had ended
 * while no engine ran. */
void dd_exec_sup_adopted(struct dd_shard *s);
/* Reactor: signal a running process job's group (cancel, time-out); the
 * job ends when the process has gone. */
void dd_exec_kill(struct dd_shard *s, struct dd_jobrec *j);
/* Reactor: kills the children of starts that hung (DD_PROC_SPAWN_LIMIT_NS);
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

/* proctree.c: a process job's tree, through its cgroup */
/* Engine creation: the engine's cgroup subtree, or why there is none
 * (e->cg_status). Returns 0; -errno only with cfg.cgroups DD_CGROUPS_ON. */
int dd_proctree_open(struct dd_engine *e);
void dd_proctree_close(struct dd_engine *e);
/* Worker: @p's cgroup (p->cg_on), memory limit @mem (0 none). Without
 * cgroups, 0 and nothing (a limit: -EOPNOTSUPP). On -errno @why says it. */
int dd_proctree_create(struct dd_shard *s, struct dd_exec_run *p, uint64_t mem, char *why,
		       size_t whyn);
/* Reactor: signals every process of @p's tree. */
int dd_proctree_signal(struct dd_shard *s, struct dd_exec_run *p, int sig);
/* Reactor, after its main process was reaped: true when nothing of @p's
 * tree is left (its usage read, its cgroup gone); else kills what is left
 * and returns false: watch p->cg.events and ask again. */
bool dd_proctree_gone(struct dd_shard *s, struct dd_exec_run *p);
/* Freeing @p while its tree may live (engine shutdown): killed, and its
 * cgroup removed where it can be. */
void dd_proctree_free(struct dd_shard *s, struct dd_exec_run *p);
/* Freeing @p while its tree runs on for the next engine: its cgroup is
 * left as it is. */
void dd_proctree_release(struct dd_shard *s, struct dd_exec_run *p);
/* Recovery: @p (id, attempt, mem_max set) runs in the cgroup an earlier
 * engine made for it: follows it again. 0 or -errno (-ENOENT: none). */
int dd_proctree_adopt(struct dd_shard *s, struct dd_exec_run *p);
/* Recovery: an attempt nobody holds any more (its supervisor went away):
 * whatever still runs in its cgroup is killed (waited for, bounded) and
 * the cgroup removed. Returns whether anything ran there. */
bool dd_proctree_orphan(struct dd_shard *s, uint64_t id, uint32_t attempt);

/* output.c */
#define DD_OUTPUT_LOW_HEAD (64u << 10) /* head kept of a stream first cut for
					* the free-space reserve */
/* Opens @p's output file for @stream (1 stdout, 2 stderr): nameless where
 * the file system allows, /dev/null without an output dir. Returns the fd
 * or -errno. */
int dd_output_open(struct dd_shard *s, struct dd_exec_run *p, int stream);
/* Reactor: looks at both files' sizes, hands those past their cap (or all
 * of them while free space is below the reserve) to the output helper,
 * and names those that hold something; @last: the process has ended.
 * Returns whether a cut is still under way (the job must not end yet). */
bool dd_output_cap(struct dd_shard *s, struct dd_exec_run *p, bool last);
/* <output_dir>/<id>.<attempt>.out|err */
int dd_output_path(const struct dd_engine *e, uint64_t id, uint32_t attempt, int stream,
		   char *buf, size_t n);

/* outcut.c: the output helper thread, one per engine with an output dir */
struct dd_outcut;
int dd_outcut_start(struct dd_engine *e, struct dd_outcut **out);
void dd_outcut_stop(struct dd_outcut *h);
/* Free space is below the reserve now (any thread; a relaxed load). */
bool dd_outcut_low(const struct dd_outcut *h);
/* How long until the reactor should look at the files again: 250 ms,
 * 20 ms while free space is below twice the reserve (any thread). */
uint64_t dd_outcut_interval(const struct dd_outcut *h);
/* Reactor: has the helper cut @os (file @fd, dup'd here) to its head
 * (@head bytes, when it was never cut) and its newest @keep bytes; sets
 * os->busy. @low: for the reserve; @last: the process has ended.
 * Returns 0 or -errno (then nothing is queued). */
int dd_outcut_queue(struct dd_outcut *h, struct dd_shard *s, struct dd_ostream *os, int fd,
		    uint64_t head, uint64_t keep, bool low, bool last);

#endif
