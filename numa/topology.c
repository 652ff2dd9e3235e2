/* NUMA topology from libnuma, clipped to this process's CPU affinity. */
#include <errno.h>
#include <numa.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "dd_numa.h"

static int usable_cpus(int **out)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	int n = CPU_COUNT(&set);
	int *cpus = calloc((size_t)n ? (size_t)n : 1, sizeof(int));
	if (!cpus)
		return -ENOMEM;
	int k = 0;
	for (int c = 0; c < CPU_SETSIZE && k < n; c++)
		if (CPU_ISSET(c, &set))
			cpus[k++] = c;
	*out = cpus;
	return k;
}

static int alloc_nodes(struct dd_numa_topo *t, int n)
{
	t->nnodes = n;
	t->nodes = calloc((size_t)n, sizeof(*t->nodes));
	t->distance = calloc((size_t)n * (size_t)n, sizeof(int));
	if (!t->nodes || !t->distance)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		t->nodes[i].id = i;
		for (int j = 0; j < n; j++)
			t->distance[i * n + j] = i == j ? 10 : 20;
	}
	return 0;
}

/* Made-up nodes: CPUs dealt out in contiguous blocks, as real nodes are. */
static int build_pretend(struct dd_numa_topo *t, int want, const int *cpus, int ncpus)
{
	int r = alloc_nodes(t, want);
	if (r < 0)
		return r;
	t->pretend = true;
	for (int i = 0; i < want; i++) {
		struct dd_numa_node *nd = &t->nodes[i];
		nd->os_node = -1; /* no real node behind it: memory is not bound */
		int lo = (int)((long)i * ncpus / want), hi = (int)((long)(i + 1) * ncpus / want);
		if (hi <= lo) { /* fewer CPUs than nodes: share round-robin */
			lo = i % ncpus;
			hi = lo + 1;
		}
		nd->ncpus = hi - lo;
		nd->cpus = calloc((size_t)nd->ncpus, sizeof(int));
		if (!nd->cpus)
			return -ENOMEM;
		memcpy(nd->cpus, cpus + lo, (size_t)nd->ncpus * sizeof(int));
	}
	return 0;
}

static int build_real(struct dd_numa_topo *t, const int *cpus, int ncpus)
{
	int maxnode = numa_max_node();
	/* Keep only nodes that have usable CPUs: memory-only nodes get no shard. */
	int *map = calloc((size_t)maxnode + 1, sizeof(int));
	if (!map)
		return -ENOMEM;
	int n = 0, r = 0;
	for (int node = 0; node <= maxnode; node++) {
		map[node] = -1;
		for (int i = 0; i < ncpus; i++)
			if (numa_node_of_cpu(cpus[i]) == node) {
				map[node] = n++;
				break;
			}
	}
	if (n == 0) {
		free(map);
		return -ENODEV;
	}
	if ((r = alloc_nodes(t, n)) < 0)
		goto out;
	for (int node = 0; node <= maxnode; node++) {
		if (map[node] < 0)
			continue;
		struct dd_numa_node *nd = &t->nodes[map[node]];
		nd->os_node = node;
		nd->cpus = calloc((size_t)ncpus, sizeof(int));
		if (!nd->cpus) {
			r = -ENOMEM;
			goto out;
		}
		for (int i = 0; i < ncpus; i++)
			if (numa_node_of_cpu(cpus[i]) == node)
				nd->cpus[nd->ncpus++] = cpus[i];
	}
	for (int a = 0; a <= maxnode; a++)
		for (int b = 0; b <= maxnode; b++)
			if (map[a] >= 0 && map[b] >= 0)
				t->distance[map[a] * n + map[b]] = numa_distance(a, b);
out:
	free(map);
	return r;
}

int dd_numa_topo_create(int pretend_nodes, struct dd_numa_topo **out)
{
	if (pretend_nodes < 0 || pretend_nodes > 1024)
		return -EINVAL;
	struct dd_numa_topo *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	int *cpus = NULL;
	int ncpus = usable_cpus(&cpus);
	int r = ncpus;
	if (r < 0)
		goto fail;
	if (ncpus == 0) {
		r = -ENODEV;
		goto fail;
	}
	t->numa_available = numa_available() >= 0;
	if (pretend_nodes > 0)
		r = build_pretend(t, pretend_nodes, cpus, ncpus);
	else if (t->numa_available)
		r = build_real(t, cpus, ncpus);
	else
		r = build_pretend(t, 1, cpus, ncpus), t->pretend = false;
	if (r < 0)
		goto fail;
	free(cpus);
	*out = t;
	return 0;
fail:
	free(cpus);
	dd_numa_topo_destroy(t);
	return r;
}

void dd_numa_topo_destroy(struct dd_numa_topo *t)
{
	if (!t)
		return;
	for (int i = 0; t->nodes && i < t->nnodes; i++)
		free(t->nodes[i].cpus);
	free(t->nodes);
	free(t->distance);
	free(t);
}

int dd_numa_distance(const struct dd_numa_topo *t, int a, int b)
{
	if (a < 0 || b < 0 || a >= t->nnodes || b >= t->nnodes)
		return -EINVAL;
	return t->distance[a * t->nnodes + b];
}

int dd_numa_node_of_cpu(const struct dd_numa_topo *t, int cpu)
{
	for (int i = 0; i < t->nnodes; i++)
		for (int j = 0; j < t->nodes[i].ncpus; j++)
			if (t->nodes[i].cpus[j] == cpu)
				return i;
	return -ENOENT;
}
