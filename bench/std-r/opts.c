/* std-r's options: parsing and the usage text. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatchd.h"
#include "opts.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: std-r [options]\n"
		"what runs\n"
		"  --embedded        the engine in this process (default)\n"
		"  --via-daemon      a dispatchd, over its socket, fed in batches; one is\n"
		"                    started on a temporary state dir unless --socket\n"
		"  --kind K          noop | lookup (the handler reads another job's record)\n"
		"                    | exec (a process: /bin/true or --cmd) (default noop)\n"
		"  --cmd PATH        the exec kind's program (default /bin/true)\n"
		"  --payload N       bytes of payload per job (default 0; at most 65536)\n"
		"  --durability L    none|buffered|fsync (default none embedded, fsync\n"
		"                    via the daemon)\n"
		"  --shards N        shards (default: one per NUMA node)\n"
		"  --workers N       workers per shard (default: node CPUs less one)\n"
		"  --jobs-in-state N put N finished jobs in the state before measuring\n"
		"                    (lookup reads among them; default 0, lookup 10000)\n"
		"  --store-retain N  embedded, durable: ended jobs the store keeps per shard\n"
		"                    (default 0: none, so a job that ends soon after its\n"
		"                    submission is never written to it; the log has it)\n"
		"  --state-dir DIR   state directory (default: a new one under $TMPDIR or\n"
		"                    /var/tmp, removed after)\n"
		"load\n"
		"  --rate R|max      offered jobs/s, open loop (default max, closed loop)\n"
		"  --duration S      measured seconds (default 10)\n"
		"  --warmup S        seconds excluded before measuring (default 2)\n"
		"  --sweep A:B:S     run offered rates A, A+S, ... B in turn and find the\n"
		"                    highest whose P99 stays under --p99-bound\n"
		"  --p99-bound T     the sweep's bound, e.g. 50us, 1ms (default 50us)\n"
		"  --inflight N      with --rate max: most jobs outstanding (default 8192)\n"
		"  --gen-cpu N       pin the load generator to CPU N (default: unpinned)\n"
		"  --batch N         --via-daemon: jobs per submit_batch (default 1000)\n"
		"  --depth N         --via-daemon, closed loop: batches in flight (default 8)\n"
		"  --socket PATH     --via-daemon: use the dispatchd listening there\n"
		"  --dispatchd PATH  --via-daemon: the daemon to start (default: the build's)\n"
		"engine\n"
		"  --executor E      auto|workers|inline: handlers on worker threads or on\n"
		"                    the reactor; auto picks inline when there are too few\n"
		"                    CPUs for generator + reactor + a worker per shard\n"
		"  --spin-us N       spin budget before parking, µs (default: the engine's\n"
		"                    choice, 50 with a CPU to spare, else 0)\n"
		"  --histograms on|off  the engine's latency histograms (default on)\n"
		"  --probe auto|on|off  the eBPF jitter probe (default auto)\n"
		"  --telemetry-cost N   N rounds with telemetry on, then off; the medians\n"
		"report\n"
		"  --floor S         seconds per physical floor (stall, cyclictest, fsync,\n"
		"                    spawn, cache-line handoff; default 1; 0 skips them)\n"
		"  --json FILE       also write the report as JSON\n"
		"  --plot-dir DIR    draw SVG plots there with gnuplot\n"
		"  -q, --quiet       no progress lines\n"
		"  -h, --help        this text\n"
		"  -V, --version     version\n");
}

const char *kind_name(enum job_kind k)
{
	static const char *const names[] = {"noop", "lookup", "exec"};
	return names[k];
}

int parse_duration_ns(const char *s, uint64_t *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || !(v >= 0) || v > 1e6)
		return -1;
	double mult;
	if (!*end || !strcmp(end, "us") || !strcmp(end, "µs"))
		mult = 1e3;
	else if (!strcmp(end, "ns"))
		mult = 1;
	else if (!strcmp(end, "ms"))
		mult = 1e6;
	else if (!strcmp(end, "s"))
		mult = 1e9;
	else
		return -1;
	*out = (uint64_t)llround(v * mult);
	return 0;
}

static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "std-r: %s, not '%s'\n", what, arg);
	return 2;
}

/* "A:B:S", rates in jobs/s, A <= B, S > 0, at most 1000 steps */
static int parse_sweep(const char *arg, struct opts *o)
{
	char *end;
	o->sweep_from = strtod(arg, &end);
	if (*end != ':')
		return -1;
	o->sweep_to = strtod(end + 1, &end);
	if (*end != ':')
		return -1;
	o->sweep_step = strtod(end + 1, &end);
	if (*end || !(o->sweep_from > 0) || o->sweep_to < o->sweep_from || !(o->sweep_step > 0) ||
	    (o->sweep_to - o->sweep_from) / o->sweep_step > 1000)
		return -1;
	return 0;
}

static int parse_count(const char *arg, long lo, long hi, long *v)
{
	char *end;
	*v = strtol(arg, &end, 10);
	return *end || end == arg || *v < lo || *v > hi ? -1 : 0;
}

/* Options that name a choice: --durability, --kind, --histograms,
 * --probe, --executor. 0, or 2 after saying what was wrong. */
static int set_choice(int c, const char *arg, struct opts *o)
{
	switch (c) {
	case 'D': {
		enum dd_durability d;
		if (dd_durability_parse(arg, &d) < 0)
			return bad("--durability wants none, buffered or fsync", arg);
		o->durability = (int)d;
		break;
	}
	case 'k':
		if (!strcmp(arg, "noop"))
			o->kind = KIND_NOOP;
		else if (!strcmp(arg, "lookup"))
			o->kind = KIND_LOOKUP;
		else if (!strcmp(arg, "exec"))
			o->kind = KIND_EXEC;
		else
			return bad("--kind wants noop, lookup or exec", arg);
		break;
	case 'H':
		if (strcmp(arg, "on") && strcmp(arg, "off"))
			return bad("--histograms wants on or off", arg);
		o->histograms_off = !strcmp(arg, "off");
		break;
	case 'O':
		if (!strcmp(arg, "auto"))
			o->probe = DD_PROBE_AUTO;
		else if (!strcmp(arg, "on"))
			o->probe = DD_PROBE_ON;
		else if (!strcmp(arg, "off"))
			o->probe = DD_PROBE_OFF;
		else
			return bad("--probe wants auto, on or off", arg);
		break;
	case 'X':
		if (!strcmp(arg, "auto"))
			o->executor = -1;
		else if (!strcmp(arg, "workers"))
			o->executor = 0;
		else if (!strcmp(arg, "inline"))
			o->executor = 1;
		else
			return bad("--executor wants auto, workers or inline", arg);
		break;
	}
	return 0;
}

/* Options given, where the default depends on whether they were. */
struct given {
	bool jobs, retain;
};

/* Options that take a number, a time or a rate. 0, or 2 after saying
 * what was wrong. */
static int set_number(int c, const char *arg, struct opts *o, struct given *g)
{
	long v;
	char *end;
	switch (c) {
	case 'L':
		if (parse_count(arg, 0, 65536, &v))
			return bad("--payload wants 0..65536 bytes", arg);
		o->payload = (unsigned)v;
		break;
	case 'J':
		if (parse_count(arg, 0, 100000000, &v))
			return bad("--jobs-in-state wants 0..100000000", arg);
		o->jobs_in_state = (uint64_t)v;
		g->jobs = true;
		break;
	case 'R':
		if (parse_count(arg, 0, 1000000000, &v))
			return bad("--store-retain wants 0..1000000000 jobs", arg);
		o->store_retain = (uint64_t)v;
		g->retain = true;
		break;
	case 'u':
		if (parse_sweep(arg, o))
			return bad("--sweep wants FROM:TO:STEP in jobs/s, at most 1000 steps", arg);
		break;
	case 'b':
		if (parse_duration_ns(arg, &o->p99_bound_ns) || !o->p99_bound_ns)
			return bad("--p99-bound wants a time such as 50us or 2ms", arg);
		break;
	case 'C':
		if (parse_count(arg, 1, 64, &v))
			return bad("--telemetry-cost wants 1..64 rounds", arg);
		o->telemetry_cost = (int)v;
		break;
	case 'B':
	case 'P':
		if (parse_count(arg, 1, 100000, &v))
			return bad("--batch and --depth want 1..100000", arg);
		*(c == 'B' ? &o->batch : &o->depth) = (unsigned)v;
		break;
	case 'F':
		o->floor_s = strtod(arg, &end);
		if (*end || end == arg || !(o->floor_s >= 0) || o->floor_s > 60)
			return bad("--floor wants seconds in 0..60", arg);
		break;
	case 'r':
		if (!strcmp(arg, "max")) {
			o->rate = 0;
			break;
		}
		o->rate = strtod(arg, &end);
		if (*end || end == arg || !(o->rate > 0) || o->rate > 1e9)
			return bad("--rate wants a positive number or 'max'", arg);
		break;
	case 'd':
	case 'w': {
		double s = strtod(arg, &end);
		if (*end || end == arg || !(s >= 0) || s > 86400 || (c == 'd' && s <= 0))
			return bad("bad number of seconds", arg);
		*(c == 'd' ? &o->duration_s : &o->warmup_s) = s;
		break;
	}
	case 's':
	case 'W':
	case 'I':
	case 'S':
		if (parse_count(arg, 0, 1000000, &v))
			return bad("bad count", arg);
		if (c == 's')
			o->shards = (unsigned)v;
		else if (c == 'W')
			o->workers = (unsigned)v;
		else if (c == 'I')
			o->inflight = v ? (uint64_t)v : 1;
		else
			o->spin_ns = (uint64_t)v * 1000;
		break;
	case 'G':
		if (parse_count(arg, -1, 4095, &v))
			return bad("bad CPU", arg);
		o->gen_cpu = (int)v;
		break;
	}
	return 0;
}

/* What holds between options, once all are read. 0, or 2. */
static int check(struct opts *o, const struct given *g)
{
	if (o->kind == KIND_LOOKUP && !g->jobs)
		o->jobs_in_state = 10000;
	if (o->kind == KIND_LOOKUP && !o->jobs_in_state) {
		fprintf(stderr, "std-r: --kind lookup needs --jobs-in-state of at least 1\n");
		return 2;
	}
	if (o->cmd && o->kind != KIND_EXEC) {
		fprintf(stderr, "std-r: --cmd goes with --kind exec\n");
		return 2;
	}
	if (g->retain && o->via_daemon) {
		fprintf(stderr, "std-r: --store-retain is for --embedded (dispatchd keeps its own)\n");
		return 2;
	}
	if (o->socket && !o->via_daemon) {
		fprintf(stderr, "std-r: --socket goes with --via-daemon\n");
		return 2;
	}
	return 0;
}

int opts_parse(int argc, char **argv, struct opts *o)
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
		{"probe", required_argument, 0, 'O'},    {"kind", required_argument, 0, 'k'},
		{"cmd", required_argument, 0, 'c'},      {"jobs-in-state", required_argument, 0, 'J'},
		{"sweep", required_argument, 0, 'u'},    {"p99-bound", required_argument, 0, 'b'},
		{"socket", required_argument, 0, 'o'},   {"plot-dir", required_argument, 0, 'p'},
		{"payload", required_argument, 0, 'L'},  {"store-retain", required_argument, 0, 'R'},
		{0, 0, 0, 0},
	};
	int c, rc;
	struct given g = {0};
	*o = (struct opts){
		.duration_s = 10, .warmup_s = 2, .spin_ns = DD_SPIN_AUTO, .inflight = 8192,
		.gen_cpu = -1, .executor = -1, .floor_s = 1,
		.durability = DD_DURABILITY_DEFAULT, /* none embedded, fsync via the daemon */
		.batch = 1000, .depth = 8, .p99_bound_ns = 50000,
	};
	while ((c = getopt_long(argc, argv, "qhV", lo, NULL)) != -1) {
		switch (c) {
		case 'D':
		case 'k':
		case 'H':
		case 'O':
		case 'X':
			if ((rc = set_choice(c, optarg, o)))
				return rc;
			break;
		case 'L':
		case 'J':
		case 'R':
		case 'u':
		case 'b':
		case 'C':
		case 'B':
		case 'P':
		case 'F':
		case 'r':
		case 'd':
		case 'w':
		case 's':
		case 'W':
		case 'I':
		case 'S':
		case 'G':
			if ((rc = set_number(c, optarg, o, &g)))
				return rc;
			break;
		case 'c':
			o->cmd = optarg;
			break;
		case 'o':
			o->socket = optarg;
			break;
		case 'p':
			o->plot_dir = optarg;
			break;
		case 'T':
			o->state_dir = optarg;
			break;
		case 'Y':
			o->via_daemon = true;
			break;
		case 'E':
			o->via_daemon = false;
			break;
		case 'Z':
			o->dispatchd = optarg;
			break;
		case 'j':
			o->json = optarg;
			break;
		case 'q':
			o->quiet = 1;
			break;
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
	if (optind < argc)
		return bad("unexpected argument", argv[optind]);
	return check(o, &g);
}
