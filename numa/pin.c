/* Thread pinning. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>

#include "dd_numa.h"

int dd_numa_pin_cpus(const int *cpus, int ncpus)
{
	if (ncpus <= 0)
		return -EINVAL;
	cpu_set_t set;
	CPU_ZERO(&set);
	for (int i = 0; i < ncpus; i++) {
		if (cpus[i] < 0 || cpus[i] >= CPU_SETSIZE)
			return -EINVAL;
		CPU_SET(cpus[i], &set);
	}
	return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int dd_numa_pin_cpu(int cpu)
{
	return dd_numa_pin_cpus(&cpu, 1);
}

int dd_numa_current_cpu(void)
{
	int c = sched_getcpu();
	return c < 0 ? -errno : c;
}
