/* Texts for a process's wait status, made once and kept: a caller may
 * keep the pointer (the engine's job records do), so they are static and
 * never freed. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "proc.h"

static char exit_text[256][12];
static char sig_text[65][48];
static pthread_once_t text_once = PTHREAD_ONCE_INIT;

static void make_texts(void)
{
	for (int i = 0; i < 256; i++)
		snprintf(exit_text[i], sizeof(exit_text[i]), "exit %d", i);
	for (int i = 0; i < 65; i++) {
		const char *d = sigdescr_np(i);
		snprintf(sig_text[i], sizeof(sig_text[i]), "signal %d (%s)", i, d ? d : "unknown");
	}
}

const char *dd_proc_status_text(int status)
{
	pthread_once(&text_once, make_texts);
	if (WIFEXITED(status))
		return exit_text[WEXITSTATUS(status)];
	int sig = status & 0x7f;
	return sig_text[sig <= 64 ? sig : 0];
}
