// SPDX-License-Identifier: MIT
/* The state file's format: encoding, checking, restoring.  Pure: no I/O. */
#include "state.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hash.h"
#include "items.h"

static const char state_magic[8] = { 'I', 'F', 'S', 'S', 'T', 'A', 'T', 'E' };

/* every task takes at least {"id":"x"} of the answer: a bound on records */
#define STATE_MIN_ITEM 10
/* the fewest bytes a task record takes: folder mtime and four files */
#define STATE_MIN_RECORD 5
/* the most: a 10-byte varint for each number */
#define STATE_MAX_RECORD (10 + SNAP_NKINDS * 30)

/* ---- little-endian fields and varints ---- */

static void put64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

void state_put32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

/* LEB128, 7 bits a byte, low first */
static unsigned char *put_varint(unsigned char *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*p++ = (unsigned char)v;
	return p;
}

static bool get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
	uint64_t x = 0;

	for (int shift = 0; shift < 64 && *p < end; shift += 7) {
		unsigned char b = *(*p)++;

		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

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

static int fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s", what);
	return -EINVAL;
}

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

	st->tasks = malloc(sizeof(*st->tasks) * (st->ntasks + 1));
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

/* ---- the delta ---- */

static const char delta_magic[8] = { 'I', 'F', 'S', 'D', 'E', 'L', 'T', 'A' };

#define DELTA_VERSION 1
#define OP_LITERAL    0
#define OP_RUN	      1
#define MAX_GAP	      64 /* a longer gap between two items is a literal */

void state_mark_base(struct snapshot *s)
{
	for (size_t i = 0; i < s->ntasks; i++)
		s->tasks[s->order[i]].base_pos = (uint32_t)i + 1;
}

struct ops {
	unsigned char *buf;
	size_t len, cap, limit;
	bool over;
};

static bool ops_room(struct ops *o, size_t n)
{
	if (o->over || n > o->limit - o->len) {
		o->over = true;
		return false;
	}
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		unsigned char *b;

		while (cap < o->len + n)
			cap *= 2;
		if (!(b = realloc(o->buf, cap))) {
			o->over = true;
			return false;
		}
		o->buf = b;
		o->cap = cap;
	}
	return true;
}

static void ops_varint(struct ops *o, uint64_t v)
{
	if (ops_room(o, 10))
		o->len = (size_t)(put_varint(o->buf + o->len, v) - o->buf);
}

static void ops_bytes(struct ops *o, const char *p, size_t n)
{
	if (ops_room(o, n)) {
		memcpy(o->buf + o->len, p, n);
		o->len += n;
	}
}

static void ops_literal(struct ops *o, const char *body, size_t from, size_t to)
{
	if (to <= from)
		return;
	ops_varint(o, OP_LITERAL);
	ops_varint(o, to - from);
	ops_bytes(o, body + from, to - from);
}

/* base items first..first+count-1, with the gap @gap (@glen bytes) between each two */
static void ops_run(struct ops *o, uint32_t first, uint32_t count, const char *gap, size_t glen)
{
	ops_varint(o, OP_RUN);
	ops_varint(o, first);
	ops_varint(o, count);
	ops_varint(o, glen);
	ops_bytes(o, gap, glen);
}

unsigned char *state_encode_ops(const struct snapshot *s, const char *body, size_t len,
				size_t limit, size_t *oplen)
{
	struct ops o = { .limit = limit };
	/* the run being built: base items from @first, @count of them, the
	 * gap between each two at body[gap, gap + glen) */
	uint32_t first = 0, count = 0;
	size_t gap = 0, glen = 0, lit = 0, end = 0;

	for (size_t i = 0; i < s->ntasks && !o.over; i++) {
		const struct snap_task *t = &s->tasks[s->order[i]];
		size_t off = t->item_off, g = off - end;

		/* the tasks are in key order, the walk in answer order: fetch ahead */
		if (i + 8 < s->ntasks)
			__builtin_prefetch(&s->tasks[s->order[i + 8]]);
		if (off < end || t->item_len > len - off)
			break; /* not from this body: caught by the length check below */
		if (count && t->base_pos == first + count + 1 &&
		    (count == 1 ? g <= MAX_GAP : g == glen && !memcmp(body + end, body + gap, g))) {
			if (count++ == 1) {
				gap = end;
				glen = g;
			}
			end = off + t->item_len;
			continue;
		}
		if (count) { /* the run ends here */
			ops_run(&o, first, count, body + gap, glen);
			count = 0;
			lit = end;
		}
		if (t->base_pos) {
			ops_literal(&o, body, lit, off);
			first = t->base_pos - 1;
			count = 1;
			glen = 0;
		}
		end = off + t->item_len;
	}
	if (count) {
		ops_run(&o, first, count, body + gap, glen);
		lit = end;
	}
	ops_literal(&o, body, lit, len);
	if (o.over || end > len) {
		free(o.buf);
		return NULL;
	}
	*oplen = o.len;
	return o.buf ? o.buf : malloc(1);
}

static void put_trailer(unsigned char *f, size_t len)
{
	state_put32(f + len - 8, (uint32_t)crc32_z(0, f, len - STATE_TRAILER_LEN));
	state_put32(f + len - 4, 0);
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
	f = malloc(*out_len);
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

/* how a delta's answer is checked (u64 at 56) */
#define CHECK_CRC  0
#define CHECK_HASH 1

static void encode_delta_header(unsigned char *h, int64_t base_saved_ns, uint32_t base_crc,
				uint32_t answer_crc, size_t state_len, size_t ops_len,
				size_t answer_len, uint64_t check)
{
	memset(h, 0, STATE_DELTA_HEADER_LEN);
	memcpy(h, delta_magic, sizeof(delta_magic));
	state_put32(h + 8, DELTA_VERSION);
	state_put32(h + 12, STATE_DELTA_HEADER_LEN);
	put64(h + 16, (uint64_t)base_saved_ns);
	state_put32(h + 24, base_crc);
	state_put32(h + 28, answer_crc);
	put64(h + 32, state_len);
	put64(h + 40, ops_len);
	put64(h + 48, answer_len);
	put64(h + 56, check);
}

unsigned char *state_encode_delta(const struct snapshot *s, const char *body, size_t len,
				  const struct snap_ctx *ctx, const struct state_meta *m,
				  int64_t base_saved_ns, uint32_t base_crc, size_t limit,
				  size_t *out_len)
{
	size_t rlen, olen, state_len;
	unsigned char *ops = state_encode_ops(s, body, len, limit, &olen), *rec = NULL, *d = NULL;

	if (ops)
		rec = state_encode_records(s, &rlen);
	if (rec) {
		state_len = STATE_HEADER_LEN + rlen;
		*out_len = STATE_DELTA_HEADER_LEN + state_len + olen + STATE_TRAILER_LEN;
		d = malloc(*out_len);
	}
	if (d) {
		unsigned char *p = d + STATE_DELTA_HEADER_LEN;

		/* bytes as they arrived are checked by the hash they arrived with */
		bool as_sent = s->stats.repaired == 0;

		encode_delta_header(
			d, base_saved_ns, base_crc,
			as_sent ? 0 : (uint32_t)crc32_z(0, (const unsigned char *)body, len),
			state_len, olen, len, as_sent ? CHECK_HASH : CHECK_CRC);
		state_encode_header(p, s, m->identity, ctx, m->saved_ns, m->fetched_ns,
				    m->body_hash, m->feed_gen, m->feed_len, rlen, len);
		memcpy(p + STATE_HEADER_LEN, rec, rlen);
		memcpy(p + state_len, ops, olen);
		put_trailer(d, *out_len);
	}
	free(ops);
	free(rec);
	return d;
}

/* the base answer's kept items in answer order, as a parse of it would keep them */
struct span {
	uint32_t off, len;
};

static int base_spans(char *body, size_t len, const uint64_t key[2], struct span **out, size_t *n,
		      char *err, size_t errlen)
{
	struct item_list l;
	struct snap_stats st;
	uint32_t *at, last = 0; /* at[idx]: 1 + the item at that place */
	char perr[160];
	int ret = items_collect(body, len, key, NULL, &l, &st, perr, sizeof(perr));

	if (ret < 0) {
		snprintf(err, errlen, "its base answer does not parse: %s", perr);
		return ret == -ENOMEM ? ret : -EINVAL;
	}
	for (size_t i = 0; i < l.n; i++)
		if (l.v[i].idx > last)
			last = l.v[i].idx;
	at = calloc((size_t)last + 1, sizeof(*at));
	*out = malloc(sizeof(**out) * (l.n + 1));
	if (!at || !*out) {
		free(at);
		free(*out);
		items_free(&l);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < l.n; i++)
		at[l.v[i].idx] = (uint32_t)i + 1;
	*n = 0;
	for (size_t p = 1; p <= last; p++)
		if (at[p])
			(*out)[(*n)++] = (struct span){ l.v[at[p] - 1].off, l.v[at[p] - 1].len };
	free(at);
	items_free(&l);
	return 0;
}

static bool put_out(char *out, size_t *o, size_t cap, const char *p, size_t n)
{
	if (n > cap - *o)
		return false;
	memcpy(out + *o, p, n);
	*o += n;
	return true;
}

/* Rebuild the answer (@alen bytes) into @out from the base's @body and @sp, by the ops. */
static bool run_ops(const unsigned char *p, const unsigned char *end, const char *body,
		    const struct span *sp, size_t nsp, char *out, size_t alen)
{
	size_t o = 0;

	while (p < end) {
		uint64_t op, a, b, glen;

		if (!get_varint(&p, end, &op))
			return false;
		if (op == OP_LITERAL) {
			if (!get_varint(&p, end, &a) || a > (size_t)(end - p) ||
			    !put_out(out, &o, alen, (const char *)p, a))
				return false;
			p += a;
			continue;
		}
		if (op != OP_RUN || !get_varint(&p, end, &a) || !get_varint(&p, end, &b) ||
		    !get_varint(&p, end, &glen) || glen > (size_t)(end - p) || b == 0 || a >= nsp ||
		    b > nsp - a)
			return false;
		for (uint64_t i = a; i < a + b; i++) {
			if ((i > a && !put_out(out, &o, alen, (const char *)p, glen)) ||
			    !put_out(out, &o, alen, body + sp[i].off, sp[i].len))
				return false;
		}
		p += glen;
	}
	return o == alen;
}

int state_apply_delta(char *base, size_t blen, const unsigned char *delta, size_t dlen,
		      uint64_t identity, size_t max_body, char **out, size_t *olen, char *err,
		      size_t errlen)
{
	const unsigned char *b = (const unsigned char *)base, *embedded;
	uint64_t state_len, ops_len, answer_len, check;
	struct state bst, est;
	struct span *sp = NULL;
	size_t nsp = 0, total;
	char *buf;
	int ret;

	*out = NULL;
	if (dlen < STATE_DELTA_HEADER_LEN + STATE_TRAILER_LEN ||
	    memcmp(delta, delta_magic, sizeof(delta_magic)) != 0 ||
	    get32(delta + 8) != DELTA_VERSION || get32(delta + 12) != STATE_DELTA_HEADER_LEN)
		return fail(err, errlen, "state.delta: not a delta of this version");
	if (get32(delta + dlen - 4) != 0 ||
	    get32(delta + dlen - 8) != (uint32_t)crc32_z(0, delta, dlen - STATE_TRAILER_LEN))
		return fail(err, errlen, "state.delta: checksum mismatch (damaged)");
	ret = state_decode_header(b, blen, identity, max_body, &bst, err, errlen);
	if (ret < 0)
		return ret;
	/* the whole base is checked before anything is taken from it */
	if (get32(b + blen - 4) != 0 ||
	    get32(b + blen - 8) != (uint32_t)crc32_z(0, b, blen - STATE_TRAILER_LEN))
		return fail(err, errlen, "checksum mismatch (damaged)");
	if ((int64_t)get64(delta + 16) != bst.saved_ns || get32(delta + 24) != get32(b + blen - 8))
		return 1; /* a delta of an earlier base */
	state_len = get64(delta + 32);
	ops_len = get64(delta + 40);
	answer_len = get64(delta + 48);
	if (state_len < STATE_HEADER_LEN ||
	    state_len > dlen - STATE_DELTA_HEADER_LEN - STATE_TRAILER_LEN ||
	    ops_len != dlen - STATE_DELTA_HEADER_LEN - STATE_TRAILER_LEN - state_len ||
	    answer_len > max_body)
		return fail(err, errlen, "state.delta: sizes do not add up (damaged)");
	embedded = delta + STATE_DELTA_HEADER_LEN;
	total = (size_t)state_len + (size_t)answer_len + STATE_TRAILER_LEN;
	ret = state_decode_header(embedded, total, identity, max_body, &est, err, errlen);
	if (ret < 0)
		return ret;
	if (memcmp(est.hash_key, bst.hash_key, sizeof(est.hash_key)) != 0 ||
	    est.body_len != answer_len)
		return fail(err, errlen, "state.delta: does not match its base");
	ret = base_spans(base + STATE_HEADER_LEN + bst.records_len, bst.body_len, bst.hash_key, &sp,
			 &nsp, err, errlen);
	if (ret < 0)
		return ret;
	buf = malloc(total + 1);
	if (!buf) {
		free(sp);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(buf, embedded, state_len);
	check = get64(delta + 56);
	if (!run_ops(embedded + state_len, embedded + state_len + ops_len,
		     base + STATE_HEADER_LEN + bst.records_len, sp, nsp, buf + state_len,
		     (size_t)answer_len) ||
	    (check == CHECK_HASH
		     ? snapshot_body_hash(est.hash_key, buf + state_len, answer_len) !=
			       est.body_hash
		     : check != CHECK_CRC ||
			       (uint32_t)crc32_z(0, (const unsigned char *)buf + state_len,
						 answer_len) != get32(delta + 28))) {
		free(sp);
		free(buf);
		return fail(err, errlen, "state.delta: does not rebuild its answer (damaged)");
	}
	free(sp);
	put_trailer((unsigned char *)buf, total);
	*out = buf;
	*olen = total;
	return 0;
}
