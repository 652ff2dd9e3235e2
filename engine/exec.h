/* The process executor's private parts, shared by exec.c (spawning and
 * watching) and output.c (the output files). */
#ifndef DD_ENGINE_EXEC_H
#define DD_ENGINE_EXEC_H

#include <signal.h>
#include <sys/types.h>

#include "ring.h"

struct dd_proc {
	struct dd_proc *next, *prev;
	struct dd_jobrec *j;
	int pidfd;
	pid_t pid;
	int out, err; /* output files, kept for the size checks; -1 none */
	uint64_t out_max;
	uint64_t id;
	bool named[2]; /* the output file has its name (see dd_output_open) */
	bool kill_sent;
	char *why; /* pid 0: the process did not start, and why (an arena
		    * copy the reactor hands to the job's reason), or NULL */
	siginfo_t si; /* IORING_OP_WAITID writes here */
};

/* output.c */
/* Opens @p's output file for @stream (1 stdout, 2 stderr): nameless where
 * the file system allows, /dev/null without an output dir. Returns the fd
 * or -1 with errno set. */
int dd_output_open(struct dd_shard *s, struct dd_proc *p, int stream);
/* Cuts both files back to out_max and names those that hold something;
 * @last: the process has ended. */
void dd_output_cap(struct dd_shard *s, struct dd_proc *p, bool last);

#endif
