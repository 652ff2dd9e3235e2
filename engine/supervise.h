/* engine/ — the engine's side of the process supervisor (supervise.c: the
 * connections and starts; supervise_held.c: what it holds at connection;
 * supervise_events.c: exits on the reactor;
 * supervisor/supervisor.h): process jobs start in the supervisor, which holds
 * them so that they outlive the engine, and the next engine on the same
 * state directory takes them over. Private. */
#ifndef DD_ENGINE_SUPERVISE_H
#define DD_ENGINE_SUPERVISE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "proc.h"
#include "supervisor.h"

/* A process the supervisor holds for a shard, as it listed them when the
 * engine connected: the engine takes over those whose job still runs. */
struct dd_sup_held {
	uint64_t id;
	uint32_t attempt;
	pid_t pid;
	bool exited;
	bool taken; /* by a job (recovery), or dealt with */
	int status;
	int pidfd, out, err; /* -1 none */
	uint64_t start_rt_ns;
};

/* A shard's connection to the supervisor. Reactor-owned after creation. */
struct dd_sup_shard {
	int ev;            /* the events connection, -1 none */
	pid_t ev_pid;      /* the supervisor at its other end */
	int ev_pidfd;      /* ...whose death tells a lost supervisor from a
			    * dropped connection; -1 none */
	pid_t dead[4];     /* supervisors that went away, latest last: a run
			    * one of them started ends as lost */
	struct dd_sup_ack *ackbuf; /* a message's worth, made on first use */
	bool armed;        /* a poll on it is queued on the ring */
	uint64_t poll_ud;  /* ...with this user data (its generation) */
	uint32_t poll_gen;
	bool running;      /* the reactor has taken the adopted exits */
	uint64_t retry_ns; /* no connection: when to try again */
	uint64_t retry_gap; /* ...and after how long, doubling */
	unsigned seen_starts; /* dd_sup_starts() when last looked */
	struct dd_sup_held *held; /* the list at connection, sorted by id */
	size_t nheld;
	struct dd_sup_ack_q { /* exits recorded, acknowledged once durable */
		uint64_t id, lsn;
		uint32_t attempt;
	} *acks;
	size_t nacks, capacks;
	uint64_t ack_ns; /* when acknowledgements were last sent */
	struct dd_sup_early { /* exits that came before their start's reply */
		uint64_t id;
		uint32_t attempt;
		int status;
	} *early;
	size_t nearly, capearly;
};

/* Engine creation, before recovery: connects every shard to the state
 * directory's supervisor, starting one when none runs, and reads what it
 * holds (s->sup->held). Without a state dir, with cfg.supervisor "", or
 * when it cannot be started, process jobs start in the engine and end
 * with it (e->sup_status says why; logged). Returns 0. */
int dd_sup_open(struct dd_engine *e);
/* After the shards' threads have stopped. */
void dd_sup_close(struct dd_engine *e);
/* The held process of @id's latest attempt in @s, or NULL. */
struct dd_sup_held *dd_sup_held_latest(struct dd_shard *s, uint64_t id);
/* After recovery: what the supervisor holds that no job took over is
 * ended (killed if it runs) and acknowledged. */
void dd_sup_reconcile(struct dd_shard *s);

/* Worker: starts @sp (its spec being the job's @spec bytes) in the
 * supervisor over the worker's own connection (*@conn, made on first
 * use), and says which supervisor holds it (*@sup_pid). Blocks until the
 * supervisor answers (as a start without it blocks until exec; its own
 * watchdog bounds a start), and may start a supervisor. Returns as
 * dd_proc_spawn(); -EPIPE (@why saying so) when the supervisor cannot be
 * reached or went away meanwhile. */
int dd_sup_spawn(struct dd_engine *e, int *conn, unsigned shard, uint64_t id, uint32_t attempt,
		 const void *spec, size_t spec_len, const struct dd_proc_spawn *sp,
		 struct dd_proc_child *c, pid_t *sup_pid, char *why, size_t whyn);
/* What comes on an events connection, sized for the largest (a bigger
 * message is cut short, and refused). */
union dd_sup_events_msg {
	struct dd_sup_exit x;
	struct dd_sup_child c;
	struct dd_sup_listed l;
	char b[64];
};

/* Between supervise*.c: the events connection @fd becomes @ss's; the
 * supervisor at its end is @pid; a connection of @role to the
 * supervisor (started when none answers, if @may_start; else -ENOENT or
 * -ECONNREFUSED at once), or -errno with @why; a held
 * record's files closed; the list the supervisor sends on @fd read into
 * s->sup->held. */
void dd_sup_take_events(struct dd_sup_shard *ss, int fd);
void dd_sup_events_peer(struct dd_sup_shard *ss, pid_t pid);
int dd_sup_connect_role(struct dd_engine *e, uint32_t role, unsigned shard, bool may_start,
			char *why, size_t whyn);
void dd_sup_held_close(struct dd_sup_held *h);
/* How many supervisors this engine has started. Any thread. */
unsigned dd_sup_starts(const struct dd_engine *e);
int dd_sup_read_list(struct dd_shard *s, int fd, char *why, size_t whyn);

/* Reactor: the supervisor @pid went away (this shard saw it). */
bool dd_sup_dead(const struct dd_shard *s, pid_t pid);

/* Reactor, each turn: reads the events connection (exits), sends the
 * acknowledgements whose attempts are durable, and connects again after
 * the supervisor went away. */
void dd_sup_poll(struct dd_shard *s);
/* Reactor: the ring's poll on the events connection completed. */
void dd_sup_readable(struct dd_shard *s, uint64_t ud, int res, bool more);
/* Reactor: @id's attempt has been recorded (its end or retry appended to
 * the log): the supervisor forgets it once that is durable. */
void dd_sup_ack(struct dd_shard *s, uint64_t id, uint32_t attempt);
/* Reactor: signals the process group of @id's attempt (no cgroups). */
void dd_sup_signal(struct dd_shard *s, uint64_t id, uint32_t attempt, int sig);
/* Reactor: an exit that came before its start's reply (the worker has
 * not handed the job back yet): kept until dd_exec_started() asks. */
void dd_sup_early(struct dd_shard *s, uint64_t id, uint32_t attempt, int status);
bool dd_sup_take_early(struct dd_shard *s, uint64_t id, uint32_t attempt, int *status);
/* Reactor: @timeout, or less when acknowledgements are due before it. */
uint64_t dd_sup_timeout(const struct dd_shard *s, uint64_t timeout);
/* Reactor exit: sends the acknowledgements that are durable now. */
void dd_sup_flush(struct dd_shard *s);

#endif
