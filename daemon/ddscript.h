/* Batch scripts (ddscript.c): the "#DD" lines at the top of a script, as
 * sbatch reads "#SBATCH" lines, into the words of dispatchctl options. */
#ifndef DD_DAEMON_DDSCRIPT_H
#define DD_DAEMON_DDSCRIPT_H

#include <stddef.h>

/* The options of @text's (@len bytes) "#DD" lines: those after the "#!"
 * line and before the first line that is neither blank nor a comment.
 * Each is split into words as a shell would (spaces; '...' and "..."
 * quotes; a backslash escapes the next character), and every word must
 * belong to an option ("-x", "--long", "--long=v", or the value after one).
 * *words (malloc'd: free it with dd_script_free) and *n receive them.
 * Returns 0, -EINVAL with @why saying which line is wrong (an unclosed
 * quote, a word that is no option, "--"), -ENOMEM. */
int dd_script_options(const char *text, size_t len, char ***words, int *n, char *why,
		      size_t whyn);
void dd_script_free(char **words, int n);

#endif
