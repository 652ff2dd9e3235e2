/* dispatchctl submit SCRIPT: a batch script as sbatch takes one. Its "#DD"
 * lines are options (ddscript.c), placed before the command line's so
 * that those win; a shell script runs from a copy of its text taken at
 * submit time (SHELL -c TEXT SCRIPT ARGS..), as sbatch runs a copy, so
 * that editing or removing the file after the submit changes nothing.
 * Another interpreter's script runs from its file. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "ddscript.h"

#define SCRIPT_MAX (1u << 20)  /* bytes of a script read */
#define ARG_TEXT_MAX 131072u   /* MAX_ARG_STRLEN: one argument's most */

/* Whether the "#!" line @hb (@n bytes, "#!" on) runs a POSIX-like shell,
 * which takes -c TEXT NAME ARGS; its words into @w (at most 8). */
static int shebang(const char *hb, size_t n, char *buf, size_t bn, char **w, bool *shell)
{
	size_t l = n - 2 < bn - 1 ? n - 2 : bn - 1;
	memcpy(buf, hb + 2, l);
	buf[l] = 0;
	int k = 0;
	for (char *save, *t = strtok_r(buf, " \t\r", &save); t && k < 8;
	     t = strtok_r(NULL, " \t\r", &save))
		w[k++] = t;
	*shell = false;
	if (k) {
		const char *b = strrchr(w[k - 1], '/');
		b = b ? b + 1 : w[k - 1];
		static const char *const sh[] = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash"};
		for (size_t i = 0; i < sizeof(sh) / sizeof(sh[0]); i++)
			*shell |= !strcmp(b, sh[i]);
	}
	return k;
}

void dd_ctl_script_free(struct dd_ctl_script *sc)
{
	for (int i = 0; i < sc->nowned; i++)
		free(sc->owned[i]);
	free(sc->owned);
	free(sc->argv);
	memset(sc, 0, sizeof(*sc));
}

int dd_ctl_script_argv(int argc, char **argv, const struct option *o, const char *shorts,
		       struct dd_ctl_script *sc)
{
	memset(sc, 0, sizeof(*sc));
	/* where the options end, as build_job's getopt will see it */
	int save = opterr;
	opterr = 0;
	optind = 1;
	while (getopt_long(argc, argv, shorts, o, NULL) != -1)
		;
	opterr = save;
	int at = optind;
	optind = 1;
	if (at >= argc || !strcmp(argv[at - 1], "--"))
		return 0; /* "-- CMD": a command, as given */
	int fd = open(argv[at], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return 0; /* not a file: a program on the PATH */
	}
	char *text = malloc(SCRIPT_MAX + 1);
	ssize_t len = text ? read(fd, text, SCRIPT_MAX + 1) : -1;
	close(fd);
	if (len < 2 || memcmp(text, "#!", 2)) {
		free(text);
		return 0; /* not a script: run as it is */
	}
	if (len > SCRIPT_MAX) {
		fprintf(stderr, "dispatchctl: %s: a script of over %u bytes\n", argv[at], SCRIPT_MAX);
		free(text);
		return 1;
	}
	text[len] = 0;
	if (memchr(text, 0, (size_t)len)) {
		fprintf(stderr, "dispatchctl: %s: a script holds no NUL byte\n", argv[at]);
		free(text);
		return 1;
	}
	char **words, why[160];
	int nw;
	int r = dd_script_options(text, (size_t)len, &words, &nw, why, sizeof(why));
	if (r < 0) {
		fprintf(stderr, "dispatchctl: %s: #DD %s\n", argv[at],
			r == -ENOMEM ? "out of memory" : why);
		free(text);
		return r == -ENOMEM ? 1 : 2;
	}
	char path[4096], hb[512], *iw[8];
	bool shell;
	size_t hl = strcspn(text, "\n");
	int ni = shebang(text, hl, hb, sizeof(hb), iw, &shell);
	if (dd_ctl_abspath(argv[at], path, sizeof(path)) < 0)
		snprintf(path, sizeof(path), "%s", argv[at]);
	bool copy = shell && ni && (size_t)len < ARG_TEXT_MAX;
	/* argv[0], #DD words, the command line's options, the command */
	int n = 1 + nw + (at - 1) + 1 + (copy ? ni + 2 : 0) + (argc - at);
	char **v = calloc((size_t)n + 1, sizeof(*v));
	char **own = calloc((size_t)nw + (size_t)ni + 2, sizeof(*own));
	int k = 0, no = 0;
	bool ok = v && own;
	if (ok) {
		v[k++] = argv[0];
		for (int i = 0; i < nw; i++)
			v[k++] = own[no++] = words[i];
		for (int i = 1; i < at; i++)
			v[k++] = argv[i];
		v[k++] = "--";
		if (copy) {
			for (int i = 0; i < ni; i++)
				ok &= (v[k++] = own[no++] = strdup(iw[i])) != NULL;
			v[k++] = "-c";
			v[k++] = own[no++] = text; /* $0 is then the script's path */
			text = NULL;
		}
		ok &= (v[k++] = own[no++] = strdup(path)) != NULL;
		for (int i = at + 1; i < argc; i++)
			v[k++] = argv[i];
		v[k] = NULL;
		nw = 0; /* its words are own[]'s now */
	}
	dd_script_free(words, nw);
	free(text);
	*sc = (struct dd_ctl_script){.argc = k, .argv = v, .owned = own, .nowned = no};
	if (!ok) {
		fprintf(stderr, "dispatchctl: out of memory\n");
		dd_ctl_script_free(sc);
		return 1;
	}
	return 0;
}
