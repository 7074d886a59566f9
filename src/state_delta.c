// SPDX-License-Identifier: MIT
/*
 * The state delta (state.h): the ops that rebuild an answer from the base
 * answer's items, the delta file around them, and applying one to a base.
 * Pure: no I/O.
 */
#include <stdlib.h>

#include "bigmem.h"
#include "hash.h"
#include "items.h"
#include "state_priv.h"

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
		if (!(b = big_realloc(o->buf, cap))) {
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

/* memcmp() == 0 for the few bytes of a gap between two items, without a call per item */
static inline bool same_gap(const char *a, const char *b, size_t n)
{
	while (n && *a == *b) {
		a++;
		b++;
		n--;
	}
	return n == 0;
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
		    (count == 1 ? g <= MAX_GAP
				: g == glen && same_gap(body + end, body + gap, g))) {
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

/* how a delta's answer is checked (u64 at 56) */
#define CHECK_CRC    0
#define CHECK_HASH24 1 /* written before the answer hash was SipHash-1-3 */
#define CHECK_HASH   2

/* the answer hash of CHECK_HASH24: snapshot_body_hash() with SipHash-2-4 */
static uint64_t body_hash24(const uint64_t hash_key[2], const char *body, size_t len)
{
	const uint64_t k[2] = { ~hash_key[0], hash_key[1] };

	return hash_siphash24(k, body, len);
}

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
		d = big_malloc(*out_len);
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
	at = big_calloc((size_t)last + 1, sizeof(*at));
	*out = big_malloc(sizeof(**out) * (l.n + 1));
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
	buf = big_malloc(total + 1);
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
	    (check == CHECK_HASH ? snapshot_body_hash(est.hash_key, buf + state_len, answer_len) !=
					   est.body_hash
	     : check == CHECK_HASH24
		     ? body_hash24(est.hash_key, buf + state_len, answer_len) != est.body_hash
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
