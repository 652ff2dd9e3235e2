/* dispatchd: the job-dispatch service (DESIGN.md section 8, dispatchd(8)). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dd_config.h"
#include "events.h"
#include "notify.h"
#include "server.h"
#include "sockdir.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dispatchd --state-dir DIR [--socket PATH] [--listen HOST:PORT --token-file F]\n"
		"                 [--metrics HOST:PORT] [--shards N] [--workers N]\n"
		"                 [--durability none|buffered|fsync] [-c CONFIG] [-v]\n"
		"  -d, --state-dir DIR     job log, store and output files (required)\n"
		"  -s, --socket PATH       Unix socket (default: $XDG_RUNTIME_DIR/dispatchd.sock,\n"
		"                          else /tmp/dispatchd-UID/dispatchd.sock; as root\n"
		"                          /run/dispatchd/dispatchd.sock)\n"
		"  -l, --listen HOST:PORT  also listen on TCP (needs --token-file)\n"
		"  -t, --token-file F      the token TCP clients must send first\n"
		"  -m, --metrics HOST:PORT serve Prometheus metrics at /metrics (HOST defaults\n"
		"                          to 127.0.0.1)\n"
		"      --shards N          shards (default: one per NUMA node)\n"
		"      --workers N         worker threads per shard\n"
		"      --durability L      when a submit is acknowledged (default fsync)\n"
		"      --log-file F        log here instead of stderr (reopened on SIGHUP)\n"
		"      --output-dir DIR    process jobs' output files (default STATE_DIR/output)\n"
		"      --cpus N            CPUs process jobs may hold at once (default: this\n"
		"                          process's CPUs; 0: run none here)\n"
		"      --mem SIZE          memory process jobs may ask for at once (default:\n"
		"                          the machine's; 512M, 64G; a bare number is MiB)\n"
		"      --cgroups auto|on|off  a cgroup per process job (default auto: where\n"
		"                          they can be made; on: refuse to start without)\n"
		"      --supervisor PATH|off  the process supervisor that keeps process jobs\n"
		"                          running across a stop or crash (default: the\n"
		"                          installed one; off: they end with the daemon)\n"
		"      --output-reserve N  bytes kept free for the log and store on the state\n"
		"                          dir's file system; below it job output is cut\n"
		"                          (default auto: 1G, or 5%% of a smaller file system)\n"
		"  -c, --config F          INI file with the same keys; flags win\n"
		"  -v, --verbose           log connections (-vv: and every refused request)\n"
		"  -h, --help, -V, --version\n");
}

/* The synthetic task of std-r (bench/std-r --via-daemon): a job of this
 * queue runs in-process and does nothing, so that a benchmark through the
 * service measures the service, not a program's start-up. */
#define NOOP_QUEUE "dispatchd.noop"

static int noop_task(const struct dd_job *job, void *arg)
{
	(void)job, (void)arg;
	return 0;
}

static int read_token(struct dd_server *srv, char *err, size_t errlen)
{
	FILE *f = fopen(srv->cfg.token_file, "r");
	if (!f) {
		snprintf(err, errlen, "token file %s: %s", srv->cfg.token_file, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
		fclose(f);
		snprintf(err, errlen, "token file %s is readable by others: chmod 600 it",
			 srv->cfg.token_file);
		return -1;
	}
	size_t n = fread(srv->token, 1, sizeof(srv->token) - 1, f);
	fclose(f);
	while (n && (srv->token[n - 1] == '\n' || srv->token[n - 1] == '\r'))
		n--;
	srv->token[n] = 0;
	if (n < 16) {
		snprintf(err, errlen, "token in %s is shorter than 16 bytes", srv->cfg.token_file);
		return -1;
	}
	return 0;
}

/* The engine's messages (a state dir it refuses says why here). */
static void engine_log(int level, const char *msg, void *arg)
{
	(void)level, (void)arg;
	dd_server_log("%s", msg);
}

/* The directory of the default socket: the user's own (0700), or root's
 * /run/dispatchd (0755: other users reach the socket, whose mode says who
 * may connect). Refused when someone else owns it or may write it. */
static int make_socket_dir(const char *sock, char *err, size_t errlen)
{
	char dir[1024];
	dd_sockdir_of(sock, dir, sizeof(dir));
	return dd_sockdir_make(dir, geteuid(), geteuid() == 0 ? 0755 : 0700, err, errlen);
}

/* The command line into @srv->cfg: the config file first, wherever -c
 * is, so that flags override it. Returns -1 to go on, or the exit code:
 * 0 after --help or --version, 2 for a usage error (said). */
static int parse_args(int argc, char **argv, struct dd_server *srv)
{
	static const struct option opts[] = {
		{"state-dir", required_argument, NULL, 'd'}, {"socket", required_argument, NULL, 's'},
		{"listen", required_argument, NULL, 'l'},    {"token-file", required_argument, NULL, 't'},
		{"metrics", required_argument, NULL, 'm'},   {"shards", required_argument, NULL, 'S'},
		{"workers", required_argument, NULL, 'W'},   {"durability", required_argument, NULL, 'D'},
		{"log-file", required_argument, NULL, 'L'},  {"config", required_argument, NULL, 'c'},
		{"output-dir", required_argument, NULL, 'O'}, {"output-reserve", required_argument, NULL, 'R'},
		{"cgroups", required_argument, NULL, 'G'}, {"supervisor", required_argument, NULL, 'U'},
		{"cpus", required_argument, NULL, 'P'},	     {"mem", required_argument, NULL, 'M'},
		{"verbose", no_argument, NULL, 'v'},	     {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},	     {NULL, 0, NULL, 0},
	};
	static const char *const keys[128] = {
		['d'] = "state_dir", ['s'] = "socket",	 ['l'] = "listen",  ['t'] = "token_file",
		['m'] = "metrics",   ['S'] = "shards",	 ['W'] = "workers", ['D'] = "durability",
		['L'] = "log_file",  ['O'] = "output_dir", ['R'] = "output_reserve",
		['G'] = "cgroups",   ['P'] = "cpus",	 ['M'] = "mem",     ['U'] = "supervisor",
	};
	char err[4400];
	int o, verbose = 0;
	const char *config = NULL;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "d:s:l:t:m:c:vhV", opts, NULL)) != -1)
		if (o == 'c')
			config = optarg;
	if (config && dd_dcfg_load(&srv->cfg, config, err, sizeof(err)) < 0) {
		dd_server_log("%s", err);
		return 2;
	}
	optind = 1;
	opterr = 1;
	while ((o = getopt_long(argc, argv, "d:s:l:t:m:c:vhV", opts, NULL)) != -1) {
		if (o == 'h') {
			usage(stdout);
			return 0;
		} else if (o == 'V') {
			printf("dispatchd %s\n", DD_VERSION);
			return 0;
		} else if (o == 'v') {
			verbose++;
		} else if (o == 'c') {
			continue;
		} else if (o > 0 && o < 128 && keys[o]) {
			if (dd_dcfg_set(&srv->cfg, keys[o], optarg, err, sizeof(err)) < 0) {
				dd_server_log("--%s: %s", keys[o], err);
				return 2;
			}
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		dd_server_log("unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return 2;
	}
	srv->cfg.verbose = verbose;
	if (!srv->cfg.state_dir[0]) {
		dd_server_log("--state-dir is required (where jobs are kept)");
		return 2;
	}
	if (srv->cfg.listen[0] && !srv->cfg.token_file[0]) {
		dd_server_log("--listen needs --token-file: TCP clients must authenticate");
		return 2;
	}
	return -1;
}

/* The engine's settings, from the daemon's. */
static void engine_config(struct dd_server *srv, struct dd_config *ec)
{
	dd_config_init(ec);
	ec->state_dir = srv->cfg.state_dir;
	ec->durability = srv->cfg.durability;
	ec->shards = srv->cfg.shards;
	ec->workers = srv->cfg.workers;
	/* The engine's default is the node's CPUs less one (the reactor's).
	 * On a machine of 2 or 3 CPUs that is one worker, and a process job
	 * holds its worker for a whole spawn, so one worker would serialize
	 * them; the extra worker floats (it has no CPU of its own).
	 * measured: docs/BENCHMARKS.md, "Measured choices: daemon workers" */
	if (!ec->workers && sysconf(_SC_NPROCESSORS_ONLN) <= 3)
		ec->workers = 2;
	ec->output_max = srv->cfg.output_max;
	ec->output_dir = srv->cfg.output_dir[0] ? srv->cfg.output_dir : NULL;
	ec->output_reserve = srv->cfg.output_reserve;
	ec->kill_grace_ns = srv->cfg.kill_grace_ns;
	ec->cgroups = srv->cfg.cgroups;
	ec->job_pids_max = srv->cfg.job_pids_max;
	static struct dd_run_limit lim[DD_DCFG_LIMITS]; /* the engine copies them */
	ec->nlimits = dd_dcfg_run_limits(&srv->cfg, lim);
	ec->limits = lim;
	if (!strcmp(srv->cfg.supervisor, "off"))
		ec->supervisor = "";
	else if (srv->cfg.supervisor[0])
		ec->supervisor = srv->cfg.supervisor;
	ec->pool_cpus = srv->cfg.pool_cpus;
	ec->pool_mem = srv->cfg.pool_mem;
	ec->shutdown_grace_ns = srv->cfg.shutdown_grace_ns;
	ec->spin_ns = srv->cfg.spin_ns;
	ec->ring_capacity = 16384; /* a few large batches in flight fit */
	/* ended jobs are read from the store once they leave memory: keep
	 * fewer in memory than the library's default, for a smaller table */
	ec->retain_terminal = 65536;
	ec->store_lag_max = srv->cfg.store_lag_max;
	ec->on_event = dd_events_on_event;
	ec->event_arg = srv->events;
	ec->event_mask = DD_EVENTS_ALL;
	ec->on_durable = dd_events_on_durable;
	ec->durable_arg = srv->events;
	ec->on_log = engine_log;
}

/* The engine (its recovery said), the no-op queue and the listeners.
 * Returns 0, or -1 after saying why, with the engine and server gone. */
static int start_service(struct dd_server *srv)
{
	struct dd_config ec;
	char err[4400];
	engine_config(srv, &ec);
	int r = dd_engine_create(&ec, &srv->eng);
	if (r < 0) {
		dd_server_log("cannot start the engine on %s: %s", srv->cfg.state_dir, dd_strerror(r));
		dd_server_destroy(srv);
		return -1;
	}
	if ((r = dd_handler_register(srv->eng, NOOP_QUEUE, noop_task, NULL)) < 0) {
		dd_server_log("cannot register %s: %s", NOOP_QUEUE, dd_strerror(r));
		dd_engine_destroy(srv->eng);
		dd_server_destroy(srv);
		return -1;
	}
	struct dd_recovery rec;
	if (dd_engine_recovery(srv->eng, &rec) == 0 && (rec.jobs_loaded || rec.records_replayed))
		dd_server_log("recovered %llu unfinished jobs (%llu running taken over, %llu retried, "
			      "%llu lost) from %llu log records in %.1f ms%s",
			      (unsigned long long)rec.jobs_loaded, (unsigned long long)rec.jobs_adopted,
			      (unsigned long long)rec.jobs_retried,
			      (unsigned long long)rec.jobs_lost, (unsigned long long)rec.records_replayed,
			      (double)rec.ns / 1e6, rec.torn ? "; a torn log tail was cut" : "");
	if (dd_server_listen_unix(srv, srv->cfg.socket, err, sizeof(err)) < 0 ||
	    (srv->cfg.listen[0] && dd_server_listen_tcp(srv, srv->cfg.listen, err, sizeof(err)) < 0) ||
	    (srv->cfg.metrics[0] && dd_metrics_start(srv, srv->cfg.metrics, err, sizeof(err)) < 0)) {
		dd_server_log("%s", err);
		dd_metrics_stop(srv);
		dd_engine_destroy(srv->eng);
		dd_server_destroy(srv);
		return -1;
	}
	return 0;
}

/* Stop (a signal): no new connections or jobs; running process jobs go
 * on under the supervisor and the next start takes them over; queued
 * jobs stay in the log for the next start.
 * Drain (dispatchctl drain): the same, but running work finishes (or is
 * cancelled after the grace and retried at the next start). */
static void drain(struct dd_server *srv)
{
	bool sup;
	dd_engine_supervisor(srv->eng, &sup);
	bool leave = srv->leave_running && sup;
	dd_notify(leave ? "STOPPING=1\nSTATUS=stopping" : "STOPPING=1\nSTATUS=draining");
	dd_server_close_listeners(srv);
	dd_metrics_stop(srv); /* before the engine it reads goes */
	if (leave)
		dd_server_log("stopping: running process jobs go on under the supervisor; the next "
			      "start takes them over");
	else
		dd_server_log("draining: waiting up to %.0f s for running jobs",
			      (double)srv->cfg.shutdown_grace_ns / 1e9);
	dd_engine_destroy_ex(srv->eng, leave ? DD_DESTROY_LEAVE_RUNNING : 0);
	srv->eng = NULL;
	dd_server_finish(srv);
	dd_server_destroy(srv);
	dd_server_log("stopped");
}

int main(int argc, char **argv)
{
	struct dd_server srv;
	char err[4400];
	memset(&srv, 0, sizeof(srv));
	srv.sigfd = srv.epfd = -1;
	dd_dcfg_defaults(&srv.cfg);
	int r = parse_args(argc, argv, &srv);
	if (r >= 0)
		return r;

	bool default_socket =
		!srv.cfg.socket[0] && dd_default_socket(srv.cfg.socket, sizeof(srv.cfg.socket), false);
	if (srv.cfg.log_file[0] && (r = dd_server_open_log(srv.cfg.log_file)) < 0) {
		fprintf(stdout, "dispatchd: cannot open log file %s: %s\n", srv.cfg.log_file,
			strerror(-r));
		return 1;
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	if (default_socket && make_socket_dir(srv.cfg.socket, err, sizeof(err)) < 0) {
		dd_server_log("%s", err);
		return 1;
	}
	/* the state dir is checked by the engine (dd_engine_create) */
	if (srv.cfg.token_file[0] && read_token(&srv, err, sizeof(err)) < 0) {
		dd_server_log("%s", err);
		return 1;
	}
	r = dd_server_init(&srv);
	if (r < 0) {
		dd_server_log("cannot start: %s", strerror(-r));
		return 1;
	}
	if (start_service(&srv) < 0)
		return 1;
	dd_server_log("ready: socket %s%s%s, state %s, %u shard(s), durability %s", srv.cfg.socket,
		      srv.cfg.listen[0] ? ", tcp " : "", srv.cfg.listen, srv.cfg.state_dir,
		      dd_engine_shards(srv.eng), dd_durability_name(srv.cfg.durability));
	char status[1200];
	snprintf(status, sizeof(status), "READY=1\nSTATUS=serving on %s\nMAINPID=%d", srv.cfg.socket,
		 (int)getpid());
	dd_notify(status);

	r = dd_server_run(&srv);
	drain(&srv);
	return r < 0 ? 1 : 0;
}
