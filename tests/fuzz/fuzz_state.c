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
 * fuzzer reaches the records and the answer behind them.  Even bytes with
 * bit 1 set take the rest as a state.delta on top of a fixed base (its
 * base fields and checksum made right): state_apply_delta must refuse it
 * with a message or give a whole state that state_restore checks as above.
 *
 * FUZZ_STATE_SEEDS=DIR in the environment writes a seed of each kind to
 * DIR (tests/fuzz/corpus/state holds them).
 */
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
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

#define BASE_NS 1700000000000000000LL

#define ITEM(id, state)                                                                \
	"{\"@id\": \"/api/v4/managed-slicer/ingest-points/tasks/" id "\", \"@type\": " \
	"\"ReservedEndpointTask\", \"id\": \"" id "\", \"state\": \"" state "\", "     \
	"\"operation\": \"CREATE\", \"timestamp\": 1660000000}"

static const char base_answer[] =
	"{\"items\": [" ITEM("a", "COMPLETED") ", " ITEM("b", "FAILED") ", " ITEM(
		"c", "PENDING") ", " ITEM("d", "COMPLETED") "], \"total_items\": 4}";
static const char next_answer[] =
	"{\"items\": [" ITEM("a", "COMPLETED") ", " ITEM("b", "COMPLETED") ", " ITEM(
		"c",
		"PENDING") ", " ITEM("d",
				     "COMPLETED") ", " ITEM("e",
							    "PENDING") "], \"total_items\": 5}";

/* the fixed base: a whole state file of base_answer, and a delta of next_answer on it */
static unsigned char *base_file, *seed_delta;
static size_t base_len, seed_delta_len;

static struct snapshot *build(const char *json, const struct snapshot *prev, struct snap_ctx *ctx,
			      char **body)
{
	struct snapshot *s = NULL;
	char err[160];

	*body = strdup(json);
	if (!*body || snapshot_parse(*body, strlen(json), prev, ctx, &s, err, sizeof(err)) < 0)
		abort();
	return s;
}

static void write_seed(const char *dir, const char *name, unsigned char mode,
		       const unsigned char *p, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fputc(mode, f) == EOF || fwrite(p, 1, len, f) != len || fclose(f) != 0)
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct snap_ctx ctx = { .hash_key = { 5, 6 }, .now_ns = BASE_NS, .next_nodeid = 16 };
	struct state_meta m = { .identity = IDENTITY, .saved_ns = BASE_NS, .feed_gen = 1 };
	const char *dir = getenv("FUZZ_STATE_SEEDS");
	char *b1, *b2;
	struct snapshot *s1 = build(base_answer, NULL, &ctx, &b1), *s2;
	uint32_t crc;

	state_mark_base(s1);
	base_file = state_encode_whole(s1, b1, strlen(b1), &ctx, &m, &base_len);
	if (!base_file)
		abort();
	memcpy(&crc, base_file + base_len - 8, 4);
	ctx.now_ns += 2000000000;
	s2 = build(next_answer, s1, &ctx, &b2);
	m.saved_ns += 2000000000;
	/* the hash of the answer as it arrived checks the rebuilt one */
	m.body_hash = snapshot_body_hash(ctx.hash_key, next_answer, strlen(next_answer));
	seed_delta = state_encode_delta(s2, b2, strlen(b2), &ctx, &m, BASE_NS, le32toh(crc),
					SIZE_MAX, &seed_delta_len);
	if (!seed_delta)
		abort();
	if (dir) {
		write_seed(dir, "whole", 0, base_file, base_len);
		write_seed(dir, "delta", 2, seed_delta, seed_delta_len);
	}
	snapshot_put(s1);
	snapshot_put(s2);
	free(b1);
	free(b2);
	return 0;
}

/* @d (@len bytes, a delta) on the fixed base: refused with a message, or restored and checked */
static void try_delta(unsigned char *d, size_t len)
{
	struct snap_ctx ctx = { .hash_key = { 1, 2 }, .next_nodeid = 16, .newest_ns = 5 };
	char *base = malloc(base_len), *whole = NULL, err[192] = "";
	struct snapshot *s = NULL;
	struct state st;
	size_t wlen = 0;
	int ret;

	if (!base)
		return;
	memcpy(base, base_file, base_len);
	if (len >= STATE_DELTA_HEADER_LEN + STATE_TRAILER_LEN) {
		/* names the fixed base; its checksum right */
		memcpy(d + 16, seed_delta + 16, 12);
		state_put32(d + len - 8, (uint32_t)crc32_z(0, d, len - STATE_TRAILER_LEN));
		memset(d + len - 4, 0, 4);
	}
	ret = state_apply_delta(base, base_len, d, len, IDENTITY, MAX_BODY, &whole, &wlen, err,
				sizeof(err));
	if (ret < 0 && (whole || !err[0]))
		abort();
	if (ret == 1 && whole)
		abort();
	if (ret == 0) {
		if (!whole)
			abort();
		if (state_restore(whole, wlen, IDENTITY, MAX_BODY, &ctx, &s, &st, err,
				  sizeof(err)) == 0) {
			check(s, &ctx);
			snapshot_put(s);
		}
	}
	free(whole);
	free(base);
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
	if ((data[0] & 3) == 2) {
		try_delta((unsigned char *)buf, size);
		free(buf);
		return 0;
	}
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
