// SPDX-License-Identifier: MIT
/*
 * state.c's delta: a save that writes the header, the records and ops
 * rebuilding the answer from the base's items must stand for the whole
 * file byte for byte, over several saves against one base, with repeated,
 * skipped, changed, added, removed and reordered items; and a delta of
 * another base, a damaged one, or ops past their limit are told apart.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "hash.h"
#include "snapshot.h"
#include "state.h"

#define IDENTITY 0x5eedULL
#define NS	 1000000000LL

static struct snap_ctx ctx = { .hash_key = { 3, 4 }, .now_ns = 1000 * NS, .next_nodeid = 16 };

struct answer {
	char *body; /* as the parse left it: what a save writes */
	size_t len;
	uint64_t sent_hash; /* of the bytes as they were before the parse */
	struct snapshot *s;
};

/* the item at this place is preceded by ",\n", not ", " (the same length) */
static size_t odd_sep = SIZE_MAX;

/* n tasks; task i in state states[i] (0 leaves it out), items in the order @perm gives */
static char *make_body(size_t n, const int *states, const size_t *perm, const char *extra,
		       size_t *len)
{
	static const char *const names[] = { "", "COMPLETED", "IN_PROGRESS", "FAILED" };
	size_t cap = n * 300 + 1024, o = 0;
	char *b = malloc(cap);
	bool first = true;

	o += (size_t)snprintf(b + o, cap - o, "{\"@type\": \"Collection\", \"items\": [");
	for (size_t j = 0; j < n; j++) {
		size_t i = perm ? perm[j] : j;
		const char *sep;

		if (!states[i])
			continue;
		sep = first ? "" : j == odd_sep ? ",\n" : ", ";
		o += (size_t)snprintf(
			b + o, cap - o,
			"%s{\"@id\": \"/api/v4/managed-slicer/ingest-points/tasks/t%04zu\", "
			"\"@type\": \"ReservedEndpointTask\", \"id\": \"t%04zu\", "
			"\"state\": \"%s\", \"operation\": \"CREATE\", \"timestamp\": %zu}",
			sep, i, i, names[states[i]], 1660000000 + i);
		first = false;
	}
	o += (size_t)snprintf(b + o, cap - o, "%s], \"total_items\": %zu}", extra ? extra : "", n);
	*len = o;
	return b;
}

static bool parse(struct answer *a, size_t n, const int *states, const size_t *perm,
		  const char *extra, const struct snapshot *prev)
{
	char err[160] = "";

	a->body = make_body(n, states, perm, extra, &a->len);
	a->sent_hash = snapshot_body_hash(ctx.hash_key, a->body, a->len);
	ctx.now_ns += 2 * NS;
	if (snapshot_parse(a->body, a->len, prev, &ctx, &a->s, err, sizeof(err)) < 0) {
		fprintf(stderr, "parse: %s\n", err);
		return false;
	}
	return true;
}

/* what the daemon saves with @a: the hash of its answer as it arrived */
static struct state_meta meta(const struct answer *a, int64_t saved_ns)
{
	return (struct state_meta){ .identity = IDENTITY,
				    .saved_ns = saved_ns,
				    .fetched_ns = saved_ns,
				    .body_hash = a->sent_hash,
				    .feed_gen = 1 };
}

/* the whole state file a save of @a writes, saved at @saved_ns */
static unsigned char *whole_file(const struct answer *a, int64_t saved_ns, size_t *len)
{
	struct state_meta m = meta(a, saved_ns);

	return state_encode_whole(a->s, a->body, a->len, &ctx, &m, len);
}

static uint32_t trailer_crc(const unsigned char *f, size_t len)
{
	return (uint32_t)f[len - 8] | (uint32_t)f[len - 7] << 8 | (uint32_t)f[len - 6] << 16 |
	       (uint32_t)f[len - 5] << 24;
}

/* the delta a save of @a against @base (@blen bytes, saved at @base_ns) writes; NULL over @limit */
static unsigned char *delta_file(const struct answer *a, const unsigned char *base, size_t blen,
				 int64_t base_ns, size_t limit, size_t *len, size_t *ops_len)
{
	struct state_meta m = meta(a, base_ns + NS);
	unsigned char *d = state_encode_delta(a->s, a->body, a->len, &ctx, &m, base_ns,
					      trailer_crc(base, blen), limit, len);

	/* the delta header says how long the ops are (u64 at 40) */
	if (d) {
		*ops_len = 0;
		for (int i = 7; i >= 0; i--)
			*ops_len = *ops_len << 8 | d[40 + i];
	}
	return d;
}

static int apply(const unsigned char *base, size_t blen, const unsigned char *d, size_t dlen,
		 char **out, size_t *olen, char *err)
{
	char *copy = malloc(blen);
	int ret;

	memcpy(copy, base, blen);
	ret = state_apply_delta(copy, blen, d, dlen, IDENTITY, 1 << 24, out, olen, err, 160);
	free(copy);
	return ret;
}

/* @a's delta against the base rebuilds the whole file @a would save, and restores to @a */
static void check_rebuilds(const struct answer *a, const unsigned char *base, size_t blen,
			   int64_t base_ns, size_t max_ops)
{
	size_t dlen, olen = 0, wlen, rlen = 0;
	unsigned char *d = delta_file(a, base, blen, base_ns, SIZE_MAX, &dlen, &olen);
	unsigned char *whole = whole_file(a, base_ns + NS, &wlen);
	char *out = NULL, err[160] = "";
	struct snap_ctx rctx = { 0 };
	struct snapshot *r = NULL;
	struct state st;

	CHECK(d != NULL);
	if (!d) {
		free(whole);
		return;
	}
	CHECK(olen <= max_ops); /* runs, not an op per item */
	CHECK(apply(base, blen, d, dlen, &out, &rlen, err) == 0);
	CHECK(out && rlen == wlen && memcmp(out, whole, wlen) == 0);
	if (out &&
	    state_restore(out, rlen, IDENTITY, 1 << 24, &rctx, &r, &st, err, sizeof(err)) == 0) {
		CHECK(r->ntasks == a->s->ntasks && r->nnodes == a->s->nnodes);
		for (size_t i = 0; i < r->ntasks && i < a->s->ntasks; i++)
			for (int k = 0; k < SNAP_NKINDS; k++)
				CHECK(r->tasks[i].file[k].nodeid == a->s->tasks[i].file[k].nodeid);
		snapshot_put(r);
	} else {
		CHECK(!"restores");
		fprintf(stderr, "restore: %s\n", err);
	}
	free(out);
	free(d);
	free(whole);
}

int main(void)
{
	enum { N = 300 };
	int states[N];
	size_t perm[N], len, blen, dlen, olen;
	struct answer a[6];
	unsigned char *base, *d;
	char *out = NULL, err[160];
	int64_t base_ns = 1700000000 * NS;

	for (size_t i = 0; i < N; i++) {
		states[i] = 1 + (int)(i % 3);
		perm[i] = i;
	}
	/* the base: task 299 not yet there */
	states[N - 1] = 0;
	CHECK(parse(&a[0], N, states, NULL, NULL, NULL));
	state_mark_base(a[0].s);
	for (size_t i = 0; i < a[0].s->ntasks; i++)
		CHECK(a[0].s->tasks[a[0].s->order[i]].base_pos == i + 1);
	base = whole_file(&a[0], base_ns, &blen);

	/* the same answer: one run; its ops are a few bytes */
	CHECK(parse(&a[1], N, states, NULL, NULL, a[0].s));
	check_rebuilds(&a[1], base, blen, base_ns, 80);

	/* 5 changed, 1 gone, 1 new, two swapped, an item repeated and one not strict JSON */
	for (size_t i = 10; i < 260; i += 50)
		states[i] = states[i] % 3 + 1;
	states[120] = 0;
	states[N - 1] = 2;
	perm[200] = 201;
	perm[201] = 200;
	CHECK(parse(&a[2], N, states, perm, ", {\"id\": \"t0007\"}, {\"id\": \"bad\", \"x\": 01}",
		    a[1].s));
	CHECK(a[2].s->stats.duplicates == 1 && a[2].s->stats.skipped == 1);
	check_rebuilds(&a[2], base, blen, base_ns, 4000);

	/* a later answer still against the same base: more changes add up, and
	 * a gap of the same length but other bytes inside a run of unchanged items */
	states[5] = states[5] % 3 + 1;
	odd_sep = 150;
	CHECK(parse(&a[3], N, states, perm, NULL, a[2].s));
	check_rebuilds(&a[3], base, blen, base_ns, 5000);

	/* an escape repaired (a lone surrogate): the bytes saved are not those
	 * sent, so the answer is checked by a CRC instead of the hash sent */
	CHECK(parse(&a[5], N, states, perm, ", {\"id\": \"t0008\", \"x\": \"\\ud800\"}", a[3].s));
	CHECK(a[5].s->stats.repaired == 1 && strstr(a[5].body, "\\u0001") != NULL);
	check_rebuilds(&a[5], base, blen, base_ns, 5000);
	d = delta_file(&a[5], base, blen, base_ns, SIZE_MAX, &dlen, &olen);
	CHECK(d && d[56] == 0 && (d[28] | d[29] | d[30] | d[31]) != 0);
	free(d);
	d = delta_file(&a[3], base, blen, base_ns, SIZE_MAX, &dlen, &olen);
	CHECK(d && d[56] == 2);
	if (d) {
		/* a delta from before the answer hash was SipHash-1-3 (check 1, a
		 * SipHash-2-4 answer hash in its header) still applies; with the
		 * 1-3 hash under check 1, it does not */
		size_t hash_at = STATE_DELTA_HEADER_LEN + 88, wlen;
		const uint64_t k[2] = { ~ctx.hash_key[0], ctx.hash_key[1] };
		uint64_t h24 = hash_siphash24(k, a[3].body, a[3].len);
		unsigned char *old = malloc(dlen), *whole = whole_file(&a[3], base_ns + NS, &wlen);

		memcpy(old, d, dlen);
		old[56] = 1;
		state_put32(old + dlen - 8, (uint32_t)crc32_z(0, old, dlen - STATE_TRAILER_LEN));
		CHECK(apply(base, blen, old, dlen, &out, &len, err) == -EINVAL && !out);
		for (int i = 0; i < 8; i++)
			old[hash_at + i] = (unsigned char)(h24 >> (8 * i));
		state_put32(old + dlen - 8, (uint32_t)crc32_z(0, old, dlen - STATE_TRAILER_LEN));
		CHECK(apply(base, blen, old, dlen, &out, &len, err) == 0 && out);
		CHECK(out && whole && len == wlen &&
		      memcmp(out + len - STATE_TRAILER_LEN - a[3].len, a[3].body, a[3].len) == 0);
		free(out);
		out = NULL;
		free(old);
		free(whole);
	}
	if (d) { /* the hash sent does not match what the ops rebuild */
		size_t hash_at = STATE_DELTA_HEADER_LEN + 88;

		d[hash_at] ^= 1;
		state_put32(d + dlen - 8, (uint32_t)crc32_z(0, d, dlen - STATE_TRAILER_LEN));
		CHECK(apply(base, blen, d, dlen, &out, &len, err) == -EINVAL && !out);
		free(d);
	}

	/* ops over their limit: no delta (the save is whole) */
	CHECK(delta_file(&a[3], base, blen, base_ns, 100, &dlen, &olen) == NULL);

	/* a delta of another base is ignored; a damaged one is refused */
	d = delta_file(&a[3], base, blen, base_ns - 1, SIZE_MAX, &dlen, &olen);
	CHECK(d && apply(base, blen, d, dlen, &out, &len, err) == 1 && !out);
	free(d);
	d = delta_file(&a[3], base, blen, base_ns, SIZE_MAX, &dlen, &olen);
	CHECK(d != NULL);
	if (d) {
		/* a literal byte changed, the delta's checksum made right again */
		d[dlen - STATE_TRAILER_LEN - 3] ^= 1;
		state_put32(d + dlen - 8, (uint32_t)crc32_z(0, d, dlen - STATE_TRAILER_LEN));
		CHECK(apply(base, blen, d, dlen, &out, &len, err) == -EINVAL && !out);
		CHECK(strstr(err, "does not rebuild") != NULL);
		/* and without its checksum made right */
		d[10] ^= 1;
		CHECK(apply(base, blen, d, dlen, &out, &len, err) == -EINVAL);
		CHECK(apply(base, blen, d, STATE_DELTA_HEADER_LEN, &out, &len, err) == -EINVAL);
		/* a damaged base is refused before the delta is used */
		base[STATE_HEADER_LEN + 3] ^= 1;
		d[10] ^= 1;
		state_put32(d + dlen - 8, (uint32_t)crc32_z(0, d, dlen - STATE_TRAILER_LEN));
		CHECK(apply(base, blen, d, dlen, &out, &len, err) == -EINVAL);
		base[STATE_HEADER_LEN + 3] ^= 1;
		free(d);
	}

	/* a new base: its delta is a run again */
	state_mark_base(a[3].s);
	free(base);
	base = whole_file(&a[3], base_ns + 10 * NS, &blen);
	states[6] = states[6] % 3 + 1;
	CHECK(parse(&a[4], N, states, perm, NULL, a[3].s));
	check_rebuilds(&a[4], base, blen, base_ns + 10 * NS, 1500);

	for (int i = 0; i < 6; i++) {
		snapshot_put(a[i].s);
		free(a[i].body);
	}
	free(base);
	return check_done("test_delta");
}
