/* supervisor/ — the process supervisor (DESIGN.md section 10): the process that
 * holds an engine's process jobs as its children, so that they outlive the
 * engine. One per state directory: the engine starts it (the
 * dispatchd-supervisor program, main.c) or, after a crash or a
 * restart, finds it on the socket DD_SUP_SOCK in the state directory.
 *
 * Connections (SOCK_SEQPACKET, both ends the same uid, checked):
 * - a spawn connection per engine worker: DD_SUP_SPAWN, answered by
 *   DD_SUP_SPAWNED with the child's pidfd;
 * - an events connection per shard: on hello the supervisor lists the
 *   shard's children (DD_SUP_CHILD each, live or exited and not yet
 *   acknowledged, with their pidfd and output files; DD_SUP_LISTED ends
 *   the list), then sends DD_SUP_EXIT for each child that has ended and
 *   keeps it until the engine acknowledges it (DD_SUP_ACK), which the
 *   engine does once the attempt's end is durable in its own log. Exits
 *   that happen while no engine listens go to the journal DD_SUP_JOURNAL
 *   (fsync'd), which a supervisor started later reads back.
 *
 * Both ends use these structs as they are; a supervisor of another
 * DD_SUP_VERSION (one that outlived an upgrade) refuses the hello, and
 * the engine then starts process jobs itself, saying so. Every message is
 * still checked for size and contents, as the journal is. Private header
 * of the component. */
#ifndef DD_SUPERVISOR_H
#define DD_SUPERVISOR_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DD_SUP_VERSION 1
#define DD_SUP_SOCK "supervisor.sock"
#define DD_SUP_JOURNAL "supervisor.exits"
/* Held (flock) by the supervisor for its whole life, fd 5: one at a time
 * per state directory, and a new one only once the last has gone. */
#define DD_SUP_LOCK "supervisor.lock"
#define DD_SUP_MAX_SHARDS 1024
#define DD_SUP_WHY 256
/* a spec longer than this goes in a memfd rather than in the message */
#define DD_SUP_INLINE_MAX (48u << 10)
#define DD_SUP_MSG_MAX (DD_SUP_INLINE_MAX + 64u * 1024u)
#define DD_SUP_GROUPS_MAX 4096u
#define DD_SUP_ENV_MAX 8192u

enum dd_sup_type {
	DD_SUP_HELLO = 0x53550001,
	DD_SUP_SPAWN,
	DD_SUP_SPAWNED,
	DD_SUP_CHILD,
	DD_SUP_LISTED,
	DD_SUP_EXIT,
	DD_SUP_ACK,
	DD_SUP_SIGNAL,
};

enum dd_sup_role { DD_SUP_ROLE_SPAWN = 1, DD_SUP_ROLE_EVENTS = 2 };

struct dd_sup_hello {
	uint32_t type, version, role, shard;
};

/* Flags of a spawn request: which fds follow, in this order: out, err,
 * then in, then the cgroup.procs files, then the spec's memfd. */
#define DD_SUP_F_SETUID 1u
#define DD_SUP_F_CRED 2u   /* groups and env follow the spec */
#define DD_SUP_F_CPUS 4u   /* cpus holds the child's CPUs */
#define DD_SUP_F_IN 8u     /* an stdin fd is passed */
#define DD_SUP_F_MEMFD 16u /* the spec is in a memfd, not inline */
#define DD_SUP_F_ALL 31u

struct dd_sup_spawn {
	uint32_t type, shard;
	uint64_t id;
	uint32_t attempt, flags;
	uint32_t uid, gid;
	uint32_t ncg;      /* cgroup.procs fds, at most 4 */
	uint32_t spec_len; /* inline or in the memfd */
	uint32_t ngroups;  /* with DD_SUP_F_CRED */
	uint32_t env_len;  /* with DD_SUP_F_CRED: 4 NUL-ended strings */
	cpu_set_t cpus;
	/* then: the spec (inline), groups (uint32_t each), env */
};

struct dd_sup_spawned {
	uint32_t type;
	int32_t rc;  /* as dd_proc_spawn() */
	int32_t pid; /* rc 0: the child; its pidfd is passed */
	int32_t sup_pid; /* the supervisor's own (a socket's peer is whoever
			  * listened: the engine that started it) */
	char why[DD_SUP_WHY];
};

#define DD_SUP_C_EXITED 1u /* status holds its wait status */
#define DD_SUP_C_PIDFD 2u  /* fds: pidfd (live only), then out, err */
#define DD_SUP_C_OUT 4u
#define DD_SUP_C_ERR 8u

struct dd_sup_child {
	uint32_t type, flags;
	uint64_t id;
	uint32_t attempt;
	int32_t pid;
	int32_t status;
	uint32_t pad;
	uint64_t start_rt_ns; /* CLOCK_REALTIME of its start */
};

struct dd_sup_listed {
	uint32_t type, count;
	int32_t sup_pid; /* the supervisor's own */
	uint32_t pad;
};

struct dd_sup_exit {
	uint32_t type;
	int32_t status;
	uint64_t id;
	uint32_t attempt;
	int32_t pid;
};

#define DD_SUP_ACK_MAX 512
struct dd_sup_ack_ent {
	uint64_t id;
	uint32_t attempt, pad;
};
struct dd_sup_ack {
	uint32_t type, n;
	struct dd_sup_ack_ent e[DD_SUP_ACK_MAX];
};

/* Signals the child's process group (the engine without cgroups). */
struct dd_sup_signal {
	uint32_t type;
	int32_t sig;
	uint64_t id;
	uint32_t attempt, pad;
};

/* A journal record: an exit kept until an engine acknowledges it. */
#define DD_SUP_JMAGIC 0x4444534a4f55524eull
struct dd_sup_jrec {
	uint64_t magic;
	uint64_t id;
	uint32_t attempt, shard;
	int32_t pid, status;
	uint64_t start_rt_ns;
	uint64_t check; /* of the fields above */
};

/* ---- supwire.c: checks shared by both ends (and the fuzz target) ---- */

/* The first @len bytes of a message with @nfds fds attached: is it a
 * well-formed message of type @want? For DD_SUP_SPAWN also checks the
 * tail's lengths and the fds the flags call for. Returns 0 or -EPROTO. */
int dd_sup_check(const void *msg, size_t len, unsigned nfds, uint32_t want);
/* How many fds a spawn request's flags call for. */
unsigned dd_sup_spawn_nfds(const struct dd_sup_spawn *m);
#define DD_SUP_FDS_MAX 8
/* sendmsg of @len bytes and @nfds fds (SCM_RIGHTS), EINTR retried, no
 * SIGPIPE. Returns the bytes sent or -errno. */
ssize_t dd_sup_send(int fd, const void *msg, size_t len, const int *fds, unsigned nfds,
		    int flags);
/* recvmsg into @buf (@cap bytes) and @fds (up to DD_SUP_FDS_MAX, close-on-
 * exec; *nfds of them). Returns the bytes, 0 at the end, -errno, or
 * -EPROTO for a message cut short (its fds closed). */
ssize_t dd_sup_recv(int fd, void *buf, size_t cap, int *fds, unsigned *nfds, int flags);
void dd_sup_close_fds(int *fds, unsigned n);
uint64_t dd_sup_jrec_check(const struct dd_sup_jrec *r);
/* A journal record read from disk: 0 or -EPROTO (torn, or not one). */
int dd_sup_jrec_valid(const struct dd_sup_jrec *r);

/* ---- supervisor.c: the supervisor's body ---- */

/* Runs the supervisor: serves @listen_fd (a listening SOCK_SEQPACKET
 * socket bound at DD_SUP_SOCK in @dir_fd, inode @sock_ino) until it has no
 * child, no unacknowledged exit and no connection left; then removes the
 * socket (when still its own) and returns 0. Returns -errno when it
 * cannot start. */
int dd_sup_serve(int listen_fd, int dir_fd, uint64_t sock_ino);

#endif
