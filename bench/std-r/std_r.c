/* std-r — Synthetic Task Dispatch Rate benchmark (first version: embedded
 * engine, no-op handler). See docs/BENCHMARKS.md for what each number means.
 *
 * Open loop: job i is *intended* to be submitted at start + i/rate; latency
 * is handler start minus that intended time, so a stall anywhere (generator,
 * ring, reactor, worker) is charged to every job it delayed. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "dispatchd.h"
#include "telemetry.h"
#include "floor.h"
#include "durable_acct.h"
#include "telemetry_cost.h"
#include "via_daemon.h"
#include <ftw.h>
#include <sys/stat.h>

#define BATCH 256
#define MAX_THREADS 256

struct opts {
	double rate; /* 0 = max */
	double duration_s, warmup_s;
	unsigned shards, workers;
	uint64_t spin_ns;
	uint64_t inflight;
	int gen_cpu;
	int executor; /* -1 auto, 0 workers, 1 inline */
	double floor_s; /* stall floor measurement, 0 = skip */
	int durability; /* enum dd_durability */
	const char *state_dir;
	const char *json;
	int quiet;
	bool via_daemon;
	unsigned batch, depth;
	const char *dispatchd;
	bool histograms_off;
	int probe; /* DD_PROBE_* */
	int telemetry_cost; /* rounds, 0 = not this mode */
};

/* Per-thread histograms: each worker records into its own, merged at the end. */
static pthread_mutex_t hist_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dd_tel_hist *hists[MAX_THREADS];
static unsigned nhists;
static __thread struct dd_tel_hist *tl_hist;
static uint64_t measure_from, measure_to; /* intended-time window */
static _Atomic uint64_t completed_in_window;
static _Atomic uint64_t completed_all;

static int noop_handler(const struct dd_job *job, void *arg)
{
	(void)arg;
	if (job->intended_ns < measure_from || job->intended_ns >= measure_to)
		return 0;
	if (!tl_hist) {
		pthread_mutex_lock(&hist_lock);
		if (nhists < MAX_THREADS && (tl_hist = calloc(1, sizeof(*tl_hist))))
			hists[nhists++] = tl_hist;
		pthread_mutex_unlock(&hist_lock);
		if (!tl_hist)
			return 0;
	}
	dd_tel_hist_record(tl_hist, job->start_ns - job->intended_ns);
	return 0;
}

/* Counts completions (the whole path) whose end falls in the window. */
static void on_event(const struct dd_event *ev, void *arg)
{
	(void)arg;
	/* one writer per shard; a plain atomic add is cheap next to the rest */
	atomic_fetch_add_explicit(&completed_all, 1, memory_order_relaxed);
	if (ev->at_ns >= measure_from && ev->at_ns < measure_to && ev->state == DD_SUCCEEDED)
		atomic_fetch_add_explicit(&completed_in_window, 1, memory_order_relaxed);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: std-r [options]\n"
		"  --rate R|max      offered rate in jobs/s, open loop (default max)\n"
		"  --duration S      measured seconds (default 10)\n"
		"  --warmup S        seconds excluded before measuring (default 2)\n"
		"  --shards N        shards (default: one per NUMA node)\n"
		"  --workers N       workers per shard (default: node CPUs less one)\n"
		"  --executor E      auto|workers|inline: run handlers on worker threads or\n"
		"                    on the reactor itself; auto picks inline when there are\n"
		"                    too few CPUs for generator + reactor + a worker per shard\n"
		"  --spin-us N       spin budget before parking, µs (default 50)\n"
		"  --inflight N      with --rate max: most jobs outstanding (default 8192)\n"
		"  --gen-cpu N       pin the load generator to CPU N (default: unpinned)\n"
		"  --floor S         first measure the CPUs' own stall floor for S seconds\n"
		"                    (default 1; 0 skips it)\n"
		"  --durability L    none|buffered|fsync (default none)\n"
		"  --state-dir DIR   state directory for buffered/fsync (default: a new\n"
		"                    directory under $TMPDIR or /var/tmp, removed after)\n"
		"  --via-daemon      start a dispatchd and submit to it over its socket in\n"
		"                    batches (durability fsync unless given); its built-in\n"
		"                    no-op task runs the jobs\n"
		"  --batch N         --via-daemon: jobs per submit_batch (default 1000)\n"
		"  --depth N         --via-daemon, closed loop: batches in flight (default 8)\n"
		"  --dispatchd PATH  --via-daemon: the daemon (default: the build's)\n"
		"  --histograms on|off  the engine's latency histograms (default on)\n"
		"  --probe auto|on|off  the eBPF jitter probe (default auto)\n"
		"  --telemetry-cost N   N rounds of this run with telemetry (histograms and\n"
		"                    probe) on, then off; prints the medians and the cost\n"
		"  --json FILE       also write the report as JSON\n"
		"  -q, --quiet       no progress lines\n"
		"  -h, --help        this text\n"
		"  -V, --version     version\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"rate", required_argument, 0, 'r'},     {"duration", required_argument, 0, 'd'},
		{"warmup", required_argument, 0, 'w'},   {"shards", required_argument, 0, 's'},
		{"workers", required_argument, 0, 'W'},  {"spin-us", required_argument, 0, 'S'},
		{"json", required_argument, 0, 'j'},     {"quiet", no_argument, 0, 'q'},
		{"help", no_argument, 0, 'h'},           {"version", no_argument, 0, 'V'},
		{"embedded", no_argument, 0, 'E'},       {"inflight", required_argument, 0, 'I'},
		{"gen-cpu", required_argument, 0, 'G'},  {"executor", required_argument, 0, 'X'},
		{"floor", required_argument, 0, 'F'},
		{"durability", required_argument, 0, 'D'}, {"state-dir", required_argument, 0, 'T'},
		{"via-daemon", no_argument, 0, 'Y'},     {"batch", required_argument, 0, 'B'},
		{"depth", required_argument, 0, 'P'},    {"dispatchd", required_argument, 0, 'Z'},
		{"histograms", required_argument, 0, 'H'}, {"telemetry-cost", required_argument, 0, 'C'},
		{"probe", required_argument, 0, 'O'},
		{0, 0, 0, 0},
	};
	int c;
	char *end;
	o->duration_s = 10;
	o->warmup_s = 2;
	o->spin_ns = 50000;
	o->inflight = 8192;
	o->gen_cpu = -1;
	o->executor = -1;
	o->floor_s = 1;
	o->durability = DD_DURABILITY_DEFAULT; /* none embedded, fsync via the daemon */
	o->batch = 1000;
	o->depth = 8;
	while ((c = getopt_long(argc, argv, "qhV", lo, NULL)) != -1) {
		switch (c) {
		case 'D':
			if (strcmp(optarg, "none") == 0) {
				o->durability = DD_DURABILITY_NONE;
			} else if (strcmp(optarg, "buffered") == 0) {
				o->durability = DD_DURABILITY_BUFFERED;
			} else if (strcmp(optarg, "fsync") == 0) {
				o->durability = DD_DURABILITY_FSYNC;
			} else {
				fprintf(stderr, "std-r: --durability wants none, buffered or fsync, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'T':
			o->state_dir = optarg;
			break;
		case 'Y':
			o->via_daemon = true;
			break;
		case 'H':
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				fprintf(stderr, "std-r: --histograms wants on or off\n");
				return 2;
			}
			o->histograms_off = !strcmp(optarg, "off");
			break;
		case 'O':
			if (!strcmp(optarg, "auto"))
				o->probe = DD_PROBE_AUTO;
			else if (!strcmp(optarg, "on"))
				o->probe = DD_PROBE_ON;
			else if (!strcmp(optarg, "off"))
				o->probe = DD_PROBE_OFF;
			else {
				fprintf(stderr, "std-r: --probe wants auto, on or off\n");
				return 2;
			}
			break;
		case 'C':
			o->telemetry_cost = atoi(optarg);
			if (o->telemetry_cost < 1 || o->telemetry_cost > 64) {
				fprintf(stderr, "std-r: --telemetry-cost wants 1..64 rounds\n");
				return 2;
			}
			break;
		case 'Z':
			o->dispatchd = optarg;
			break;
		case 'B':
		case 'P': {
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 100000) {
				fprintf(stderr, "std-r: bad count '%s'\n", optarg);
				return 2;
			}
			*(c == 'B' ? &o->batch : &o->depth) = (unsigned)v;
			break;
		}
		case 'F':
			o->floor_s = strtod(optarg, &end);
			if (*end || o->floor_s < 0 || o->floor_s > 60) {
				fprintf(stderr, "std-r: --floor wants seconds in 0..60, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'X':
			if (strcmp(optarg, "auto") == 0) {
				o->executor = -1;
			} else if (strcmp(optarg, "workers") == 0) {
				o->executor = 0;
			} else if (strcmp(optarg, "inline") == 0) {
				o->executor = 1;
			} else {
				fprintf(stderr, "std-r: --executor wants auto, workers or inline, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'r':
			if (strcmp(optarg, "max") == 0) {
				o->rate = 0;
				break;
			}
			o->rate = strtod(optarg, &end);
			if (*end || o->rate <= 0) {
				fprintf(stderr, "std-r: --rate wants a positive number or 'max', not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'd':
		case 'w': {
			double v = strtod(optarg, &end);
			if (*end || v < 0 || (c == 'd' && v <= 0)) {
				fprintf(stderr, "std-r: bad number of seconds '%s'\n", optarg);
				return 2;
			}
			*(c == 'd' ? &o->duration_s : &o->warmup_s) = v;
			break;
		}
		case 's':
		case 'W':
		case 'I':
		case 'S': {
			long v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 1000000) {
				fprintf(stderr, "std-r: bad count '%s'\n", optarg);
				return 2;
			}
			if (c == 's')
				o->shards = (unsigned)v;
			else if (c == 'W')
				o->workers = (unsigned)v;
			else if (c == 'I')
				o->inflight = v ? (uint64_t)v : 1;
			else
				o->spin_ns = (uint64_t)v * 1000;
			break;
		}
		case 'G':
			o->gen_cpu = (int)strtol(optarg, &end, 10);
			if (*end || o->gen_cpu < -1) {
				fprintf(stderr, "std-r: bad CPU '%s'\n", optarg);
				return 2;
			}
			break;
		case 'j':
			o->json = optarg;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'E':
			break; /* the only mode so far */
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("std-r %d.%d\n", DD_VERSION_MAJOR, DD_VERSION_MINOR);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "std-r: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return 0;
}

/* Sleeps until @t when it is far enough away, else spins: a sleep costs a
 * timer wake-up (tens of µs in a VM) that would be charged to the jobs. */
static void wait_until(uint64_t t)
{
	uint64_t now = now_ns();
	if (t > now + 200000) {
		uint64_t until = t - 100000;
		struct timespec ts = {(time_t)(until / 1000000000ull), (long)(until % 1000000000ull)};
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
	while (now_ns() < t)
		sched_yield(); /* lets a thread sharing this CPU run meanwhile */
}

/* Records on the device so far, all shards. */
static uint64_t durable_records(const struct dd_stats *st)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < st->nshards; i++)
		n += st->shard[i].durable_lsn;
	return n;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	int r = parse(argc, argv, &o);
	if (r)
		return r;
	if (o.telemetry_cost) {
		/* the same arguments, less this option and its value */
		char **av = calloc((size_t)argc + 1, sizeof(char *));
		int ac = 0;
		for (int i = 0; i < argc; i++) {
			if (!strcmp(argv[i], "--telemetry-cost")) {
				i++;
				continue;
			}
			if (!strncmp(argv[i], "--telemetry-cost=", 17))
				continue;
			av[ac++] = argv[i];
		}
		int rc = telemetry_cost_run(o.telemetry_cost, ac, av);
		free(av);
		return rc;
	}
	if (o.via_daemon) {
		struct via_opts v = {
			.rate = o.rate, .duration_s = o.duration_s, .warmup_s = o.warmup_s,
			.shards = o.shards, .workers = o.workers, .durability = o.durability,
			.batch = o.batch, .depth = o.depth, .dispatchd = o.dispatchd,
			.state_dir = o.state_dir, .json = o.json, .floor_s = o.floor_s,
			.quiet = o.quiet,
		};
		return via_daemon_run(&v);
	}
	if (o.durability == DD_DURABILITY_DEFAULT)
		o.durability = DD_DURABILITY_NONE;

	/* Before the engine starts: its threads would be the stalls. */
	struct stall_floor fl = {0};
	if (o.floor_s > 0 && (r = stall_floor_measure(o.floor_s, &fl)) < 0) {
		fprintf(stderr, "std-r: cannot measure the stall floor: %s\n", strerror(-r));
		fl.ncpus = 0;
	}

	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.shards = o.shards;
	cfg.workers = o.workers;
	cfg.histograms = !o.histograms_off;
	cfg.probe = o.probe;
	cfg.inline_handlers = o.executor == 1;
	if (o.executor < 0) {
		/* Threads that spin need a CPU each; sharing one costs a
		 * scheduler tick (ms) of latency whenever both are busy. */
		cpu_set_t set;
		unsigned ncpu = sched_getaffinity(0, sizeof(set), &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
		unsigned shards = o.shards ? o.shards : 1;
		cfg.inline_handlers = !o.workers && ncpu < 1 + 2 * shards;
	}
	cfg.spin_ns = o.spin_ns;
	cfg.durability = (enum dd_durability)o.durability;
	char *tmp_state = NULL;
	struct fsync_floor ff = {0};
	if (o.durability > DD_DURABILITY_NONE) {
		if (!o.state_dir) {
			const char *base = getenv("TMPDIR");
			/* mkdtemp() fills in the six X's */
			if (asprintf(&tmp_state, "%s/std-r-XXXXXX", base && *base ? base : "/var/tmp") < 0 ||
			    !mkdtemp(tmp_state)) {
				fprintf(stderr, "std-r: cannot make a state directory under %s: %s\n",
					base && *base ? base : "/var/tmp", strerror(errno));
				return 1;
			}
			o.state_dir = tmp_state;
		} else if (mkdir(o.state_dir, 0700) < 0 && errno != EEXIST) {
			fprintf(stderr, "std-r: cannot create --state-dir %s: %s\n", o.state_dir,
				strerror(errno));
			return 1;
		}
		cfg.state_dir = o.state_dir;
		cfg.on_durable = acct_on_durable;
		/* the benchmark's jobs need not outlive it */
		cfg.store_retain_count = 100000;
		if (o.floor_s > 0 && (r = fsync_floor_measure(o.state_dir, o.floor_s, &ff)) < 0)
			fprintf(stderr, "std-r: cannot measure the fsync floor in %s: %s\n",
				o.state_dir, strerror(-r));
	}
	cfg.on_event = on_event;
	cfg.event_mask = 1u << DD_SUCCEEDED;
	cfg.retain_terminal = 0; /* a benchmark keeps nothing it does not need */
	struct dd_engine *e;
	if ((r = dd_engine_create(&cfg, &e)) < 0) {
		fprintf(stderr, "std-r: cannot start the engine: %s\n", dd_strerror(r));
		return 1;
	}
	if (o.durability > DD_DURABILITY_NONE) {
		struct dd_recovery rec;
		if (dd_engine_recovery(e, &rec) == 0 && (rec.jobs_loaded || rec.records_replayed))
			printf("std-r: recovered %s: %" PRIu64 " jobs back in memory (%" PRIu64
			       " retried, %" PRIu64 " lost), %" PRIu64 " log records replayed, %.3f s\n",
			       o.state_dir, rec.jobs_loaded, rec.jobs_retried, rec.jobs_lost,
			       rec.records_replayed, rec.ns / 1e9);
		double secs = o.warmup_s + o.duration_s + 6;
		double per = (o.rate > 0 ? o.rate * 1.25 : 8e6) * secs + 100000;
		if (acct_init(dd_engine_shards(e), (uint64_t)per) < 0) {
			fprintf(stderr, "std-r: out of memory for durable accounting\n");
			dd_engine_destroy(e);
			return 1;
		}
	}
	if ((r = dd_handler_register(e, "noop", noop_handler, NULL)) < 0) {
		fprintf(stderr, "std-r: cannot register handler: %s\n", dd_strerror(r));
		dd_engine_destroy(e);
		return 1;
	}

	struct dd_job_spec specs[BATCH];
	uint64_t ids[BATCH];
	memset(specs, 0, sizeof(specs));
	for (int i = 0; i < BATCH; i++) {
		specs[i].kind = "noop";
		specs[i].priority = DD_PRIO_NORMAL;
		specs[i].node = -1;
		specs[i].shard = -1;
	}

	if (o.gen_cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(o.gen_cpu, &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
			fprintf(stderr, "std-r: cannot pin the generator to CPU %d; running unpinned\n",
				o.gen_cpu);
	}
	uint64_t start = now_ns() + 1000000;
	measure_from = start + (uint64_t)(o.warmup_s * 1e9);
	measure_to = measure_from + (uint64_t)(o.duration_s * 1e9);
	acct_window(measure_from, measure_to);
	uint64_t lsn_from = 0, lsn_to = 0; /* durable records at the window's ends */
	bool in_window = false;
	double interval = o.rate > 0 ? 1e9 / o.rate : 0;
	uint64_t sent = 0, eagain = 0, next_progress = start + 1000000000ull;
	uint64_t last_done = 0;
	wait_until(start);
	for (;;) {
		uint64_t now = now_ns();
		if (now >= measure_to)
			break;
		size_t n;
		if (o.rate > 0) {
			uint64_t due = (uint64_t)((double)(now - start) / interval) + 1;
			if (due <= sent) {
				wait_until(start + (uint64_t)((double)sent * interval));
				continue;
			}
			n = due - sent < BATCH ? due - sent : BATCH;
			for (size_t i = 0; i < n; i++)
				specs[i].intended_ns = start + (uint64_t)((double)(sent + i) * interval);
		} else {
			/* Closed loop: bounded jobs in flight, or the queue (and so
			 * every latency) would grow for as long as the run lasts. */
			if (sent - atomic_load_explicit(&completed_all, memory_order_relaxed) >=
			    o.inflight) {
				struct timespec ts = {0, 20000};
				nanosleep(&ts, NULL);
				continue;
			}
			n = BATCH;
			for (size_t i = 0; i < n; i++)
				specs[i].intended_ns = now;
		}
		if (o.durability > DD_DURABILITY_NONE && !in_window && now >= measure_from) {
			struct dd_stats st;
			dd_stats(e, &st);
			lsn_from = durable_records(&st);
			in_window = true;
		}
		size_t done = 0;
		r = dd_submit_batch(e, specs, n, DD_SUBMIT_BLOCK, ids, &done);
		if (o.durability > DD_DURABILITY_NONE)
			for (size_t i = 0; i < done; i++)
				acct_submitted(ids[i], specs[i].intended_ns);
		if (r < 0 && r != -EAGAIN) {
			fprintf(stderr, "std-r: submit failed: %s\n", dd_strerror(r));
			break;
		}
		eagain += r == -EAGAIN;
		sent += done;
		if (!o.quiet && now >= next_progress) {
			struct dd_stats st;
			dd_stats(e, &st);
			fprintf(stderr, "std-r: %5.1fs  submitted %" PRIu64 "  completed %" PRIu64
				"  rate %.0f/s\n",
				(double)(now - start) / 1e9, sent, st.total.succeeded,
				(double)(st.total.succeeded - last_done));
			last_done = st.total.succeeded;
			next_progress += 1000000000ull;
		}
	}
	if (o.durability > DD_DURABILITY_NONE) {
		struct dd_stats st;
		dd_stats(e, &st);
		lsn_to = durable_records(&st);
	}
	/* Let the jobs intended inside the window finish before reading. */
	uint64_t drain_deadline = now_ns() + 5000000000ull;
	struct dd_stats st;
	do {
		dd_stats(e, &st);
		if (st.total.succeeded + st.total.failed >= sent)
			break;
		usleep(1000);
	} while (now_ns() < drain_deadline);
	dd_engine_destroy(e);

	struct dd_tel_hist *all = calloc(1, sizeof(*all));
	if (!all)
		return 1;
	for (unsigned i = 0; i < nhists; i++) {
		dd_tel_hist_merge(all, hists[i]);
		free(hists[i]);
	}
	double rate = (double)atomic_load(&completed_in_window) / o.duration_s;
	uint64_t p50 = dd_tel_hist_quantile(all, 0.50), p99 = dd_tel_hist_quantile(all, 0.99);
	uint64_t p999 = dd_tel_hist_quantile(all, 0.999), mx = all->max;

	static const char *const level_name[] = {"default", "none", "buffered", "fsync"};
	const char *lvl = level_name[o.durability];
	if (cfg.inline_handlers)
		printf("std-r  embedded  noop  shards=%u executor=inline (reactor runs handlers)"
		       "  durability=%s\n", st.nshards, lvl);
	else
		printf("std-r  embedded  noop  shards=%u workers/shard=%u  durability=%s\n",
		       st.nshards, st.shard[0].workers, lvl);
	if (o.rate > 0)
		printf("  offered rate        %12.0f jobs/s (open loop)\n", o.rate);
	else
		printf("  offered rate        %12s\n", "max (closed loop, batches of 256)");
	printf("  measured            %12.1f s after %.1f s warm-up\n", o.duration_s, o.warmup_s);
	printf("  dispatches/s        %12.0f\n", rate);
	printf("  dispatch latency    p50 %8.2f µs  p99 %8.2f µs  p99.9 %8.2f µs  max %9.2f µs\n",
	       p50 / 1e3, p99 / 1e3, p999 / 1e3, mx / 1e3);
	printf("  samples             %12" PRIu64 "   ring-full retries %" PRIu64 "\n", all->count,
	       eagain);
	printf("  reactor parks       %12" PRIu64 "   producer wake-ups %" PRIu64 "\n",
	       st.total.parks, st.total.wakeups);
	double stx = 0;
	uint64_t a50 = 0, a99 = 0, amax = 0, acount = 0;
	if (o.durability > DD_DURABILITY_NONE) {
		const struct dd_tel_hist *ah = acct_hist();
		stx = (double)(lsn_to - lsn_from) / o.duration_s;
		a50 = dd_tel_hist_quantile(ah, 0.5);
		a99 = dd_tel_hist_quantile(ah, 0.99);
		amax = ah->max;
		acount = ah->count;
		printf("  S-TR                %12.0f state records/s made durable\n", stx);
		printf("  durable ack         p50 %8.2f µs  p99 %8.2f µs  max %9.2f µs  (%" PRIu64
		       " acks)\n", a50 / 1e3, a99 / 1e3, amax / 1e3, acount);
		printf("  log                 %12" PRIu64 " records in %" PRIu64
		       " batches (%.1f per batch); state dir %s\n",
		       st.total.log_records, st.total.log_batches,
		       st.total.log_batches ? (double)st.total.log_records / st.total.log_batches : 0,
		       tmp_state ? "(temporary)" : o.state_dir);
		if (ff.count) {
			printf("  fsync floor         p50 %8.2f µs  p99 %8.2f µs  max %9.2f µs"
			       "  (4 KiB write + fdatasync, %" PRIu64 " runs, same device)\n",
			       ff.p50_ns / 1e3, ff.p99_ns / 1e3, ff.max_ns / 1e3, ff.count);
			printf("  ack p99 / floor p99 %12.2f\n", ff.p99_ns ? (double)a99 / ff.p99_ns : 0);
		}
		if (st.total.state_error)
			printf("  state error         %s\n", dd_strerror(st.total.state_error));
	}
	static const char *const role_name[DD_ROLE_COUNT] = {"other", "reactor", "worker", "io"};
	if (st.probe_loaded) {
		for (unsigned rl = 1; rl < DD_ROLE_COUNT; rl++)
			if (st.runq[rl].count)
				printf("  run queue %-8s  p50 %8.2f µs  p99 %8.2f µs  max %9.2f µs  (%" PRIu64
				       " waits, %" PRIu64 " preempted; eBPF probe)\n",
				       role_name[rl], st.runq[rl].p50_ns / 1e3, st.runq[rl].p99_ns / 1e3,
				       st.runq[rl].max_ns / 1e3, st.runq[rl].count, st.preempted[rl]);
	} else {
		printf("  jitter probe        %s\n", st.probe_status);
	}
	if (fl.ncpus) {
		printf("  stall floor         p99 %8.2f µs  p99.9 %8.2f µs  max %9.2f µs"
		       "  (%u CPUs, %.1f s: %.2f%% of CPU time lost, %" PRIu64 " stalls >= 10 µs)\n",
		       fl.p99_ns / 1e3, fl.p999_ns / 1e3, fl.max_ns / 1e3, fl.ncpus, fl.seconds,
		       fl.lost_frac * 100, fl.stalls);
		if (o.rate > 0)
			printf("  p99 / floor p99     %12.2f\n", fl.p99_ns ? (double)p99 / fl.p99_ns : 0);
	}

	int rc = 0;
	if (o.json) {
		char offered[64] = "\"max\"";
		if (o.rate > 0)
			snprintf(offered, sizeof(offered), "%.0f", o.rate);
		FILE *f = fopen(o.json, "w");
		if (!f) {
			fprintf(stderr, "std-r: cannot write %s: %s\n", o.json, strerror(errno));
			rc = 1;
		} else {
			fprintf(f,
				"{\n  \"mode\": \"embedded\",\n  \"kind\": \"noop\",\n  \"durability\": \"%s\",\n"
				"  \"shards\": %u,\n  \"executor\": \"%s\",\n  \"workers_per_shard\": %u,\n"
				"  \"offered_rate\": %s,\n  \"duration_s\": %.3f,\n  \"warmup_s\": %.3f,\n"
				"  \"dispatches_per_sec\": %.1f,\n  \"samples\": %" PRIu64 ",\n"
				"  \"latency_ns\": {\"p50\": %" PRIu64 ", \"p99\": %" PRIu64
				", \"p999\": %" PRIu64 ", \"max\": %" PRIu64 "},\n",
				lvl, st.nshards, cfg.inline_handlers ? "inline" : "workers",
				st.shard[0].workers, offered, o.duration_s, o.warmup_s, rate, all->count, p50,
				p99, p999, mx);
			if (o.durability > DD_DURABILITY_NONE)
				fprintf(f,
					"  \"state_tx_per_sec\": %.1f,\n"
					"  \"durable_ack_ns\": {\"p50\": %" PRIu64 ", \"p99\": %" PRIu64
					", \"max\": %" PRIu64 ", \"count\": %" PRIu64 "},\n"
					"  \"fsync_floor_ns\": {\"p50\": %" PRIu64 ", \"p99\": %" PRIu64
					", \"max\": %" PRIu64 ", \"count\": %" PRIu64 "},\n",
					stx, a50, a99, amax, acount, ff.p50_ns, ff.p99_ns, ff.max_ns, ff.count);
			fprintf(f, "  \"probe\": {\"status\": \"%s\"", st.probe_loaded ? "loaded"
										     : "unavailable");
			for (unsigned rl = 0; st.probe_loaded && rl < DD_ROLE_COUNT; rl++)
				fprintf(f,
					", \"%s\": {\"count\": %" PRIu64 ", \"p50_ns\": %" PRIu64
					", \"p99_ns\": %" PRIu64 ", \"max_ns\": %" PRIu64
					", \"preempted\": %" PRIu64 "}",
					role_name[rl], st.runq[rl].count, st.runq[rl].p50_ns,
					st.runq[rl].p99_ns, st.runq[rl].max_ns, st.preempted[rl]);
			fprintf(f, "},\n");
			fprintf(f,
				"  \"floors\": {\"stall\": {\"cpus\": %u, \"seconds\": %.3f, \"lost_frac\": %.5f,"
				" \"stalls\": %" PRIu64 ", \"p99_ns\": %" PRIu64 ", \"p999_ns\": %" PRIu64
				", \"max_ns\": %" PRIu64 "}}\n}\n",
				fl.ncpus, fl.seconds, fl.lost_frac, fl.stalls, fl.p99_ns, fl.p999_ns, fl.max_ns);
			fclose(f);
		}
	}
	free(all);
	acct_free();
	if (tmp_state) {
		nftw(tmp_state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		free(tmp_state);
	}
	return rc;
}
