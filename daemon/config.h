/* dispatchd's settings: defaults, the INI file (inih), then flags. */
#ifndef DD_DAEMON_CONFIG_H
#define DD_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dispatchd.h"

/* A [limits] entry: "user.NAME = N", "user.* = N", "queue.NAME = N". */
#define DD_DCFG_LIMITS 256
struct dd_dcfg_limit {
	uint32_t uid;  /* DD_LIMIT_ANY_USER for user.*; unused for a queue */
	char kind[64]; /* a queue's name; "" a user's */
	uint32_t max;
};

struct dd_dcfg {
	char state_dir[1024];
	char socket[1024];     /* "" = the default for this user */
	char listen[256];      /* HOST:PORT, "" = no TCP */
	char token_file[1024];
	char metrics[256];
	char log_file[1024];   /* "" = stderr */
	char config[1024];     /* the file these came from, for SIGHUP */
	unsigned shards, workers;
	int durability;        /* enum dd_durability */
	/* limits, reloaded on SIGHUP */
	size_t max_frame;      /* bytes per request line */
	uint64_t max_jobs_per_user; /* non-terminal jobs a uid may have */
	size_t max_batch;      /* jobs per submit_batch */
	unsigned max_conns;
	uint64_t output_max;
	char output_dir[1024]; /* "" = <state_dir>/output */
	uint64_t output_reserve; /* bytes; DD_RESERVE_AUTO: the engine's default */
	uint64_t kill_grace_ns;
	uint64_t shutdown_grace_ns;
	int cgroups;           /* DD_CGROUPS_AUTO, _ON, _OFF */
	uint64_t job_pids_max; /* processes a job's tree may hold; 0 none */
	struct dd_dcfg_limit limits[DD_DCFG_LIMITS]; /* [limits]; reloaded on SIGHUP */
	size_t nlimits;
	char supervisor[1024]; /* the supervisor program; "" the engine's
				* default; "off" none (jobs end with the daemon) */
	unsigned pool_cpus;    /* --cpus: DD_POOL_AUTO, or a count (0: none) */
	uint64_t pool_mem;     /* --mem: DD_POOL_AUTO_MEM, or bytes */
	uint64_t spin_ns;      /* engine threads spin this long before parking;
				* DD_SPIN_AUTO ("auto", the default): the engine chooses */
	uint64_t store_lag_max; /* log records the store may lag (engine's) */
	/* The engine has no room (rings full, or its store far behind the log):
	 * a submit is held this long for it before it is refused. A store commit
	 * under load can take a few hundred ms: the default outlasts one, so that
	 * a slow store is not refused as EAGAIN. Reloaded on SIGHUP. */
	uint64_t submit_wait_ns;
	int verbose;
};

void dd_dcfg_defaults(struct dd_dcfg *c);
/* Reads an INI file over @c. Keys may sit before any section or under
 * [dispatchd]; limits on running process jobs under [limits]. Returns 0, or -1 with a message in @err ("file:line: ..."). */
int dd_dcfg_load(struct dd_dcfg *c, const char *path, char *err, size_t errlen);
/* The same from a string (fuzzing, tests). */
int dd_dcfg_load_string(struct dd_dcfg *c, const char *text, char *err, size_t errlen);
/* One key: the file's and the flags' common path. Returns 0 or -1 (err). */
int dd_dcfg_set(struct dd_dcfg *c, const char *key, const char *value, char *err, size_t errlen);
/* A key of the [limits] section. Returns 0, or -1 with @err set. */
int dd_dcfg_limit(struct dd_dcfg *c, const char *key, const char *value, char *err,
		  size_t errlen);
/* @c's limits as the engine takes them (pointing into @c): fills @out
 * (DD_DCFG_LIMITS entries) and returns how many. */
size_t dd_dcfg_run_limits(const struct dd_dcfg *c, struct dd_run_limit *out);
/* Where a user's daemon listens without XDG_RUNTIME_DIR: a directory of
 * its own (mode 0700) in /tmp, never a guessable name others may take. */
#define DD_USER_SOCKET_DIR "/tmp/dispatchd-%u"
#define DD_ROOT_SOCKET "/run/dispatchd/dispatchd.sock"
/* The socket path: for root DD_ROOT_SOCKET; for a user
 * $XDG_RUNTIME_DIR/dispatchd.sock when that is a directory the user owns,
 * else DD_USER_SOCKET_DIR/dispatchd.sock. For a client (@for_client)
 * DISPATCHD_SOCKET overrides. Returns true for a default path, whose
 * directory the daemon creates and both sides check (sockdir.h); false
 * for DISPATCHD_SOCKET's. */
bool dd_default_socket(char *buf, size_t n, bool for_client);

#endif
