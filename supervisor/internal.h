/* supervisor/ — the supervisor's own parts (private): the children's
 * table and its journal (table.c), the starts (spawn.c), the main loop
 * that reaps, reports and serves the engine's connections (serve.c). */
#ifndef DD_SUPERVISOR_INTERNAL_H
#define DD_SUPERVISOR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "proc.h"
#include "supervisor.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define NBUCKETS 4096u

enum ep_kind { EP_LISTEN, EP_EVENTS, EP_CHILD, EP_WAKE, EP_GONE };

struct ep {
	enum ep_kind kind;
};

struct child {
	struct ep ep; /* EP_CHILD: its pidfd */
	struct child *hnext;
	struct child *next, *prev;
	uint64_t id;
	uint32_t attempt, shard;
	pid_t pid;
	int pidfd, out, err;
	int cg[4];    /* its cgroup.procs files (v2 first), until acknowledged */
	unsigned ncg; /* for a removed state directory's clean-up (abandon.c) */
	uint64_t start_rt_ns;
	int status;
	bool exited, sent, journaled;
};

struct events {
	struct ep ep; /* EP_EVENTS */
	struct events *next_dead;
	int fd;
	uint32_t shard;
	bool want_out; /* an exit waits for room to be sent */
	bool dead;     /* closed; freed after the epoll batch that may still name it */
};

/* A spawn connection and what the watchdog sees of it. */
struct sconn {
	struct sconn *next;
	int fd;
	_Atomic uint64_t since;
	volatile struct dd_proc_report *rep;
	struct sup *sup;
};

struct sup {
	int epfd, listen_fd, dir_fd, jfd, wake_fd;
	int gone_fd; /* inotify on the state directory's parent, or -1 */
	uint64_t sock_ino;
	pthread_mutex_t mu; /* the table, the list of spawn connections */
	struct child *bucket[NBUCKETS];
	struct child all; /* list head */
	size_t nchildren;
	size_t njournaled; /* records in the journal not yet acknowledged */
	struct sconn *sconns;
	unsigned nsconns;
	struct events *ev[DD_SUP_MAX_SHARDS];
	unsigned nev;
	struct events *dead; /* closed this batch, freed after it */
	bool served; /* some engine has connected */
	uint64_t started_ns;
};

/* table.c: the children, under s->mu */
uint64_t now_ns(clockid_t c);
struct child *find(struct sup *s, uint64_t id, uint32_t attempt);
void insert(struct sup *s, struct child *c);
void drop(struct sup *s, struct child *c);
/* An exit into the journal (fdatasync'd), kept until acknowledged. */
void journal(struct sup *s, struct child *c);
/* At start: the exits an earlier supervisor journaled. */
void load_journal(struct sup *s);
/* Wakes the main loop (a spawn connection ended). Any thread. */
void wake_main(struct sup *s);

/* abandon.c: the state directory was removed, and no engine can come
 * back for what is here: every child's tree is killed and the cgroups
 * it ran in are removed. */
void abandon(struct sup *s);

/* spawn.c: a spawn connection's thread, and the starts' watchdog */
void *spawn_thread(void *arg);
void *watchdog_thread(void *arg);

#endif
