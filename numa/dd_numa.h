/* numa/ — topology, pinning and node-local memory.
 *
 * Named dd_numa.h, not numa.h, so that it cannot shadow libnuma's <numa.h>.
 *
 * Private header of the numa component; the only place that includes
 * <numa.h> and jemalloc. Functions return 0 or a negative errno.
 */
#ifndef DD_NUMA_H
#define DD_NUMA_H

#include <stdbool.h>
#include <stddef.h>

struct dd_numa_node {
	int id;      /* index in topo->nodes, 0..nnodes-1 */
	int os_node; /* the kernel's node number (for memory binding) */
	int ncpus;
	int *cpus;   /* usable CPUs (this process's affinity mask), ascending */
};

struct dd_numa_topo {
	int nnodes;
	bool numa_available; /* libnuma: the kernel has NUMA support */
	bool pretend;        /* nodes were made up by splitting the CPUs */
	struct dd_numa_node *nodes;
	int *distance; /* nnodes * nnodes, libnuma's units (10 = local) */
};

/* Reads the topology. @pretend_nodes > 0 splits this process's usable CPUs
 * into that many made-up nodes (round-robin when there are fewer CPUs than
 * nodes, so each node gets at least one CPU), for testing multi-node logic on
 * a one-node machine. Works when libnuma reports NUMA unavailable (one node
 * holding every usable CPU). Allocates; caller destroys. */
int dd_numa_topo_create(int pretend_nodes, struct dd_numa_topo **out);
void dd_numa_topo_destroy(struct dd_numa_topo *t);
int dd_numa_distance(const struct dd_numa_topo *t, int a, int b);
/* Node index (0..nnodes-1) holding @cpu, or -ENOENT. */
int dd_numa_node_of_cpu(const struct dd_numa_topo *t, int cpu);

/* Pins the calling thread to one CPU / to a set of CPUs. */
int dd_numa_pin_cpu(int cpu);
int dd_numa_pin_cpus(const int *cpus, int ncpus);
/* CPU the calling thread runs on now, or -errno. */
int dd_numa_current_cpu(void);

/* Node-local memory: pages bound to @os_node when the machine has NUMA, plain
 * anonymous memory otherwise. Page-granular; for slabs and rings. */
void *dd_numa_alloc_onnode(size_t size, int os_node);
void dd_numa_free(void *p, size_t size);

/* A private allocator arena for one shard: with jemalloc, a dedicated arena
 * (arenas.create) whose large extents are bound to the shard's node; without
 * it, node-local pages from dd_numa_alloc_onnode(). Thread-safe. */
struct dd_numa_arena;
int dd_numa_arena_create(int os_node, struct dd_numa_arena **out);
void dd_numa_arena_destroy(struct dd_numa_arena *a);
/* Returns @size bytes aligned to 64, or NULL. */
void *dd_numa_arena_alloc(struct dd_numa_arena *a, size_t size);
void dd_numa_arena_free(struct dd_numa_arena *a, void *p, size_t size);
/* jemalloc arena index, or -1 when built without jemalloc. */
int dd_numa_arena_index(const struct dd_numa_arena *a);
/* Bytes currently allocated through the arena. */
size_t dd_numa_arena_allocated(const struct dd_numa_arena *a);

#endif
