/* Several shards on made-up nodes: routing, affinity, ids, stats. */
#include "util.h"

Test(shards, pretend_nodes_make_shards_and_route_by_affinity)
{
	struct dd_config c;
	dd_config_init(&c);
	c.pretend_nodes = 4;
	struct dd_engine *e = make_engine(&c);
	cr_assert_eq(dd_engine_shards(e), 4);
	for (unsigned s = 0; s < 4; s++)
		cr_assert_eq(dd_engine_shard_node(e, s), (int)s);
	for (int node = 0; node < 4; node++) {
		struct dd_job_spec s = spec("ok");
		s.node = node;
		uint64_t id = submit_ok(e, &s);
		struct dd_job_info info;
		cr_assert_eq(wait_state(e, id, &info), DD_SUCCEEDED);
		cr_assert_eq(dd_engine_shard_node(e, info.shard), node);
		cr_assert_eq(id >> 56, info.shard, "the id carries its shard");
	}
	struct dd_job_spec s = spec("ok");
	s.shard = 2;
	struct dd_job_info info;
	cr_assert_eq(wait_state(e, submit_ok(e, &s), &info), DD_SUCCEEDED);
	cr_assert_eq(info.shard, 2);
	s = spec("ok");
	s.node = 7;
	uint64_t id;
	cr_assert_eq(dd_submit(e, &s, 0, &id), -EINVAL);
	dd_engine_destroy(e);
}

Test(shards, round_robin_spreads_batches)
{
	struct dd_config c;
	dd_config_init(&c);
	c.pretend_nodes = 2;
	c.shards = 4; /* two shards per node */
	struct dd_engine *e = make_engine(&c);
	struct dd_job_spec specs[256];
	uint64_t ids[256];
	for (int i = 0; i < 256; i++)
		specs[i] = spec("ok");
	size_t done = 0;
	for (int round = 0; round < 8; round++) {
		cr_assert_eq(dd_submit_batch(e, specs, 256, DD_SUBMIT_BLOCK, ids, &done), 0);
		cr_assert_eq(done, 256);
	}
	for (int i = 0; i < 256; i++)
		cr_assert_eq(wait_state(e, ids[i], NULL), DD_SUCCEEDED);
	struct dd_stats st;
	dd_stats(e, &st);
	cr_assert_eq(st.nshards, 4);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_gt(st.shard[i].submitted, 0, "shard %u got nothing", i);
	cr_assert_eq(st.total.submitted, 8 * 256);
	dd_engine_destroy(e);
}
