/* dispatchctl: a client of the protocol only (docs/PROTOCOL.md). */
#ifndef DD_CTL_H
#define DD_CTL_H

#include <jansson.h>
#include <stdbool.h>

/* ctl_client.c */
struct ctl {
	int fd;
	char *buf;
	size_t len, cap;
	unsigned tag;
};
/* Sends @req (stolen) with a fresh tag and returns the answer's object
 * (the caller decrefs), or NULL (message printed). */
json_t *dd_ctl_call(struct ctl *c, json_t *req);
/* Like dd_ctl_call(); with @fd >= 0 it also passes @fd (SCM_RIGHTS: the Unix
 * socket only) with the request's bytes. */
json_t *dd_ctl_call_fd(struct ctl *c, json_t *req, int fd);
/* Sends @req (stolen) with a fresh tag, passing @fd as dd_ctl_call_fd()
 * does, without waiting: returns the tag, or 0 (message printed). */
unsigned dd_ctl_send(struct ctl *c, json_t *req, int fd);
/* The next answer or event line, waiting for it; NULL (message printed)
 * when the connection is gone or the line is not JSON. */
json_t *dd_ctl_recv(struct ctl *c);
/* A whole line is already read: dd_ctl_recv() will not block. */
bool dd_ctl_pending(const struct ctl *c);
/* The result of an ok answer, or NULL after printing its error. */
json_t *dd_ctl_result(json_t *resp);
void dd_ctl_close(struct ctl *c);
/* One "output" request: copies what @stream ("stdout", "stderr") of
 * @attempt (0: the last) holds from *@off on to @out, moves *@off on, and
 * shows the bytes to @seen too (may be NULL). Returns 1 at the end of a
 * finished job's stream, 0 if more may come, -1 on error (printed). */
int dd_ctl_pump(struct ctl *c, json_int_t id, const char *stream, json_int_t attempt, json_int_t *off,
	     FILE *out, void (*seen)(void *arg, const unsigned char *p, size_t n), void *arg);

/* ctl_connect.c: connects to @where, a Unix socket path or (dd_ctl_is_tcp)
 * HOST:PORT / [ADDR]:PORT, and checks whom it reached: a Unix socket's
 * daemon must run as the caller or root, and with @is_default (the
 * caller's default path) its directory must be the caller's own (or
 * root's for DD_ROOT_SOCKET, which is also tried when the caller's own
 * default is missing); over TCP the token in @token_file is sent first.
 * Returns 0, or -1 (message printed). */
int dd_ctl_connect(struct ctl *c, const char *where, bool is_default, const char *token_file);
/* @where names a TCP address: it has a ':' and no '/'. */
bool dd_ctl_is_tcp(const char *where);

/* ctl_status.c: prints one word for each of @ids, in order (pending,
 * running, success, failed; unknown for a job the daemon does not know,
 * said on stderr too). Returns 0, or 1 when a job was unknown. */
int dd_ctl_status(struct ctl *c, const json_int_t *ids, size_t n, bool json_out);
/* A job's end as a command's exit code: its own, 128 + the signal that
 * ended it, else 0 if it succeeded and 1 if not. */
int dd_ctl_job_exit(json_t *job);
/* Waits for job @id and returns dd_ctl_job_exit() of it (1 on error,
 * printed); says on stderr why a job that did not succeed ended. */
int dd_ctl_wait_exit(struct ctl *c, json_int_t id, bool json_out);

/* ctl_context.c: what submit and run send by default */
/* @path made absolute against the current directory, into @buf. Returns
 * 0, or -errno (getcwd's, or -ENAMETOOLONG). */
int dd_ctl_abspath(const char *path, char *buf, size_t n);
/* The caller's umask. */
unsigned dd_ctl_umask(void);
/* The job's environment: per --export @spec (NULL: ALL; "NONE"; or a list
 * of NAME, NAME=VALUE and ALL, as Slurm's), then the --env pairs of @set
 * (may be NULL) over it. Returns 0 with *@env new, or 2 (usage; printed). */
int dd_ctl_export_env(const char *spec, json_t *set, json_t **env);

/* ctl_run.c: `run` once its job is built (@req, stolen): passes standard
 * input unless @req names one (over a Unix socket), forwards Ctrl-C, and
 * exits when the job has ended. Returns the exit code. */
int dd_ctl_run(struct ctl *c, json_t *req, bool json_out);

/* ctl_top.c: the live view; @frames > 0 stops after that many. Returns
 * the exit code. */
int dd_ctl_top(struct ctl *c, int frames, bool json);

/* ctl_script.c: submit's arguments when the command is a batch script
 * (a file starting "#!", not after "--"): its #DD options before the
 * command line's, and its text as the job runs it. sc->argv is NULL when
 * the command is no script (use argv as it is); free with
 * dd_ctl_script_free. @o, @shorts: submit's options. Returns 0, or an
 * exit status (1, or 2 for a bad #DD line) with the reason on stderr. */
struct option;
struct dd_ctl_script {
	int argc;
	char **argv;
	char **owned; /* the strings of argv that are ours to free */
	int nowned;
};
int dd_ctl_script_argv(int argc, char **argv, const struct option *o, const char *shorts,
		       struct dd_ctl_script *sc);
void dd_ctl_script_free(struct dd_ctl_script *sc);

/* ctl_print.c */
void dd_ctl_print_jobs(json_t *jobs, bool header);
void dd_ctl_print_job(json_t *job);
void dd_ctl_print_stats(json_t *stats);

#endif
