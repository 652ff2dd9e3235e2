/* Topology, pretend nodes, pinning and arenas. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include "dd_config.h"
#include "dd_numa.h"

static int affinity_count(void)
{
	cpu_set_t set;
	sched_getaffinity(0, sizeof(set), &set);
	return CPU_COUNT(&set);
}

Test(numa, real_topology_covers_usable_cpus)
{
	struct dd_numa_topo *t;
	cr_assert_eq(dd_numa_topo_create(0, &t), 0);
	cr_assert_geq(t->nnodes, 1);
	cr_assert_not(t->pretend);
	int total = 0;
	for (int i = 0; i < t->nnodes; i++) {
		cr_assert_geq(t->nodes[i].ncpus, 1);
		total += t->nodes[i].ncpus;
		cr_assert_eq(dd_numa_distance(t, i, i), 10);
		for (int c = 0; c < t->nodes[i].ncpus; c++)
			cr_assert_eq(dd_numa_node_of_cpu(t, t->nodes[i].cpus[c]), i);
	}
	cr_assert_eq(total, affinity_count());
	cr_assert_eq(dd_numa_distance(t, 0, t->nnodes), -EINVAL);
	dd_numa_topo_destroy(t);
	dd_numa_topo_destroy(NULL);
}

Test(numa, pretend_nodes_split_the_cpus)
{
	int ncpu = affinity_count();
	for (int n = 1; n <= 5; n++) {
		struct dd_numa_topo *t;
		cr_assert_eq(dd_numa_topo_create(n, &t), 0);
		cr_assert_eq(t->nnodes, n);
		cr_assert(t->pretend);
		int total = 0;
		for (int i = 0; i < n; i++) {
			cr_assert_geq(t->nodes[i].ncpus, 1, "every node has a CPU");
			cr_assert_eq(t->nodes[i].os_node, -1, "made-up nodes bind no memory");
			total += t->nodes[i].ncpus;
			for (int j = 0; j < n; j++)
				cr_assert_eq(dd_numa_distance(t, i, j), i == j ? 10 : 20);
		}
		/* disjoint when there are enough CPUs, shared round-robin otherwise */
		cr_assert_eq(total, n <= ncpu ? ncpu : n);
		dd_numa_topo_destroy(t);
	}
	struct dd_numa_topo *t;
	cr_assert_eq(dd_numa_topo_create(-1, &t), -EINVAL);
}

Test(numa, pin_to_each_cpu)
{
	struct dd_numa_topo *t;
	cr_assert_eq(dd_numa_topo_create(0, &t), 0);
	for (int i = 0; i < t->nnodes; i++)
		for (int c = 0; c < t->nodes[i].ncpus; c++) {
			int cpu = t->nodes[i].cpus[c];
			cr_assert_eq(dd_numa_pin_cpu(cpu), 0);
			sched_yield();
			cr_assert_eq(dd_numa_current_cpu(), cpu);
		}
	cr_assert_eq(dd_numa_pin_cpu(-1), -EINVAL);
	cr_assert_eq(dd_numa_pin_cpus(t->nodes[0].cpus, t->nodes[0].ncpus), 0);
	dd_numa_topo_destroy(t);
}

Test(numa, arena_allocates_and_accounts)
{
	struct dd_numa_arena *a;
	cr_assert_eq(dd_numa_arena_create(0, &a), 0);
	if (DD_HAVE_JEMALLOC)
		cr_assert_geq(dd_numa_arena_index(a), 1, "a jemalloc arena of its own");
	else
		cr_assert_eq(dd_numa_arena_index(a), -1);
	void *small = dd_numa_arena_alloc(a, 100);
	void *big = dd_numa_arena_alloc(a, 1 << 20);
	cr_assert_not_null(small);
	cr_assert_not_null(big);
	cr_assert_eq((uintptr_t)small % 64, 0);
	memset(small, 1, 100);
	memset(big, 2, 1 << 20);
	cr_assert_eq(dd_numa_arena_allocated(a), 100 + (1 << 20));
	dd_numa_arena_free(a, small, 100);
	dd_numa_arena_free(a, big, 1 << 20);
	cr_assert_eq(dd_numa_arena_allocated(a), 0);
	dd_numa_arena_destroy(a);

	void *p = dd_numa_alloc_onnode(1 << 16, 0);
	cr_assert_not_null(p);
	memset(p, 3, 1 << 16);
	dd_numa_free(p, 1 << 16);
}
