#include <ftw.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sutil.h"

_Atomic int hold_gate;

char *make_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *p;
	/* a mkdtemp() template: it replaces the six X's */
	if (asprintf(&p, "%s/dd-%s-XXXXXX", base && *base ? base : "/tmp", tag) < 0)
		return NULL;
	cr_assert_not_null(mkdtemp(p), "mkdtemp: %s", strerror(errno));
	return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

void rm_tree(const char *dir)
{
	if (dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void drop_tmpdir(char *dir)
{
	rm_tree(dir);
	free(dir);
}

static int h_ok(const struct dd_job *j, void *a)
{
	(void)j, (void)a;
	return 0;
}

static int h_fail(const struct dd_job *j, void *a)
{
	(void)j, (void)a;
	return 5;
}

static int h_hold(const struct dd_job *j, void *a)
{
	(void)a;
	while (!atomic_load(&hold_gate) && !dd_job_cancelled(j)) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

void register_state_handlers(struct dd_engine *e)
{
	cr_assert_eq(dd_handler_register(e, "ok", h_ok, NULL), 0);
	cr_assert_eq(dd_handler_register(e, "fail", h_fail, NULL), 0);
	cr_assert_eq(dd_handler_register(e, "hold", h_hold, NULL), 0);
}

void config_for(struct dd_config *cfg, const char *dir, enum dd_durability level)
{
	dd_config_init(cfg);
	cfg->durability = level;
	cfg->state_dir = dir;
	cfg->pin = false;
	cfg->spin_ns = 20000;
	cfg->probe = DD_PROBE_OFF; /* loading it takes a while; not read here */
}

struct dd_engine *open_engine(const char *dir, enum dd_durability level, struct dd_config *cfg)
{
	struct dd_config c;
	if (!cfg) {
		config_for(&c, dir, level);
		cfg = &c;
	}
	struct dd_engine *e;
	int r = dd_engine_create(cfg, &e);
	cr_assert_eq(r, 0, "dd_engine_create: %s", dd_strerror(r));
	register_state_handlers(e);
	return e;
}

struct dd_job_spec job(const char *kind)
{
	struct dd_job_spec s = {0};
	s.kind = kind;
	s.priority = DD_PRIO_NORMAL;
	s.node = -1;
	s.shard = -1;
	return s;
}
