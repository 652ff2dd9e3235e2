#include "util.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

_Atomic int gate_open;
bool probe_wanted;
_Atomic int order_len;
int order_log[4096];
_Atomic int started_count;

void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static int h_ok(const struct dd_job *j, void *a)
{
	(void)j, (void)a;
	return 0;
}

static int h_fail(const struct dd_job *j, void *a)
{
	(void)j, (void)a;
	return 7;
}

/* Fails until the attempt named in its payload. */
static int h_flaky(const struct dd_job *j, void *a)
{
	(void)a;
	uint32_t succeed_on;
	memcpy(&succeed_on, j->payload, sizeof(succeed_on));
	return j->attempt >= succeed_on ? 0 : 1;
}

/* Runs until cancelled (or 10 s, a safety net). */
static int h_spin(const struct dd_job *j, void *a)
{
	(void)a;
	atomic_fetch_add(&started_count, 1);
	for (int i = 0; i < 10000 && !dd_job_cancelled(j); i++)
		sleep_ms(1);
	return dd_job_cancelled(j) ? 3 : 0;
}

static int h_gate(const struct dd_job *j, void *a)
{
	(void)j, (void)a;
	atomic_fetch_add(&started_count, 1);
	while (!atomic_load(&gate_open))
		sleep_ms(1);
	return 0;
}

static int h_order(const struct dd_job *j, void *a)
{
	(void)a;
	int tag = 0;
	memcpy(&tag, j->payload, sizeof(tag));
	int k = atomic_fetch_add(&order_len, 1);
	if (k < 4096)
		order_log[k] = tag;
	return 0;
}

void register_handlers(struct dd_engine *e)
{
	cr_assert_eq(dd_handler_register(e, "ok", h_ok, NULL), 0);
	cr_assert_eq(dd_handler_register(e, "fail", h_fail, NULL), 0);
	cr_assert_eq(dd_handler_register(e, "flaky", h_flaky, NULL), 0);
	cr_assert_eq(dd_handler_register(e, "spin", h_spin, NULL), 0);
	cr_assert_eq(dd_handler_register(e, "gate", h_gate, NULL), 0);
	cr_assert_eq(dd_handler_register(e, "order", h_order, NULL), 0);
}

struct dd_engine *make_engine(struct dd_config *cfg)
{
	struct dd_engine *e = NULL;
	struct dd_config def;
	if (!cfg) {
		dd_config_init(&def);
		cfg = &def;
	}
	/* Loading the eBPF probe takes a while, and these tests do not read
	 * it: off, unless a test asks for it (test_probe.c). */
	if (cfg->probe == DD_PROBE_AUTO && !probe_wanted)
		cfg->probe = DD_PROBE_OFF;
	int r = dd_engine_create(cfg, &e);
	cr_assert_eq(r, 0, "dd_engine_create: %s", dd_strerror(r));
	register_handlers(e);
	return e;
}

struct dd_job_spec spec(const char *kind)
{
	struct dd_job_spec s;
	memset(&s, 0, sizeof(s));
	s.kind = kind;
	s.priority = DD_PRIO_NORMAL;
	s.node = -1;
	s.shard = -1;
	return s;
}

uint64_t submit_ok(struct dd_engine *e, const struct dd_job_spec *s)
{
	uint64_t id = 0;
	int r = dd_submit(e, s, DD_SUBMIT_BLOCK, &id);
	cr_assert_eq(r, 0, "dd_submit: %s", dd_strerror(r));
	cr_assert_neq(id, 0);
	return id;
}

enum dd_state wait_state(struct dd_engine *e, uint64_t id, struct dd_job_info *info)
{
	struct dd_job_info tmp;
	if (!info)
		info = &tmp;
	int r = dd_wait(e, id, 60000 * MS, info);
	cr_assert_eq(r, 0, "dd_wait(%lx): %s", (unsigned long)id, dd_strerror(r));
	return info->state;
}

void await_state(struct dd_engine *e, uint64_t id, enum dd_state st)
{
	struct dd_job_info info;
	for (int i = 0; i < 60000; i++) {
		cr_assert_eq(dd_job_get(e, id, &info), 0);
		if (info.state == st)
			return;
		sleep_ms(1);
	}
	cr_assert_fail("job %lx stuck in %s, wanted %s", (unsigned long)id,
		       dd_state_name(info.state), dd_state_name(st));
}

void await_started(struct dd_engine *e, uint64_t id)
{
	struct dd_job_info info;
	for (int i = 0; i < 60000; i++) {
		cr_assert_eq(dd_job_get(e, id, &info), 0);
		if (info.started_ns)
			return;
		sleep_ms(1);
	}
	cr_assert_fail("job %lx never started: %s", (unsigned long)id, dd_state_name(info.state));
}

unsigned test_scale(void)
{
	const char *s = getenv("DD_TEST_SCALE");
	int v = s ? atoi(s) : 1;
	return v > 0 ? (unsigned)v : 1;
}

struct dd_engine *exec_engine_in(const char *output_dir, uint64_t grace_ns, uint64_t output_max)
{
	struct dd_config cfg;
	dd_config_init(&cfg);
	cfg.shards = 1;
	cfg.workers = 1;
	cfg.output_dir = output_dir;
	if (grace_ns)
		cfg.kill_grace_ns = grace_ns;
	if (output_max)
		cfg.output_max = output_max;
	return make_engine(&cfg);
}

uint64_t submit_exec(struct dd_engine *e, const char *const *argv, struct dd_exec_spec *x,
		     uint32_t uid, uint32_t gid, uint64_t timeout_ns)
{
	struct dd_exec_spec def = {0};
	if (!x)
		x = &def;
	x->argv = argv;
	struct dd_job_spec s = spec("procs");
	s.exec = x;
	s.timeout_ns = timeout_ns;
	if (uid != geteuid()) {
		s.flags = DD_JOB_OWNER;
		s.uid = uid;
		s.gid = gid;
	}
	return submit_ok(e, &s);
}

int most_at_once(const char *path, int events)
{
	char buf[8192];
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	size_t k = fread(buf, 1, sizeof(buf) - 1, f);
	buf[k] = 0;
	fclose(f);
	double t[64];
	int d[64], n = 0;
	for (char *p = buf; n < events && n < 64 && sscanf(p, "%lf %d", &t[n], &d[n]) == 2; n++)
		p = strchr(p, '\n') + 1;
	cr_assert_eq(n, events, "%s", buf);
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (t[j] < t[i] || (t[j] == t[i] && d[j] < d[i])) {
				double tt = t[i];
				int dd = d[i];
				t[i] = t[j], d[i] = d[j], t[j] = tt, d[j] = dd;
			}
	int run = 0, most = 0;
	for (int i = 0; i < n; i++) {
		run += d[i];
		most = run > most ? run : most;
	}
	return most;
}
