/* dd_script_options(): the "#DD" lines of a batch script. A script is the
 * user's own file, but its bytes are read with the care of any input: it
 * has a fuzz target (test/fuzz/fuzz_ddscript.c). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddscript.h"

void dd_script_free(char **words, int n)
{
	for (int i = 0; i < n; i++)
		free(words[i]);
	free(words);
}

/* Appends the words of @line (@len bytes, no newline) to *v. Returns 0,
 * -EINVAL (an unclosed quote, a trailing backslash), -ENOMEM. */
static int split(const char *line, size_t len, char ***v, int *n, int *cap)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len)
			break;
		char *w = malloc(len - i + 1);
		size_t o = 0;
		if (!w)
			return -ENOMEM;
		while (i < len && line[i] != ' ' && line[i] != '\t') {
			char q = line[i];
			if (q == '\'' || q == '"') {
				i++;
				while (i < len && line[i] != q) {
					if (q == '"' && line[i] == '\\' && i + 1 < len)
						i++;
					w[o++] = line[i++];
				}
				if (i == len) {
					free(w);
					return -EINVAL; /* unclosed */
				}
				i++;
			} else if (q == '\\') {
				if (++i == len) {
					free(w);
					return -EINVAL;
				}
				w[o++] = line[i++];
			} else {
				w[o++] = line[i++];
			}
		}
		w[o] = 0;
		if (*n == *cap) {
			int c = *cap ? 2 * *cap : 16;
			char **nv = realloc(*v, (size_t)c * sizeof(*nv));
			if (!nv) {
				free(w);
				return -ENOMEM;
			}
			*v = nv;
			*cap = c;
		}
		(*v)[(*n)++] = w;
	}
	return 0;
}

int dd_script_options(const char *text, size_t len, char ***words, int *n, char *why,
		      size_t whyn)
{
	char **v = NULL;
	int cnt = 0, cap = 0, lineno = 0;
	size_t pos = 0;
	*words = NULL;
	*n = 0;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
		const char *line = text + pos;
		pos += ll + (nl != NULL);
		lineno++;
		if (ll && line[ll - 1] == '\r')
			ll--;
		if (lineno == 1 && ll >= 2 && !memcmp(line, "#!", 2))
			continue;
		size_t k = 0;
		while (k < ll && (line[k] == ' ' || line[k] == '\t'))
			k++;
		if (k == ll)
			continue; /* blank */
		if (line[k] != '#')
			break; /* the first command: options end here, as sbatch's */
		if (ll - k < 3 || memcmp(line + k, "#DD", 3) ||
		    (ll - k > 3 && line[k + 3] != ' ' && line[k + 3] != '\t'))
			continue; /* another comment */
		if (memchr(line, 0, ll)) {
			snprintf(why, whyn, "line %d: a NUL byte", lineno);
			dd_script_free(v, cnt);
			return -EINVAL;
		}
		int first = cnt, r = split(line + k + 3, ll - k - 3, &v, &cnt, &cap);
		if (r == -ENOMEM) {
			dd_script_free(v, cnt);
			return r;
		}
		if (r < 0) {
			snprintf(why, whyn, "line %d: an unclosed quote or a trailing backslash", lineno);
			dd_script_free(v, cnt);
			return r;
		}
		/* options only: a word that is not one must be the value of the
		 * option before it ("--name x"), which dispatchctl's parser
		 * checks; a line may not start with a value, nor hold "--" */
		for (int i = first; i < cnt; i++)
			if (!strcmp(v[i], "--") || (i == first && v[i][0] != '-')) {
				snprintf(why, whyn, "line %d: '%.40s' is not an option", lineno, v[i]);
				dd_script_free(v, cnt);
				return -EINVAL;
			}
	}
	*words = v;
	*n = cnt;
	return 0;
}
