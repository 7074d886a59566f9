// SPDX-License-Identifier: MIT
/* The state file's format: encoding, checking, restoring.  Pure: no I/O.
 * (The delta between whole saves is state_delta.c.) */
#include "state.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bigmem.h"
#include "hash.h"
#include "state_priv.h"

static const char state_magic[8] = { 'I', 'F', 'S', 'S', 'T', 'A', 'T', 'E' };

/* every task takes at least {"id":"x"} of the answer: a bound on records */
#define STATE_MIN_ITEM 10
/* the fewest bytes a task record takes: folder mtime and four files */
#define STATE_MIN_RECORD 5
/* the most: a 10-byte varint for each number */
#define STATE_MAX_RECORD (10 + SNAP_NKINDS * 30)

/* a signed difference as an unsigned number: 0, -1, 1, -2, ... -> 0, 1, 2, 3 */
static uint64_t zigzag(int64_t a, int64_t b)
{
	uint64_t d = (uint64_t)a - (uint64_t)b;

	return (d << 1) ^ (uint64_t)((int64_t)d >> 63);
}

static int64_t unzigzag(int64_t base, uint64_t z)
{
	uint64_t d = (z >> 1) ^ (~(z & 1) + 1);

	return (int64_t)((uint64_t)base + d);
}

void state_put32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

/* ---- what the files look like ---- */

uint64_t state_render_fingerprint(void)
{
	static const char probe[] =
		"{\"items\": [{\"@id\": \"/x\", \"id\": \"a\\u00e9\\\"b\", \"state\": \"S\\n\","
		"\"operation\": 7, \"timestamp\": 1.50e3, \"n\": [null, true, {\"k\": -0.0}],"
		"\"u\": \"\\ud83d\\ude00\\/\"}, {\"id\": \"b\", \"state\": null}],"
		"\"total_items\": 2}";
	static const uint64_t key[2] = { 0x72656e6465720a00ULL, 0x66696e6765727072ULL };
	static uint64_t fp;
	struct snap_ctx ctx = { .hash_key = { 1, 2 }, .next_nodeid = SNAP_FIRST_FILE_NODEID };
	struct snapshot *s;
	char body[sizeof(probe)], err[160];
	uint64_t h = 0;

	if (fp)
		return fp;
	memcpy(body, probe, sizeof(probe));
	if (snapshot_parse(body, sizeof(probe) - 1, NULL, &ctx, &s, err, sizeof(err)) < 0)
		return 1; /* out of memory: a value no file holds, so nothing matches */
	for (size_t i = 0; i < s->ntasks; i++) {
		for (int k = 0; k < SNAP_NKINDS; k++) {
			const struct snap_file *f = &s->tasks[i].file[k];
			const char *data;
			char *to_free;

			if (!f->nodeid)
				continue;
			data = snap_file_read(s, &s->tasks[i], (enum snap_kind)k, &to_free);
			if (!data) {
				snapshot_put(s);
				return 1;
			}
			h = h * 31 + hash_siphash24(key, data, f->len);
			free(to_free);
		}
	}
	snapshot_put(s);
	fp = h | 2; /* never 0 or 1 */
	return fp;
}

/* ---- decoding ---- */

int state_decode_header(const unsigned char *b, size_t len, uint64_t identity, size_t max_body,
			struct state *st, char *err, size_t errlen)
{
	uint64_t ntasks, records, body_len, room;

	if (len < STATE_HEADER_LEN + STATE_TRAILER_LEN)
		return fail(err, errlen, "truncated");
	if (memcmp(b, state_magic, sizeof(state_magic)) != 0)
		return fail(err, errlen, "not an ingestfs state file");
	if (get32(b + 8) != STATE_VERSION) {
		snprintf(err, errlen,
			 "format %u, from another version of ingestfs (this one reads %d)",
			 get32(b + 8), STATE_VERSION);
		return -EINVAL;
	}
	if (get32(b + 12) != STATE_HEADER_LEN)
		return fail(err, errlen, "damaged header");
	memset(st, 0, sizeof(*st));
	st->identity = get64(b + 16);
	if (st->identity != identity)
		return fail(err, errlen, "belongs to another mount (api_url, endpoint or user)");
	if (get64(b + 96) != state_render_fingerprint())
		return fail(err, errlen,
			    "written by a version of ingestfs that shows files differently");
	st->hash_key[0] = get64(b + 24);
	st->hash_key[1] = get64(b + 32);
	st->next_nodeid = get64(b + 40);
	st->newest_ns = (int64_t)get64(b + 48);
	st->saved_ns = (int64_t)get64(b + 56);
	st->fetched_ns = (int64_t)get64(b + 64);
	st->root_mtime_ns = (int64_t)get64(b + 72);
	st->views_mtime_ns = (int64_t)get64(b + 80);
	st->body_hash = get64(b + 88);
	ntasks = get64(b + 104);
	records = get64(b + 112);
	body_len = get64(b + 120);
	st->feed_gen = get64(b + 128);
	st->feed_len = get64(b + 136);
	room = len - STATE_HEADER_LEN - STATE_TRAILER_LEN;
	if (body_len > max_body)
		return fail(err, errlen, "its answer is larger than max_response");
	if (body_len > room || records != room - body_len || ntasks > records / STATE_MIN_RECORD ||
	    ntasks > body_len / STATE_MIN_ITEM)
		return fail(err, errlen, "sizes do not add up (truncated or damaged)");
	if (st->next_nodeid < SNAP_FIRST_FILE_NODEID || st->next_nodeid > SNAP_LAST_FILE_NODEID + 1)
		return fail(err, errlen, "node id allocator out of range");
	/* a generation's node id is SNAP_EVENTS_NODEID_BASE + it: far below the folders' */
	if (st->feed_gen < 1 || st->feed_gen > STATE_MAX_FEED_GEN)
		return fail(err, errlen, "change feed generation out of range");
	st->ntasks = (size_t)ntasks;
	st->records_len = (size_t)records;
	st->body_len = (size_t)body_len;
	return 0;
}

/*
 * Records, one a task in key order, every number a varint: the folder's
 * mtime (zigzag delta from the task before), then per file (state,
 * operation, timestamp, raw.json) 0 when there is none, else 1 + the
 * zigzag delta of its node id from the file before, the zigzag delta of
 * its mtime from the file before, and its size.  Within one answer node
 * ids run 1 apart and stamps 1 ns apart, so a task takes about 15 bytes.
 */
static int decode_records(const unsigned char *p, const unsigned char *end, struct state *st,
			  char *err, size_t errlen)
{
	int64_t mtime = 0, file_mtime = 0;
	uint64_t nodeid = 0, v;

	st->tasks = big_malloc(sizeof(*st->tasks) * (st->ntasks + 1));
	if (!st->tasks) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < st->ntasks; i++) {
		struct state_task *t = &st->tasks[i];

		if (!get_varint(&p, end, &v))
			return fail(err, errlen, "task records cut short");
		t->mtime = mtime = unzigzag(mtime, v);
		for (int k = 0; k < SNAP_NKINDS; k++) {
			uint64_t m, len;

			if (!get_varint(&p, end, &v))
				return fail(err, errlen, "task records cut short");
			if (v == 0) {
				memset(&t->file[k], 0, sizeof(t->file[k]));
				continue;
			}
			if (!get_varint(&p, end, &m) || !get_varint(&p, end, &len))
				return fail(err, errlen, "task records cut short");
			nodeid = (uint64_t)unzigzag((int64_t)nodeid, v - 1);
			file_mtime = unzigzag(file_mtime, m);
			if (nodeid < SNAP_FIRST_FILE_NODEID || nodeid >= st->next_nodeid)
				return fail(err, errlen, "a node id beyond the allocator");
			if (file_mtime > st->newest_ns)
				return fail(err, errlen, "an mtime newer than the newest stamp");
			if (len > UINT32_MAX)
				return fail(err, errlen, "a file size out of range");
			t->file[k].nodeid = nodeid;
			t->file[k].mtime_ns = file_mtime;
			t->file[k].len = (uint32_t)len;
		}
	}
	if (p != end)
		return fail(err, errlen, "bytes after the task records");
	return 0;
}

int state_decode(char *buf, size_t len, uint64_t identity, size_t max_body, struct state *st,
		 char *err, size_t errlen)
{
	const unsigned char *b = (const unsigned char *)buf;
	int ret = state_decode_header(b, len, identity, max_body, st, err, errlen);

	if (ret < 0)
		return ret;
	if (get32(b + len - 4) != 0 ||
	    get32(b + len - 8) != (uint32_t)crc32_z(0, b, len - STATE_TRAILER_LEN))
		return fail(err, errlen, "checksum mismatch (damaged)");
	ret = decode_records(b + STATE_HEADER_LEN, b + STATE_HEADER_LEN + st->records_len, st, err,
			     errlen);
	if (ret < 0) {
		state_release(st);
		return ret;
	}
	st->body = buf + STATE_HEADER_LEN + st->records_len;
	st->body[st->body_len] = '\0'; /* over the trailer: already checked */
	return 0;
}

void state_release(struct state *st)
{
	free(st->tasks);
	st->tasks = NULL;
	st->body = NULL;
}

/* Give @s, parsed from st->body, the identities @st recorded. */
static int adopt(struct snapshot *s, const struct state *st, char *err, size_t errlen)
{
	int ret;

	if (s->ntasks != st->ntasks) {
		snprintf(err, errlen, "records %zu tasks, its answer %zu", st->ntasks, s->ntasks);
		return -EINVAL;
	}
	for (size_t i = 0; i < s->ntasks; i++) {
		struct snap_task *t = &s->tasks[i];
		const struct state_task *r = &st->tasks[i];

		for (int k = 0; k < SNAP_NKINDS; k++)
			if (!t->file[k].nodeid != !r->file[k].nodeid ||
			    (t->file[k].nodeid && t->file[k].len != r->file[k].len))
				return fail(err, errlen, "its files do not match its answer");
	}
	for (size_t i = 0; i < s->ntasks; i++) {
		struct snap_task *t = &s->tasks[i];
		const struct state_task *r = &st->tasks[i];

		t->mtime = r->mtime;
		for (int k = 0; k < SNAP_NKINDS; k++) {
			t->file[k].nodeid = r->file[k].nodeid;
			t->file[k].mtime_ns = r->file[k].mtime_ns;
		}
	}
	s->mtime_ns = st->root_mtime_ns;
	s->views_mtime_ns = st->views_mtime_ns;
	ret = snapshot_reindex(s);
	if (ret == -EINVAL)
		snprintf(err, errlen, "two files share one node id");
	else if (ret < 0)
		snprintf(err, errlen, "out of memory");
	return ret;
}

int state_restore(char *buf, size_t len, uint64_t identity, size_t max_body, struct snap_ctx *ctx,
		  struct snapshot **out, struct state *st, char *err, size_t errlen)
{
	struct snap_ctx scratch;
	struct snapshot *s;
	char perr[160];
	int ret;

	*out = NULL;
	ret = state_decode(buf, len, identity, max_body, st, err, errlen);
	if (ret < 0)
		return ret;
	/* parsed as if new; adopt() then puts the recorded identities on */
	memset(&scratch, 0, sizeof(scratch));
	memcpy(scratch.hash_key, st->hash_key, sizeof(scratch.hash_key));
	scratch.now_ns = st->newest_ns;
	scratch.newest_ns = st->newest_ns;
	scratch.next_nodeid = st->next_nodeid;
	ret = snapshot_parse(st->body, st->body_len, NULL, &scratch, &s, perr, sizeof(perr));
	if (ret < 0) {
		snprintf(err, errlen, "its answer does not parse: %s", perr);
		state_release(st);
		return ret == -ENOMEM ? ret : -EINVAL;
	}
	ret = adopt(s, st, err, errlen);
	state_release(st);
	if (ret < 0) {
		snapshot_put(s);
		return ret;
	}
	memcpy(ctx->hash_key, st->hash_key, sizeof(ctx->hash_key));
	ctx->next_nodeid = st->next_nodeid;
	if (ctx->newest_ns < st->newest_ns)
		ctx->newest_ns = st->newest_ns;
	*out = s;
	return 0;
}

/* ---- encoding ---- */

void state_encode_header(unsigned char *h, const struct snapshot *s, uint64_t identity,
			 const struct snap_ctx *ctx, int64_t saved_ns, int64_t fetched_ns,
			 uint64_t body_hash, uint64_t feed_gen, uint64_t feed_len,
			 size_t records_len, size_t body_len)
{
	memset(h, 0, STATE_HEADER_LEN);
	memcpy(h, state_magic, sizeof(state_magic));
	state_put32(h + 8, STATE_VERSION);
	state_put32(h + 12, STATE_HEADER_LEN);
	put64(h + 16, identity);
	put64(h + 24, ctx->hash_key[0]);
	put64(h + 32, ctx->hash_key[1]);
	put64(h + 40, ctx->next_nodeid);
	put64(h + 48, (uint64_t)ctx->newest_ns);
	put64(h + 56, (uint64_t)saved_ns);
	put64(h + 64, (uint64_t)fetched_ns);
	put64(h + 72, (uint64_t)s->mtime_ns);
	put64(h + 80, (uint64_t)s->views_mtime_ns);
	put64(h + 88, body_hash);
	put64(h + 96, state_render_fingerprint());
	put64(h + 104, s->ntasks);
	put64(h + 112, records_len);
	put64(h + 120, body_len);
	put64(h + 128, feed_gen);
	put64(h + 136, feed_len);
}

unsigned char *state_encode_records(const struct snapshot *s, size_t *len)
{
	/* not big_malloc: a record takes some 15 of its bound's 130 bytes, and a
	 * huge page would be zeroed whole for the few it holds */
	unsigned char *r = malloc(s->ntasks * STATE_MAX_RECORD + 1), *p = r;
	int64_t mtime = 0, file_mtime = 0;
	uint64_t nodeid = 0;

	if (!r)
		return NULL;
	for (size_t i = 0; i < s->ntasks; i++) {
		const struct snap_task *t = &s->tasks[i];

		p = put_varint(p, zigzag(t->mtime, mtime));
		mtime = t->mtime;
		for (int k = 0; k < SNAP_NKINDS; k++) {
			const struct snap_file *f = &t->file[k];

			if (!f->nodeid) {
				*p++ = 0;
				continue;
			}
			p = put_varint(p, zigzag((int64_t)f->nodeid, (int64_t)nodeid) + 1);
			p = put_varint(p, zigzag(f->mtime_ns, file_mtime));
			p = put_varint(p, f->len);
			nodeid = f->nodeid;
			file_mtime = f->mtime_ns;
		}
	}
	*len = (size_t)(p - r);
	return r;
}

unsigned char *state_encode_whole(const struct snapshot *s, const char *body, size_t len,
				  const struct snap_ctx *ctx, const struct state_meta *m,
				  size_t *out_len)
{
	size_t rlen;
	unsigned char *rec = state_encode_records(s, &rlen), *f;

	if (!rec)
		return NULL;
	*out_len = STATE_HEADER_LEN + rlen + len + STATE_TRAILER_LEN;
	f = big_malloc(*out_len);
	if (f) {
		state_encode_header(f, s, m->identity, ctx, m->saved_ns, m->fetched_ns,
				    m->body_hash, m->feed_gen, m->feed_len, rlen, len);
		memcpy(f + STATE_HEADER_LEN, rec, rlen);
		memcpy(f + STATE_HEADER_LEN + rlen, body, len);
		put_trailer(f, *out_len);
	}
	free(rec);
	return f;
}
