/* dd_job_signal() for a build whose engine cannot signal a job's process
 * group: every call answers -ENOSYS. */
#include <errno.h>

#include "dispatchd.h"

int dd_job_signal(struct dd_engine *e, uint64_t id, int sig)
{
	(void)e;
	(void)id;
	(void)sig;
	return -ENOSYS;
}
