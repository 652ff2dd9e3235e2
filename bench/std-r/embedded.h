/* std-r --embedded: one run of the engine in this process. */
#ifndef STD_R_EMBEDDED_H
#define STD_R_EMBEDDED_H

#include "opts.h"
#include "result.h"

/* Runs @o's workload at @rate jobs/s (0 = closed loop) with its state in
 * @state_dir (NULL at durability none) and fills @res. Prints progress on
 * stderr unless o->quiet. Returns 0, or 1 after saying why on stderr. */
int embedded_run(const struct opts *o, double rate, const char *state_dir,
		 struct run_result *res);

#endif
