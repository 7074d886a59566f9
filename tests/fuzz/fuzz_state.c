// SPDX-License-Identifier: MIT
/*
 * libFuzzer: state file bytes -> state_restore().  A damaged or hostile
 * file must be refused with a message, never crash, leak or leave the
 * context changed; one that is accepted must give a snapshot whose node
 * ids are unique, inside the allocator, and findable.
 *
 * The first input byte picks a mode: odd bytes feed the rest as it is
 * (the checksum guards it, so this mostly tests the guards), even bytes
 * first give it this harness's identity and a correct checksum, so the
 * fuzzer reaches the records and the answer behind them.
 */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "snapshot.h"
#include "state.h"

#define IDENTITY 0x1234567890abcdefULL
#define MAX_BODY (64u << 10)

static void check(const struct snapshot *s, const struct snap_ctx *ctx)
{
	for (size_t i = 0; i < s->nnodes; i++) {
		const struct snap_task *t;
		enum snap_kind kind;

		if (s->nodes[i].nodeid < SNAP_FIRST_FILE_NODEID ||
		    s->nodes[i].nodeid >= ctx->next_nodeid)
			abort();
		if (i && s->nodes[i].nodeid <= s->nodes[i - 1].nodeid)
			abort();
		if (!snapshot_find_node(s, s->nodes[i].nodeid, &t, &kind) ||
		    t->file[kind].nodeid != s->nodes[i].nodeid ||
		    t->file[kind].mtime_ns > ctx->newest_ns)
			abort();
	}
	for (size_t i = 0; i < s->ntasks; i++)
		if (snapshot_find_key(s, s->tasks[i].key) != &s->tasks[i])
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snap_ctx ctx = { .hash_key = { 1, 2 }, .next_nodeid = 16, .newest_ns = 5 };
	struct snap_ctx before;
	struct snapshot *s = NULL;
	struct state st;
	char err[192];
	char *buf;
	int ret;

	if (size < 1)
		return 0;
	buf = malloc(size);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	size--;
	if (!(data[0] & 1) && size >= STATE_HEADER_LEN + STATE_TRAILER_LEN) {
		uint64_t id = htole64(IDENTITY);
		uint32_t crc;

		memcpy(buf + 16, &id, sizeof(id));
		crc = htole32(
			(uint32_t)crc32_z(0, (const unsigned char *)buf, size - STATE_TRAILER_LEN));
		memcpy(buf + size - STATE_TRAILER_LEN, &crc, sizeof(crc));
		memset(buf + size - 4, 0, 4);
	}
	before = ctx;
	err[0] = '\0';
	ret = state_restore(buf, size, IDENTITY, MAX_BODY, &ctx, &s, &st, err, sizeof(err));
	if (ret < 0) {
		if (s || !err[0] || ctx.next_nodeid != before.next_nodeid ||
		    ctx.newest_ns != before.newest_ns || ctx.hash_key[0] != before.hash_key[0] ||
		    ctx.hash_key[1] != before.hash_key[1])
			abort();
	} else {
		if (!s || st.tasks || ctx.next_nodeid != st.next_nodeid)
			abort();
		check(s, &ctx);
		snapshot_put(s);
	}
	free(buf);
	return 0;
}
