/* Node-local memory and per-shard arenas. */
#include <errno.h>
#include <stdio.h>
#include <numa.h>
#include <numaif.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dd_config.h"
#include "dd_numa.h"

#if DD_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

/* Binding only means something on a real multi-node machine. */
static bool binding_useful(int os_node)
{
	return os_node >= 0 && numa_available() >= 0 && numa_max_node() > 0;
}

/* Binds [p, p+size) to @os_node with mbind(2) itself: libnuma's
 * numa_tonode_memory() and numa_alloc_onnode() print to stderr when the
 * kernel refuses, and the library never prints. A refusal leaves the pages
 * where the kernel puts them, as libnuma would. */
#define MASK_BITS 1024 /* the kernel's largest MAX_NUMNODES */
#define LONG_BITS (8 * sizeof(unsigned long))
static void bind_to_node(void *p, size_t size, int os_node)
{
	unsigned long mask[MASK_BITS / LONG_BITS] = {0};
	if (os_node < 0 || os_node >= MASK_BITS)
		return;
	mask[(unsigned)os_node / LONG_BITS] |= 1ul << ((unsigned)os_node % LONG_BITS);
	(void)mbind(p, size, MPOL_BIND, mask, MASK_BITS, 0);
}

void *dd_numa_alloc_onnode(size_t size, int os_node)
{
	if (size == 0)
		return NULL;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (binding_useful(os_node))
		bind_to_node(p, size, os_node);
	return p;
}

void dd_numa_free(void *p, size_t size)
{
	if (!p)
		return;
	munmap(p, size);
}

struct dd_numa_arena {
	int os_node;
	int index; /* jemalloc arena, or -1 */
	_Atomic size_t allocated;
};

int dd_numa_arena_create(int os_node, struct dd_numa_arena **out)
{
	struct dd_numa_arena *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->os_node = os_node;
	a->index = -1;
#if DD_HAVE_JEMALLOC
	unsigned ind;
	size_t sz = sizeof(ind);
	int r = mallctl("arenas.create", &ind, &sz, NULL, 0);
	if (r != 0) {
		free(a);
		return -r;
	}
	a->index = (int)ind;
#endif
	*out = a;
	return 0;
}

void dd_numa_arena_destroy(struct dd_numa_arena *a)
{
	if (!a)
		return;
#if DD_HAVE_JEMALLOC
	if (a->index >= 0) {
		char name[64];
		snprintf(name, sizeof(name), "arena.%d.destroy", a->index);
		mallctl(name, NULL, NULL, NULL, 0);
	}
#endif
	free(a);
}

void *dd_numa_arena_alloc(struct dd_numa_arena *a, size_t size)
{
	if (size == 0)
		return NULL;
	long page = sysconf(_SC_PAGESIZE);
	bool big = size >= (size_t)page * 16;
	void *p;
#if DD_HAVE_JEMALLOC
	int flags = MALLOCX_ARENA((unsigned)a->index) | MALLOCX_TCACHE_NONE |
		    MALLOCX_ALIGN(big ? (size_t)page : 64);
	p = mallocx(size, flags);
	if (p && big && binding_useful(a->os_node))
		bind_to_node(p, size, a->os_node);
#else
	if (big) {
		p = dd_numa_alloc_onnode(size, a->os_node);
	} else {
		size_t rounded = (size + 63) & ~(size_t)63;
		p = aligned_alloc(64, rounded);
	}
#endif
	if (p)
		atomic_fetch_add_explicit(&a->allocated, size, memory_order_relaxed);
	return p;
}

void dd_numa_arena_free(struct dd_numa_arena *a, void *p, size_t size)
{
	if (!p)
		return;
	atomic_fetch_sub_explicit(&a->allocated, size, memory_order_relaxed);
#if DD_HAVE_JEMALLOC
	dallocx(p, MALLOCX_TCACHE_NONE);
#else
	long page = sysconf(_SC_PAGESIZE);
	if (size >= (size_t)page * 16)
		dd_numa_free(p, size);
	else
		free(p);
#endif
}

int dd_numa_arena_index(const struct dd_numa_arena *a)
{
	return a->index;
}

size_t dd_numa_arena_allocated(const struct dd_numa_arena *a)
{
	return atomic_load_explicit(&a->allocated, memory_order_relaxed);
}
