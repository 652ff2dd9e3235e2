/* Owners' credentials: the passwd entry and supplementary groups of each
 * uid whose processes are started (DESIGN.md section 9).
 *
 * Another user's process runs with that user's groups (initgroups
 * semantics) and gets USER, LOGNAME, HOME and SHELL from the user's passwd
 * entry. An NSS look-up can take milliseconds (LDAP, a large /etc/group),
 * so each uid is resolved once, by the first thread that needs it, and
 * kept until dd_proc_creds_reload(). A uid with no entry is kept too (err
 * set): its processes are refused without asking NSS each time; a look-up
 * that failed (NSS unreachable) is not, and the next start asks again.
 *
 * Starting threads take an entry with a reference for the length of a
 * start; a reload unhooks every entry and the last reference frees it. One
 * mutex guards the table: it is taken twice per start of another user's
 * process, next to a vfork that costs far more, and never for the
 * caller's own. */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc.h"

#define BUCKETS 64

struct dd_proc_creds {
	pthread_mutex_t lock;
	struct dd_proc_cred *b[BUCKETS];
};

int dd_proc_creds_create(struct dd_proc_creds **out)
{
	struct dd_proc_creds *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

static void cred_free(struct dd_proc_cred *cr)
{
	for (int i = 0; i < 4; i++)
		free(cr->env[i]);
	free(cr->groups);
	free(cr);
}

void dd_proc_creds_destroy(struct dd_proc_creds *c)
{
	if (!c)
		return;
	for (int i = 0; i < BUCKETS; i++)
		for (struct dd_proc_cred *cr = c->b[i], *n; cr; cr = n) {
			n = cr->next;
			cred_free(cr);
		}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static char *env_str(const char *key, const char *val)
{
	char *s;
	return asprintf(&s, "%s=%s", key, val ? val : "") < 0 ? NULL : s;
}

/* Reads @uid's entry (outside the lock). Returns 0 (cr->err tells whether
 * there is one), -ENOMEM, or the error of an NSS look-up that failed
 * (-EIO, -EMFILE...: not an answer, so not kept). */
static int resolve(uint32_t uid, struct dd_proc_cred *cr)
{
	struct passwd pw, *res = NULL;
	long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t n = hint > 0 ? (size_t)hint : 4096;
	char *buf = NULL;
	int rc;
	cr->uid = uid;
	for (;;) {
		char *nb = realloc(buf, n);
		if (!nb) {
			free(buf);
			return -ENOMEM;
		}
		buf = nb;
		rc = getpwuid_r(uid, &pw, buf, n, &res);
		if (rc != ERANGE || n >= (1u << 20))
			break;
		n *= 2;
	}
	if (!res) {
		free(buf);
		/* what getpwuid_r(3) lists as "not found", beside 0 */
		if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM) {
			cr->err = -ENOENT;
			return 0;
		}
		return -rc;
	}
	int ng = 32;
	gid_t *g = NULL;
	for (;;) {
		gid_t *ngp = realloc(g, (size_t)ng * sizeof(*g));
		if (!ngp)
			goto nomem;
		g = ngp;
		int want = ng;
		if (getgrouplist(pw.pw_name, pw.pw_gid, g, &want) >= 0) {
			ng = want;
			break;
		}
		if (want <= ng || want > 65536) /* NGROUPS_MAX: keep the first ng */
			break;
		ng = want;
	}
	cr->groups = (uint32_t *)g;
	cr->ngroups = ng;
	g = NULL;
	if (!(cr->env[0] = env_str("USER", pw.pw_name)) ||
	    !(cr->env[1] = env_str("LOGNAME", pw.pw_name)) ||
	    !(cr->env[2] = env_str("HOME", pw.pw_dir)) ||
	    !(cr->env[3] = env_str("SHELL", pw.pw_shell && pw.pw_shell[0] ? pw.pw_shell
									  : "/bin/sh")))
		goto nomem;
	free(buf);
	return 0;
nomem:
	free(g);
	free(buf);
	return -ENOMEM;
}

_Static_assert(sizeof(gid_t) == sizeof(uint32_t), "groups are kept as uint32_t");

/* The entry of @uid with a reference, or an error: dd_proc_creds_get
 * without the texts. */
static int get(struct dd_proc_creds *c, uint32_t uid, struct dd_proc_cred **out)
{
	unsigned k = uid % BUCKETS;
	struct dd_proc_cred *cr;
	pthread_mutex_lock(&c->lock);
	for (cr = c->b[k]; cr && cr->uid != uid; cr = cr->next)
		;
	if (cr)
		cr->refs++;
	pthread_mutex_unlock(&c->lock);
	if (cr) {
		*out = cr;
		return 0;
	}
	struct dd_proc_cred *fresh = calloc(1, sizeof(*fresh));
	if (!fresh)
		return -ENOMEM;
	int rc = resolve(uid, fresh);
	if (rc < 0) {
		cred_free(fresh);
		return rc;
	}
	pthread_mutex_lock(&c->lock);
	/* another thread may have resolved it meanwhile: keep the first */
	for (cr = c->b[k]; cr && cr->uid != uid; cr = cr->next)
		;
	if (!cr) {
		cr = fresh;
		fresh = NULL;
		cr->next = c->b[k];
		c->b[k] = cr;
	}
	cr->refs++;
	pthread_mutex_unlock(&c->lock);
	if (fresh)
		cred_free(fresh);
	*out = cr;
	return 0;
}

int dd_proc_creds_get(struct dd_proc_creds *c, uint32_t uid, struct dd_proc_cred **out,
		      char *why, size_t whyn)
{
	struct dd_proc_cred *cr;
	int rc = get(c, uid, &cr);
	if (rc < 0) {
		const char *d = strerrordesc_np(-rc);
		if (why)
			snprintf(why, whyn, "cannot look up uid %u: %s", (unsigned)uid,
				 d ? d : "unknown error");
		return rc;
	}
	if (cr->err) {
		/* nothing runs as a uid that names no one */
		rc = cr->err;
		if (why)
			snprintf(why, whyn, "uid %u has no passwd entry", (unsigned)uid);
		dd_proc_creds_put(c, cr);
		return rc;
	}
	*out = cr;
	return 0;
}

void dd_proc_creds_put(struct dd_proc_creds *c, struct dd_proc_cred *cr)
{
	if (!cr)
		return;
	pthread_mutex_lock(&c->lock);
	bool last = --cr->refs == 0 && cr->stale;
	pthread_mutex_unlock(&c->lock);
	if (last)
		cred_free(cr);
}

void dd_proc_creds_reload(struct dd_proc_creds *c)
{
	struct dd_proc_cred *drop = NULL;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < BUCKETS; i++) {
		for (struct dd_proc_cred *cr = c->b[i], *n; cr; cr = n) {
			n = cr->next;
			cr->stale = true;
			if (!cr->refs) {
				cr->next = drop;
				drop = cr;
			}
		}
		c->b[i] = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	for (struct dd_proc_cred *n; drop; drop = n) {
		n = drop->next;
		cred_free(drop);
	}
}
