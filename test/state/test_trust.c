/* The state directory is used only when it is the engine's own (DESIGN.md
 * section 9), and idempotency keys belong to their owner: directories of
 * another user, 0777, symbolic links, a writable parent, the modes of
 * what the engine makes, a log another user prepared that claims root,
 * keys of two owners, and a store written before keys had owners. */
#include <fcntl.h>
#include <grp.h>
#include <lmdb.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "state.h"
#include "sutil.h"

/* What the engine said through on_log (each test runs in its own process). */
static char said[16384];

static void capture(int level, const char *msg, void *arg)
{
	(void)level, (void)arg;
	size_t n = strlen(said);
	snprintf(said + n, sizeof(said) - n, "%s\n", msg);
}

static void trust_config(struct dd_config *cfg, const char *dir)
{
	config_for(cfg, dir, DD_DURABILITY_FSYNC);
	cfg->shards = 1;
	cfg->workers = 1;
	cfg->on_log = capture;
	said[0] = 0;
}

/* dd_engine_create() on @dir: -EPERM, and the message names @dir (or
 * @names, when given). */
static void refused(const char *dir, const char *names)
{
	struct dd_config cfg;
	struct dd_engine *e = NULL;
	trust_config(&cfg, dir);
	int r = dd_engine_create(&cfg, &e);
	cr_assert_eq(r, -EPERM, "dd_engine_create: %s (%s)", dd_strerror(r), said);
	cr_assert_null(e);
	cr_assert(strstr(said, names ? names : dir), "the message names %s: %s",
		  names ? names : dir, said);
}

static void run(const char *cmd)
{
	int st = system(cmd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %d", cmd, st);
}

/* ---- real users, as root ---- */

static char user[32];

static void drop_user(void)
{
	if (!user[0])
		return;
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "userdel %s >/dev/null 2>&1", user);
	if (system(cmd) < 0)
		return;
	user[0] = 0;
}

/* Creates user @name (removed by drop_user(), which every test that makes
 * one has as its fini) and returns its passwd entry; skips when not root. */
static struct passwd make_user(const char *name)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to create a second user (useradd)");
	snprintf(user, sizeof(user), "%s", name);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "userdel %s >/dev/null 2>&1; useradd -M -N %s", name, name);
	run(cmd);
	struct passwd *pw = getpwnam(name);
	cr_assert_not_null(pw, "useradd %s made no user", name);
	return *pw;
}

static char *dir;

static void fini_dir(void)
{
	drop_tmpdir(dir);
	dir = NULL;
}

static void fini_user(void)
{
	drop_user();
	fini_dir();
}

Test(trust, another_owners_dir_is_refused, .fini = fini_user)
{
	struct passwd pw = make_user("ddh3own");
	dir = make_tmpdir("trust");
	cr_assert_eq(chown(dir, pw.pw_uid, pw.pw_gid), 0);
	refused(dir, NULL);
	char want[160];
	snprintf(want, sizeof(want), "owned by uid %u (ddh3own), mode 0700", (unsigned)pw.pw_uid);
	cr_assert(strstr(said, want), "owner and mode: %s", said);
	cr_assert(strstr(said, "must be owned by uid 0 (root)") && strstr(said, "chown root "),
		  "what to do: %s", said);
	struct stat sb;
	cr_assert_eq(stat(dir, &sb), 0);
	char shard[4200];
	snprintf(shard, sizeof(shard), "%s/shard-0", dir);
	cr_assert_neq(access(shard, F_OK), 0, "nothing made in a refused dir");
}

Test(trust, mode_0777_is_refused, .fini = fini_dir)
{
	dir = make_tmpdir("trust");
	cr_assert_eq(chmod(dir, 0777), 0);
	refused(dir, NULL);
	cr_assert(strstr(said, "mode 0777") && strstr(said, "chmod go-w "), "%s", said);
	cr_assert(strstr(said, "not writable by group or others"), "%s", said);
}

Test(trust, a_group_writable_shard_dir_is_refused, .fini = fini_dir)
{
	dir = make_tmpdir("trust");
	char shard[4200];
	snprintf(shard, sizeof(shard), "%s/shard-0", dir);
	cr_assert_eq(mkdir(shard, 0700), 0);
	cr_assert_eq(chmod(shard, 0770), 0);
	refused(dir, shard);
	cr_assert(strstr(said, "mode 0770"), "%s", said);
}

Test(trust, a_parent_others_may_write_is_refused_unless_sticky, .fini = fini_dir)
{
	dir = make_tmpdir("trust");
	char state[4200];
	snprintf(state, sizeof(state), "%s/state", dir);
	cr_assert_eq(chmod(dir, 0777), 0);
	refused(state, state);
	char under[4300];
	snprintf(under, sizeof(under), "is under %s,", dir);
	cr_assert(strstr(said, under), "names the parent: %s", said);
	/* sticky, as /tmp: nobody else may rename what is ours in it */
	cr_assert_eq(chmod(dir, 01777), 0);
	struct dd_config cfg;
	struct dd_engine *e;
	trust_config(&cfg, state);
	int r = dd_engine_create(&cfg, &e);
	cr_assert_eq(r, 0, "%s: %s", dd_strerror(r), said);
	dd_engine_destroy(e);
}

Test(trust, a_symlinked_shard_dir_is_refused, .fini = fini_dir)
{
	dir = make_tmpdir("trust");
	char real[4200], shard[4200];
	snprintf(real, sizeof(real), "%s/elsewhere", dir);
	snprintf(shard, sizeof(shard), "%s/shard-0", dir);
	cr_assert_eq(mkdir(real, 0700), 0);
	cr_assert_eq(symlink(real, shard), 0);
	refused(dir, shard);
	cr_assert(strstr(said, "symbolic link"), "%s", said);
}

Test(trust, a_symlinked_state_dir_is_refused, .fini = fini_dir)
{
	dir = make_tmpdir("trust");
	char real[4200], link[4200];
	snprintf(real, sizeof(real), "%s/real", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	cr_assert_eq(mkdir(real, 0700), 0);
	cr_assert_eq(symlink(real, link), 0);
	refused(link, link);
	cr_assert(strstr(said, "symbolic link"), "%s", said);
}

/* Opens an engine on dir, submits a keyless job, and closes it: a log
 * segment on disk. Returns the segment's path in @seg. */
static void make_log(char *seg, size_t n)
{
	struct dd_config cfg;
	trust_config(&cfg, dir);
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, &cfg);
	struct dd_job_spec s = job("ok");
	uint64_t id;
	cr_assert_eq(dd_submit(e, &s, DD_SUBMIT_BLOCK, &id), 0);
	cr_assert_eq(dd_wait_durable(e, id, UINT64_MAX), 0);
	dd_engine_destroy(e);
	snprintf(seg, n, "%s/shard-0/wal/0000000000000001.wal", dir);
	cr_assert_eq(access(seg, F_OK), 0, "no segment %s", seg);
}

Test(trust, a_symlinked_log_segment_is_refused, .fini = fini_dir)
{
	dir = make_tmpdir("trust");
	char seg[4200], moved[4200];
	make_log(seg, sizeof(seg));
	snprintf(moved, sizeof(moved), "%s/moved.wal", dir);
	cr_assert_eq(rename(seg, moved), 0);
	cr_assert_eq(symlink(moved, seg), 0);
	refused(dir, seg);
	cr_assert(strstr(said, "symbolic link"), "%s", said);
}

Test(trust, a_symlinked_store_file_is_refused, .fini = fini_dir)
{
	dir = make_tmpdir("trust");
	char seg[4200], data[4200], moved[4200];
	make_log(seg, sizeof(seg));
	snprintf(data, sizeof(data), "%s/shard-0/store/data.mdb", dir);
	snprintf(moved, sizeof(moved), "%s/data.mdb", dir);
	cr_assert_eq(rename(data, moved), 0);
	cr_assert_eq(symlink(moved, data), 0);
	refused(dir, data);
}

static void assert_mode(const char *path, unsigned mode)
{
	struct stat sb;
	cr_assert_eq(lstat(path, &sb), 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(sb.st_mode & 07777, mode, "%s: mode %04o, want %04o", path,
		     (unsigned)(sb.st_mode & 07777), mode);
}

static void made_private(mode_t mask)
{
	dir = make_tmpdir("trust");
	char state[4200], p[4300];
	snprintf(state, sizeof(state), "%s/state", dir);
	umask(mask);
	struct dd_config cfg;
	trust_config(&cfg, state);
	struct dd_engine *e = open_engine(state, DD_DURABILITY_FSYNC, &cfg);
	struct dd_job_spec s = job("ok");
	uint64_t id;
	cr_assert_eq(dd_submit(e, &s, DD_SUBMIT_BLOCK, &id), 0);
	cr_assert_eq(dd_wait_durable(e, id, UINT64_MAX), 0);
	dd_engine_destroy(e);
	umask(022);
	assert_mode(state, 0700);
	static const char *const dirs[] = {"output", "shard-0", "shard-0/wal", "shard-0/store"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", state, dirs[i]);
		assert_mode(p, 0700);
	}
	static const char *const files[] = {"shard-0/wal/0000000000000001.wal",
					    "shard-0/store/data.mdb", "shard-0/store/lock.mdb"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", state, files[i]);
		assert_mode(p, 0600);
	}
	/* and it opens again */
	trust_config(&cfg, state);
	e = open_engine(state, DD_DURABILITY_FSYNC, &cfg);
	dd_engine_destroy(e);
}

Test(trust, what_the_engine_makes_is_0700_under_umask_000, .fini = fini_dir)
{
	made_private(0);
}

Test(trust, what_the_engine_makes_is_0700_under_umask_0277, .fini = fini_dir)
{
	made_private(0277);
}

/* The attack: another user prepares a state dir holding a log whose
 * SUBMIT record claims uid 0 for a process job. A root engine started on
 * it must not replay it. The log is written by a root engine here, then
 * handed to the user (chown -R), as a forged one would be. */
Test(trust, a_log_another_user_prepared_claiming_root_is_not_replayed, .fini = fini_user)
{
	struct passwd pw = make_user("ddh3log");
	dir = make_tmpdir("trust");
	char state[4200], marker[4300], cmd[8800];
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(marker, sizeof(marker), "%s/ran-as-root", dir);
	struct dd_config cfg;
	trust_config(&cfg, state);
	struct dd_engine *e = open_engine(state, DD_DURABILITY_FSYNC, &cfg);
	const char *argv[] = {"touch", marker, NULL};
	struct dd_exec_spec x = {.argv = argv};
	struct dd_job_spec s = job("procs");
	s.exec = &x;
	s.delay_ns = 3600ull * 1000000000ull; /* held in the log, not run now */
	uint64_t id;
	cr_assert_eq(dd_submit(e, &s, DD_SUBMIT_BLOCK, &id), 0);
	struct dd_job_info info;
	cr_assert_eq(dd_job_get(e, id, &info), 0);
	cr_assert_eq(info.uid, 0, "the record claims root");
	cr_assert_eq(dd_wait_durable(e, id, UINT64_MAX), 0);
	dd_engine_destroy(e);

	snprintf(cmd, sizeof(cmd), "chown -R %u:%u %s", (unsigned)pw.pw_uid, (unsigned)pw.pw_gid,
		 state);
	run(cmd);
	refused(state, state);
	char want[160];
	snprintf(want, sizeof(want), "owned by uid %u (ddh3log)", (unsigned)pw.pw_uid);
	cr_assert(strstr(said, want), "names the owner: %s", said);
	cr_assert_neq(access(marker, F_OK), 0, "the job ran");

	/* the same directory, its own again: the job is there (what was refused
	 * was the directory, not an empty log) */
	snprintf(cmd, sizeof(cmd), "chown -R 0:0 %s", state);
	run(cmd);
	trust_config(&cfg, state);
	e = open_engine(state, DD_DURABILITY_FSYNC, &cfg);
	struct dd_recovery rec;
	cr_assert_eq(dd_engine_recovery(e, &rec), 0);
	cr_assert_eq(rec.jobs_loaded, 1);
	cr_assert_eq(dd_cancel(e, id), 0);
	dd_engine_destroy(e);
	cr_assert_neq(access(marker, F_OK), 0, "the job ran");
}

/* ---- idempotency keys per owner ---- */

/* Submits kind "ok" with @key as owner @uid; *known: the key was bound. */
static uint64_t keyed(struct dd_engine *e, uint32_t uid, const char *key, bool *known)
{
	struct dd_job_spec s = job("ok");
	s.idem_key = key;
	s.flags = DD_JOB_OWNER;
	s.uid = uid;
	s.gid = uid;
	uint64_t id;
	size_t n;
	int r = dd_submit_batch_known(e, &s, 1, DD_SUBMIT_BLOCK, &id, known, &n);
	cr_assert_eq(r, 0, "submit: %s", dd_strerror(r));
	cr_assert_eq(n, 1);
	return id;
}

Test(idem, keys_belong_to_their_owner, .fini = fini_dir)
{
	dir = make_tmpdir("idem");
	struct dd_config cfg;
	trust_config(&cfg, dir);
	cfg.shards = 2;
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, &cfg);
	bool known;
	uint64_t a = keyed(e, 1001, "k", &known);
	cr_assert(!known);
	uint64_t b = keyed(e, 1002, "k", &known);
	cr_assert(!known, "another owner's key made no job");
	cr_assert_neq(a, b);
	cr_assert_eq(keyed(e, 1001, "k", &known), a);
	cr_assert(known);
	cr_assert_eq(keyed(e, 1002, "k", &known), b);
	cr_assert(known);
	struct dd_job_info ia, ib;
	cr_assert_eq(dd_wait(e, a, UINT64_MAX, &ia), 0);
	cr_assert_eq(dd_wait(e, b, UINT64_MAX, &ib), 0);
	cr_assert(ia.state == DD_SUCCEEDED && ib.state == DD_SUCCEEDED && ia.uid == 1001 &&
		  ib.uid == 1002);
	dd_engine_destroy(e);

	/* from the store, after a restart */
	trust_config(&cfg, dir);
	cfg.shards = 2;
	e = open_engine(dir, DD_DURABILITY_FSYNC, &cfg);
	cr_assert_eq(keyed(e, 1001, "k", &known), a);
	cr_assert(known);
	cr_assert_eq(keyed(e, 1002, "k", &known), b);
	cr_assert(known);
	uint64_t c = keyed(e, 1003, "k", &known);
	cr_assert(!known && c != a && c != b);
	dd_engine_destroy(e);
}

/* ---- a store of schema 4: keys without owners ---- */

/* state/store.h's job record header, as schema 4 wrote it */
struct old_hdr {
	uint8_t state;
	uint8_t pad[3];
	uint32_t attempt;
	int32_t result;
	int32_t worker;
	uint64_t started_rt, ended_rt, not_before_rt;
	uint32_t reason_len;
	uint32_t body_len;
};

static void be64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static void put_u64(MDB_txn *t, MDB_dbi db, const char *name, uint64_t v)
{
	MDB_val k = {strlen(name), (void *)name}, d = {8, &v};
	cr_assert_eq(mdb_put(t, db, &k, &d, 0), 0);
}

static void old_job(MDB_txn *t, MDB_dbi jobs, MDB_dbi idem, uint64_t id, uint32_t uid,
		    const char *key, uint64_t now_rt)
{
	struct dd_logrec r = {.type = DD_LOGREC_SUBMIT, .id = id, .at_rt = now_rt, .max_attempts = 1,
			   .priority = DD_PRIO_NORMAL, .uid = uid, .gid = uid, .kind = "ok",
			   .kind_len = 2, .key = key, .key_len = (uint32_t)strlen(key)};
	size_t blen = dd_logrec_encode_body(&r, NULL);
	struct old_hdr h = {.state = DD_SUCCEEDED, .attempt = 1, .worker = 0,
			    .started_rt = now_rt, .ended_rt = now_rt, .body_len = (uint32_t)blen};
	unsigned char *v = calloc(1, sizeof(h) + blen);
	memcpy(v, &h, sizeof(h));
	dd_logrec_encode_body(&r, v + sizeof(h));
	unsigned char k[8];
	be64(k, id);
	MDB_val jk = {8, k}, jv = {sizeof(h) + blen, v};
	cr_assert_eq(mdb_put(t, jobs, &jk, &jv, 0), 0);
	MDB_val ik = {strlen(key), (void *)key}, iv = {8, k};
	cr_assert_eq(mdb_put(t, idem, &ik, &iv, 0), 0);
	free(v);
}

Test(migrate, keys_of_an_old_store_answer_for_their_owner_only, .fini = fini_dir)
{
	dir = make_tmpdir("migrate");
	char p[4300];
	static const char *const dirs[] = {"shard-0", "shard-0/wal", "shard-0/store"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, dirs[i]);
		cr_assert_eq(mkdir(p, 0700), 0);
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now_rt = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	MDB_env *env;
	MDB_txn *t;
	MDB_dbi meta, jobs, bystate, ended, idem;
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 8), 0);
	cr_assert_eq(mdb_env_set_mapsize(env, 8u << 20), 0);
	cr_assert_eq(mdb_env_open(env, p, 0, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &t), 0);
	cr_assert_eq(mdb_dbi_open(t, "meta", MDB_CREATE, &meta), 0);
	cr_assert_eq(mdb_dbi_open(t, "jobs", MDB_CREATE, &jobs), 0);
	cr_assert_eq(mdb_dbi_open(t, "bystate", MDB_CREATE, &bystate), 0);
	cr_assert_eq(mdb_dbi_open(t, "ended", MDB_CREATE, &ended), 0);
	cr_assert_eq(mdb_dbi_open(t, "idem", MDB_CREATE, &idem), 0);
	put_u64(t, meta, "schema", 4);
	put_u64(t, meta, "ckpt", 0);
	put_u64(t, meta, "next_seq", 3);
	put_u64(t, meta, "trim_floor", 1);
	put_u64(t, meta, "live", 0);
	old_job(t, jobs, idem, 1, 1001, "k", now_rt); /* alice's "k" */
	old_job(t, jobs, idem, 2, 1002, "j", now_rt); /* bob's "j" */
	unsigned char gone[8];
	be64(gone, 7);
	MDB_val gk = {4, "gone"}, gv = {8, gone}; /* a key whose job was trimmed */
	cr_assert_eq(mdb_put(t, idem, &gk, &gv, 0), 0);
	cr_assert_eq(mdb_txn_commit(t), 0);
	mdb_env_close(env);

	struct dd_config cfg;
	trust_config(&cfg, dir);
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, &cfg);
	bool known;
	cr_assert_eq(keyed(e, 1001, "k", &known), 1);
	cr_assert(known, "alice's old key answers for alice");
	cr_assert_eq(keyed(e, 1002, "j", &known), 2);
	cr_assert(known, "bob's old key answers for bob");
	uint64_t bk = keyed(e, 1002, "k", &known);
	cr_assert(!known && bk != 1, "alice's key does not answer for bob");
	uint64_t aj = keyed(e, 1001, "j", &known);
	cr_assert(!known && aj != 2, "bob's key does not answer for alice");
	keyed(e, 1001, "gone", &known);
	cr_assert(!known);
	struct dd_job_info info;
	cr_assert_eq(dd_wait(e, bk, UINT64_MAX, &info), 0);
	cr_assert_eq(info.uid, 1002);
	dd_engine_destroy(e);

	/* the store is at the new schema, and its old key table is gone */
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 8), 0);
	cr_assert_eq(mdb_env_open(env, p, MDB_RDONLY, 0600), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), 0);
	cr_assert_eq(mdb_dbi_open(t, "meta", 0, &meta), 0);
	MDB_val sk = {6, "schema"}, sv;
	cr_assert_eq(mdb_get(t, meta, &sk, &sv), 0);
	uint64_t schema;
	memcpy(&schema, sv.mv_data, 8);
	cr_assert_eq(schema, 5);
	cr_assert_eq(mdb_dbi_open(t, "idem", 0, &idem), MDB_NOTFOUND);
	mdb_txn_abort(t);
	mdb_env_close(env);
}
