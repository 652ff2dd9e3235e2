/* The submitter's context that `dispatchctl submit` and `run` send with a
 * process job unless told otherwise, as sbatch, srun and flux run do: the
 * current directory, the environment (--export, --env) and the umask. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"

extern char **environ;

int dd_ctl_abspath(const char *path, char *buf, size_t n)
{
	if (path[0] == '/') {
		if ((size_t)snprintf(buf, n, "%s", path) >= n)
			return -ENAMETOOLONG;
		return 0;
	}
	if (!getcwd(buf, n))
		return -errno;
	/* "." and "./x" are the directory and x in it; ".." is left to the
	 * kernel, which resolves it after any symbolic link before it */
	while (path[0] == '.' && (path[1] == '/' || !path[1]))
		for (path++; *path == '/'; path++)
			;
	size_t k = strlen(buf);
	if (*path && (size_t)snprintf(buf + k, n - k, "%s%s", k > 1 ? "/" : "", path) >= n - k)
		return -ENAMETOOLONG;
	return 0;
}

unsigned dd_ctl_umask(void)
{
	mode_t m = umask(0); /* umask(2) reads it only by setting it: set it back (one thread) */
	umask(m);
	return (unsigned)m;
}

/* NAME=VALUE into @env, noted on stderr and left out when JSON cannot
 * carry it: a value (or name) that is not UTF-8. */
static void put(json_t *env, const char *kv)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv)
		return;
	char *name = strndup(kv, (size_t)(eq - kv));
	json_t *v = name ? json_string(eq + 1) : NULL;
	if (name && (!v || json_object_set_new(env, name, v) < 0))
		fprintf(stderr, "dispatchctl: not passing %s to the job: it is not UTF-8\n", name);
	free(name);
}

int dd_ctl_export_env(const char *spec, json_t *set, json_t **out)
{
	json_t *env = json_object();
	bool all = !spec;
	char *copy = spec ? strdup(spec) : NULL, *rest = copy;
	for (char *tok; rest && (tok = strsep(&rest, ","));) {
		char *eq = strchr(tok, '=');
		if (!strcmp(tok, "ALL")) {
			all = true;
		} else if (!strcmp(tok, "NONE")) {
			continue;
		} else if (eq == tok || !*tok) {
			fprintf(stderr, "dispatchctl: --export: '%s' is not NAME or NAME=VALUE\n", tok);
			free(copy);
			json_decref(env);
			return 2;
		} else if (eq) {
			put(env, tok); /* NAME=VALUE as given */
		} else {
			const char *v = getenv(tok);
			json_t *s = v ? json_string(v) : NULL;
			if (v && !s)
				fprintf(stderr, "dispatchctl: not passing %s to the job: its value is not UTF-8\n",
					tok);
			if (s)
				json_object_set_new(env, tok, s);
		}
	}
	/* ALL with names: every variable, and those names' given values over them */
	if (all) {
		json_t *given = env;
		env = json_object();
		for (char **e = environ; *e; e++)
			put(env, *e);
		json_object_update(env, given);
		json_decref(given);
	}
	free(copy);
	if (set)
		json_object_update(env, set);
	*out = env;
	return 0;
}
