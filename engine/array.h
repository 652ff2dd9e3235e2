/* engine/ — job arrays (array.c): an array's own job holds a struct
 * dd_array; its elements are made from it a window at a time as they can
 * run, so that a pending element costs nothing but its id. Reactor only,
 * except dd_array_new()/dd_array_drop() (the submitting thread) and
 * dd_array_index() (any thread: what it reads never changes). */
#ifndef DD_ENGINE_ARRAY_H
#define DD_ENGINE_ARRAY_H

#include "engine.h"

struct dd_array {
	uint64_t id;               /* the array's own job; element k is id + 1 + k */
	struct dd_jobrec *parent;  /* that job while in memory, else NULL */
	unsigned refs;             /* the records pointing here */
	unsigned nranges;
	struct dd_array_range *ranges;
	uint64_t *before;          /* [i]: elements in ranges [0, i) */
	uint64_t count;            /* elements */
	uint64_t next;             /* elements [0, next) were made (or settled
				    * unmade: the array ended first) */
	uint64_t low;              /* elements below it have ended */
	uint32_t max_running;      /* 0: no cap */
	uint32_t live;             /* made and not ended */
	uint64_t ended[4];         /* by terminal state, SUCCEEDED first */
	bool cancelled;            /* make no more: dd_cancel() named it */
	bool active;               /* in s->act */
	bool settled;              /* the unmade elements were settled */
	struct dd_cmd *waiters;    /* dd_wait() on elements not made yet */
	uint64_t corr_id;          /* aftercorr: the array its elements follow */
	struct dd_array *corr;     /* ...once looked up (a reference), or NULL */
};

/* A copy of @sp (validated) in @s's arena, or NULL (no memory). */
struct dd_array *dd_array_new(struct dd_shard *s, const struct dd_array_spec *sp);
/* Frees one that never reached the reactor. */
void dd_array_drop(struct dd_shard *s, struct dd_array *a);
/* -EINVAL unless @sp is well formed; *count its elements. */
int dd_array_check(const struct dd_array_spec *sp, uint64_t *count);
/* The index of element @ord. */
uint32_t dd_array_index(const struct dd_array *a, uint64_t ord);

/* @j, just arrived (or recovered), is @a's own job or one of its elements
 * (j->id says which): links them. */
void dd_array_attach(struct dd_shard *s, struct dd_jobrec *j, struct dd_array *a);
/* The record @j leaves memory. */
void dd_array_detach(struct dd_shard *s, struct dd_jobrec *j);
/* The array @a (its own job @id) could not be held (no memory): none of
 * its elements will be; their fate is final and what waits on them told. */
void dd_array_never(struct dd_shard *s, const struct dd_array *a, uint64_t id);
/* An element could not be held (no memory): it counts as failed. */
void dd_array_unborn(struct dd_shard *s, struct dd_array *a);
/* An array's own job is ready: its elements may be made. */
void dd_array_ready(struct dd_shard *s, struct dd_jobrec *j);
/* Makes elements of ready arrays, as many as their windows allow. */
size_t dd_array_fill(struct dd_shard *s);
/* An element started (@j RUNNING). */
void dd_array_started(struct dd_shard *s, struct dd_jobrec *j);
/* @j (an element or an array's own job) ended in @st. */
void dd_array_ended(struct dd_shard *s, struct dd_jobrec *j, enum dd_state st, const char *reason);
/* dd_job_cancel() of an array's own job. */
int dd_array_cancel(struct dd_shard *s, struct dd_jobrec *j, enum dd_state how, const char *reason);
/* The array fields of @info for @j. */
void dd_array_info(const struct dd_shard *s, const struct dd_jobrec *j, struct dd_job_info *info);
/* The array whose elements include @id and whose own job is in memory,
 * or NULL. */
struct dd_array *dd_array_of(const struct dd_shard *s, uint64_t id);
/* An element @id of @a not made yet: as dd_job_get() shows it. */
void dd_array_unmade_info(const struct dd_shard *s, const struct dd_array *a, uint64_t id,
			  struct dd_job_info *info);
/* Whether element @id of @a is not made yet (and will be). */
bool dd_array_unmade(const struct dd_array *a, uint64_t id);
/* Parks a dd_wait() on @a's element c->id, not made yet. */
void dd_array_wait(struct dd_array *a, struct dd_cmd *c);
void dd_array_destroy(struct dd_shard *s);

static inline bool dd_array_own(const struct dd_jobrec *j)
{
	return j->arr && j->arr->parent == j;
}

#endif
