// SPDX-License-Identifier: MIT
/* The only file that knows cJSON: API answer bytes -> immutable snapshot. */
#include "snapshot.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const snap_file_names[SNAP_NKINDS] = {
	[SNAP_STATE] = "state",
	[SNAP_OPERATION] = "operation",
	[SNAP_TIMESTAMP] = "timestamp",
	[SNAP_RAW] = "raw.json",
};

const char *const snap_view_names[SNAP_NVIEWS] = {
	[SNAP_VIEW_STATE] = ".by-state",
	[SNAP_VIEW_OPERATION] = ".by-operation",
};

/* the field each view groups by */
static const enum snap_kind view_field[SNAP_NVIEWS] = {
	[SNAP_VIEW_STATE] = SNAP_STATE,
	[SNAP_VIEW_OPERATION] = SNAP_OPERATION,
};

/*
 * lower_bound_u64 - index of the first of @n elements (each @size bytes,
 * sorted by the uint64_t at offset @field) whose key is >= @key.  Every
 * index here (tasks, nodes, values, graves) is searched with it.
 */
static size_t lower_bound_u64(const void *base, size_t n, size_t size, size_t field, uint64_t key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t k;

		memcpy(&k, (const char *)base + mid * size + field, sizeof(k));
		if (k < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

#define LOWER_BOUND(arr, n, member, key) \
	lower_bound_u64((arr), (n), sizeof(*(arr)), offsetof(__typeof__(*(arr)), member), (key))

/* ---- SipHash-2-4: ids come from the network, so the hash is keyed ---- */

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                     \
	do {                         \
		v0 += v1;            \
		v1 = ROTL64(v1, 13); \
		v1 ^= v0;            \
		v0 = ROTL64(v0, 32); \
		v2 += v3;            \
		v3 = ROTL64(v3, 16); \
		v3 ^= v2;            \
		v0 += v3;            \
		v3 = ROTL64(v3, 21); \
		v3 ^= v0;            \
		v2 += v1;            \
		v1 = ROTL64(v1, 17); \
		v1 ^= v2;            \
		v2 = ROTL64(v2, 32); \
	} while (0)

static uint64_t siphash24(const uint64_t k[2], const unsigned char *in, size_t len)
{
	uint64_t v0 = k[0] ^ 0x736f6d6570736575ULL;
	uint64_t v1 = k[1] ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k[0] ^ 0x6c7967656e657261ULL;
	uint64_t v3 = k[1] ^ 0x7465646279746573ULL;
	uint64_t b = (uint64_t)len << 56, m;
	size_t i, left = len & 7;

	for (i = 0; i + 8 <= len; i += 8) {
		m = 0;
		for (int j = 7; j >= 0; j--)
			m = (m << 8) | in[i + (size_t)j];
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; j < left; j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t snapshot_body_hash(const uint64_t hash_key[2], const char *body, size_t len)
{
	/* another domain than ids: flip the key */
	const uint64_t k[2] = { ~hash_key[0], hash_key[1] };

	return siphash24(k, (const unsigned char *)body, len);
}

uint64_t snapshot_hash(const uint64_t hash_key[2], const char *id, size_t len)
{
	return siphash24(hash_key, (const unsigned char *)id, len) & SNAP_KEY_MASK;
}

/* ---- names ---- */

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t cp;
		size_t n;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + n >= len)
			return false;
		for (size_t j = 1; j <= n; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

bool snapshot_valid_name(const char *name, size_t len)
{
	if (len == 0 || len > 255 || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '/' || c < 0x20 || c == 0x7f)
			return false;
	}
	return utf8_valid((const unsigned char *)name, len);
}

int snapshot_kind(const char *name)
{
	for (int k = 0; k < SNAP_NKINDS; k++)
		if (strcmp(name, snap_file_names[k]) == 0)
			return k;
	return -1;
}

/* ---- building ---- */

struct arena {
	char *buf;
	size_t len, cap;
};

/* arena_add - append @len bytes (+ "\n" if @nl); offset or -E2BIG/-ENOMEM */
static int64_t arena_add(struct arena *a, const char *data, size_t len, bool nl)
{
	size_t need = a->len + len + (nl ? 1 : 0) + 1;
	size_t off = a->len;

	if (need > UINT32_MAX)
		return -E2BIG;
	if (need > a->cap) {
		size_t cap = a->cap ? a->cap : 65536;
		char *buf;

		while (cap < need)
			cap *= 2;
		buf = realloc(a->buf, cap);
		if (!buf)
			return -ENOMEM;
		a->buf = buf;
		a->cap = cap;
	}
	memcpy(a->buf + a->len, data, len);
	a->len += len;
	if (nl)
		a->buf[a->len++] = '\n';
	a->buf[a->len] = '\0'; /* ids are used as C strings */
	a->len++;
	return (int64_t)off;
}

struct pending {
	uint64_t key;
	uint32_t idx; /* position in items: the first of equal ids wins */
	const cJSON *item;
	const char *id;
	size_t id_len;
};

static int pending_cmp(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int node_cmp(const void *a, const void *b)
{
	const struct snap_node *x = a, *y = b;

	return x->nodeid < y->nodeid ? -1 : x->nodeid > y->nodeid;
}

/* Append @s to the examples, escaping anything not printable ASCII. */
static void note_example(struct snap_stats *st, const char *s, size_t len)
{
	size_t used = strlen(st->examples);
	char *p = st->examples + used;
	size_t room = sizeof(st->examples) - used;

	if (room < 24)
		return;
	if (used)
		*p++ = ' ', room--;
	*p++ = '"', room--;
	for (size_t i = 0; i < len && room > 6; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			*p++ = (char)c;
			room--;
		} else {
			p += snprintf(p, room, "\\x%02x", c);
			room -= 4;
		}
	}
	*p++ = '"';
	*p = '\0';
}

static void note_skipped(struct snap_stats *st, const cJSON *item, const char *why)
{
	const cJSON *id =
		cJSON_IsObject(item) ? cJSON_GetObjectItemCaseSensitive(item, "id") : NULL;

	st->skipped++;
	if (cJSON_IsString(id) && id->valuestring)
		note_example(st, id->valuestring, strlen(id->valuestring));
	else
		note_example(st, why, strlen(why));
}

/* ---- escapes cJSON would refuse ---- */

static int hex4(const char *p)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/*
 * cJSON rejects a whole answer for one lone UTF-16 surrogate escape and
 * silently cuts a string at \u0000.  Rewrite both, in place and at the
 * same length, to \u0001: one odd item can then not block every update,
 * and an id holding either is refused as a control character instead of
 * turning into some other, valid name.
 */
static void fix_escapes(char *b, size_t len)
{
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		int v, lo;

		if (!in_string) {
			in_string = b[i] == '"';
			continue;
		}
		if (b[i] == '"') {
			in_string = false;
			continue;
		}
		if (b[i] != '\\' || i + 1 >= len)
			continue;
		if (b[i + 1] != 'u' || i + 6 > len || (v = hex4(b + i + 2)) < 0) {
			i++; /* some other escape: skip its second character */
			continue;
		}
		if (v >= 0xd800 && v <= 0xdbff && i + 12 <= len && b[i + 6] == '\\' &&
		    b[i + 7] == 'u' && (lo = hex4(b + i + 8)) >= 0xdc00 && lo <= 0xdfff) {
			i += 11; /* a proper pair */
			continue;
		}
		if ((v >= 0xd800 && v <= 0xdfff) || v == 0)
			memcpy(b + i + 2, "0001", 4);
		i += 5;
	}
}

/* ---- numbers exactly as sent ---- */

/*
 * cJSON keeps numbers only as doubles, which would round a large integer
 * timestamp.  So the raw text of every number token is recorded, in
 * document order, and each number node's otherwise unused valueint is set
 * to its token's index by a walk in the same order (cJSON keeps member and
 * element order, duplicates included).
 */
struct numtok {
	uint32_t off, len;
};

struct numtoks {
	const char *body;
	struct numtok *v;
	size_t n;
};

static int scan_numbers(const char *body, size_t len, struct numtoks *nt)
{
	size_t i = 0, cap = 0;

	nt->body = body;
	nt->v = NULL;
	nt->n = 0;
	if (len > UINT32_MAX)
		return -E2BIG;
	while (i < len) {
		char c = body[i];

		if (c == '"') {
			for (i++; i < len && body[i] != '"'; i++)
				if (body[i] == '\\')
					i++;
			i++;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			size_t start = i;

			while (i < len && (strchr("0123456789+-.eE", body[i]) && body[i] != '\0'))
				i++;
			if (nt->n == cap) {
				struct numtok *v;

				cap = cap ? cap * 2 : 1024;
				v = realloc(nt->v, cap * sizeof(*v));
				if (!v)
					return -ENOMEM;
				nt->v = v;
			}
			nt->v[nt->n].off = (uint32_t)start;
			nt->v[nt->n].len = (uint32_t)(i - start);
			nt->n++;
		} else {
			i++;
		}
	}
	return 0;
}

/* Number the number nodes in document order; false if the counts disagree. */
static bool index_numbers(cJSON *v, size_t *next, size_t ntok)
{
	for (; v; v = v->next) {
		if (cJSON_IsNumber(v)) {
			if (*next >= ntok || *next > INT32_MAX)
				return false;
			v->valueint = (int)(*next)++;
		}
		if (v->child && !index_numbers(v->child, next, ntok))
			return false;
	}
	return true;
}

/* ---- JSON text: our own printer, so numbers and layout are predictable ---- */

struct sbuf {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *nb;

		while (cap < b->len + n + 1)
			cap *= 2;
		nb = realloc(b->buf, cap);
		if (!nb) {
			b->oom = true;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void json_number(struct sbuf *b, const cJSON *v, const struct numtoks *nt)
{
	double d = v->valuedouble;
	char num[64];

	if (nt && nt->v && v->valueint >= 0 && (size_t)v->valueint < nt->n) {
		const struct numtok *t = &nt->v[v->valueint];

		sb_put(b, nt->body + t->off, t->len);
		return;
	}

	/* integers exactly; anything else in the shortest form that round-trips */
	if (d == floor(d) && fabs(d) < 9007199254740992.0) {
		snprintf(num, sizeof(num), "%.0f", d);
	} else {
		snprintf(num, sizeof(num), "%.15g", d);
		if (strtod(num, NULL) != d)
			snprintf(num, sizeof(num), "%.17g", d);
	}
	sb_str(b, num);
}

static void json_string(struct sbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	sb_put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[7] = "\\u00";

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sb_put(b, run, (size_t)(s - run));
		run = s + 1;
		switch (c) {
		case '"':
			sb_put(b, "\\\"", 2);
			break;
		case '\\':
			sb_put(b, "\\\\", 2);
			break;
		case '\n':
			sb_put(b, "\\n", 2);
			break;
		case '\t':
			sb_put(b, "\\t", 2);
			break;
		case '\r':
			sb_put(b, "\\r", 2);
			break;
		default:
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			sb_put(b, esc, 6);
		}
	}
	sb_put(b, run, (size_t)(s - run));
	sb_put(b, "\"", 1);
}

/* @indent < 0: compact; else pretty with two spaces per level */
static void json_value(struct sbuf *b, const cJSON *v, int indent, const struct numtoks *nt)
{
	static const char spaces[] = "                                        ";
	const cJSON *c;
	bool obj;

	if (cJSON_IsString(v)) {
		json_string(b, v->valuestring ? v->valuestring : "");
		return;
	}
	if (cJSON_IsNumber(v)) {
		json_number(b, v, nt);
		return;
	}
	if (cJSON_IsBool(v)) {
		sb_str(b, cJSON_IsTrue(v) ? "true" : "false");
		return;
	}
	obj = cJSON_IsObject(v);
	if (!obj && !cJSON_IsArray(v)) {
		sb_str(b, "null");
		return;
	}
	sb_str(b, obj ? "{" : "[");
	for (c = v->child; c; c = c->next) {
		if (indent >= 0) {
			int n = 2 * (indent + 1);

			sb_str(b, "\n");
			/* deep nesting is flattened rather than indented without end */
			sb_put(b, spaces, (size_t)(n < 40 ? n : 40));
		}
		if (obj) {
			json_string(b, c->string ? c->string : "");
			sb_str(b, indent >= 0 ? ": " : ":");
		}
		json_value(b, c, indent >= 0 ? indent + 1 : -1, nt);
		if (c->next)
			sb_str(b, ",");
	}
	if (indent >= 0 && v->child) {
		int n = 2 * indent;

		sb_str(b, "\n");
		sb_put(b, spaces, (size_t)(n < 40 ? n : 40));
	}
	sb_str(b, obj ? "}" : "]");
}

/* json_print - malloc'd JSON text of @v, pretty or compact; NULL on ENOMEM */
static char *json_print(const cJSON *v, bool pretty, const struct numtoks *nt)
{
	struct sbuf b = { 0 };

	json_value(&b, v, pretty ? 0 : -1, nt);
	if (b.oom || !b.buf) {
		free(b.buf);
		return NULL;
	}
	return b.buf;
}

/*
 * The text of a field's file: a string as it is, anything else as its JSON
 * text; NULL (no file) for missing and null.  Sets *@must_free.
 */
static const char *field_text(const cJSON *v, const struct numtoks *nt, bool *must_free)
{
	*must_free = false;
	if (!v || cJSON_IsNull(v))
		return NULL;
	if (cJSON_IsString(v))
		return v->valuestring ? v->valuestring : "";
	*must_free = true;
	return json_print(v, false, nt);
}

static int64_t task_mtime(const cJSON *item, int64_t fallback)
{
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(item, "timestamp");
	double d;

	if (!cJSON_IsNumber(ts))
		return fallback;
	d = ts->valuedouble;
	if (isnan(d))
		return fallback;
	/* clamp to what a 64-bit time_t and the kernel's timespec can hold */
	if (d < -(double)(1LL << 62))
		return -(1LL << 62);
	if (d > (double)(1LL << 62))
		return 1LL << 62;
	return (int64_t)floor(d);
}

static const struct snap_task *prev_task(const struct snapshot *prev, const struct pending *p)
{
	const struct snap_task *t;

	if (!prev)
		return NULL;
	t = snapshot_find_key(prev, p->key);
	if (t && t->id_len == p->id_len && memcmp(snap_task_id(prev, t), p->id, p->id_len) == 0)
		return t;
	return NULL;
}

/* ---- tasks that leave and come back ---- */

static int64_t grave_find(const struct snap_ctx *ctx, uint64_t key)
{
	size_t lo = LOWER_BOUND(ctx->grave, ctx->ngrave, key, key);

	return lo < ctx->ngrave && ctx->grave[lo].key == key ? ctx->grave[lo].mtime : INT64_MIN;
}

static int grave_cmp(const void *a, const void *b)
{
	const struct snap_grave *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key;
}

static int64_t task_newest(const struct snap_task *t)
{
	int64_t m = INT64_MIN;

	for (int k = 0; k < SNAP_NKINDS; k++)
		if (t->file[k].nodeid && t->file[k].mtime > m)
			m = t->file[k].mtime;
	return m;
}

/*
 * Remember tasks that went away while their newest mtime is not yet in the
 * past, so that a return within the same second gets a later mtime and
 * rsync's size+mtime check cannot miss it.  Usually this list is empty.
 */
static void grave_update(struct snap_ctx *ctx, const struct snapshot *prev,
			 const struct snapshot *s)
{
	struct snap_grave *g;
	size_t n = 0, cap = ctx->ngrave;
	size_t i = 0, j = 0;

	if (prev)
		cap += prev->ntasks;
	g = malloc(sizeof(*g) * (cap + 1));
	if (!g)
		return; /* keep the old list: only a same-second corner case is at stake */
	for (size_t k = 0; k < ctx->ngrave; k++)
		if (ctx->grave[k].mtime >= ctx->now && !snapshot_find_key(s, ctx->grave[k].key))
			g[n++] = ctx->grave[k];
	while (prev && i < prev->ntasks) {
		const struct snap_task *o = &prev->tasks[i];

		if (j < s->ntasks && s->tasks[j].key < o->key) {
			j++;
		} else if (j < s->ntasks && s->tasks[j].key == o->key) {
			i++, j++;
		} else {
			int64_t m = task_newest(o);

			if (m >= ctx->now) {
				g[n].key = o->key;
				g[n].mtime = m;
				n++;
			}
			i++;
		}
	}
	qsort(g, n, sizeof(*g), grave_cmp);
	free(ctx->grave);
	ctx->grave = g;
	ctx->ngrave = n;
}

void snap_ctx_release(struct snap_ctx *ctx)
{
	free(ctx->grave);
	ctx->grave = NULL;
	ctx->ngrave = 0;
}

static int build_file(struct arena *a, struct snap_ctx *ctx, const struct snapshot *prev,
		      const struct snap_task *pt, int64_t grave_mtime, struct snap_file *f,
		      enum snap_kind kind, const char *text, size_t len)
{
	const struct snap_file *pf = pt ? &pt->file[kind] : NULL;
	int64_t off = arena_add(a, text, len, true);

	if (off < 0)
		return (int)off;
	f->off = (uint32_t)off;
	f->len = (uint32_t)(len + 1);
	if (pf && pf->nodeid && pf->len == f->len &&
	    memcmp(snap_file_data(prev, pf), a->buf + off, f->len) == 0) {
		f->nodeid = pf->nodeid;
		f->mtime = pf->mtime;
		return 0;
	}
	f->nodeid = ctx->next_nodeid++;
	f->mtime = ctx->now;
	if (!pt && grave_mtime >= f->mtime)
		f->mtime = grave_mtime + 1; /* the task left and came back this second */
	if (pt) {
		/*
		 * New content must get a new mtime even within one second, so
		 * that rsync's size+mtime check can never miss a change.
		 */
		for (int k = 0; k < SNAP_NKINDS; k++)
			if (pt->file[k].nodeid && pt->file[k].mtime >= f->mtime)
				f->mtime = pt->file[k].mtime + 1;
	}
	return 0;
}

static int build_task(struct arena *a, struct snap_ctx *ctx, const struct snapshot *prev,
		      const struct numtoks *nt, const struct pending *p, struct snap_task *t)
{
	static const char *const fields[SNAP_RAW] = { "state", "operation", "timestamp" };
	const struct snap_task *pt = prev_task(prev, p);
	int64_t grave_mtime = pt ? INT64_MIN : grave_find(ctx, p->key);
	int64_t off;
	int ret = 0;

	memset(t, 0, sizeof(*t));
	t->key = p->key;
	/* without a usable timestamp the folder keeps the time it was first seen */
	t->mtime = task_mtime(p->item, pt ? pt->mtime : ctx->now);
	off = arena_add(a, p->id, p->id_len, false);
	if (off < 0)
		return (int)off;
	t->id_off = (uint32_t)off;
	t->id_len = (uint32_t)p->id_len;

	for (int k = 0; k < SNAP_RAW && ret == 0; k++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(p->item, fields[k]);
		bool must_free;
		const char *text = field_text(v, nt, &must_free);

		if (!text) {
			if (must_free)
				return -ENOMEM;
			continue;
		}
		if (cJSON_IsString(v))
			t->strings |= 1u << k;
		ret = build_file(a, ctx, prev, pt, grave_mtime, &t->file[k], (enum snap_kind)k,
				 text, strlen(text));
		if (must_free)
			free((void *)text);
	}
	if (ret == 0) {
		char *raw = json_print(p->item, true, nt);

		if (!raw)
			return -ENOMEM;
		ret = build_file(a, ctx, prev, pt, grave_mtime, &t->file[SNAP_RAW], SNAP_RAW, raw,
				 strlen(raw));
		free(raw);
	}
	return ret;
}

static bool same_listing(const struct snapshot *a, const struct snapshot *b)
{
	if (a->ntasks != b->ntasks)
		return false;
	for (size_t i = 0; i < a->ntasks; i++)
		if (a->tasks[i].key != b->tasks[i].key)
			return false;
	return true;
}

/* Collect the usable items into @pend; returns how many. */
static size_t collect_items(const cJSON *items, const uint64_t hash_key[2], struct pending *pend,
			    struct snap_stats *st)
{
	const cJSON *item;
	size_t n = 0;
	uint32_t idx = 0;

	cJSON_ArrayForEach (item, items) {
		const cJSON *id;
		size_t len;

		st->items++;
		idx++;
		if (!cJSON_IsObject(item)) {
			note_skipped(st, item, "(not an object)");
			continue;
		}
		id = cJSON_GetObjectItemCaseSensitive(item, "id");
		if (!cJSON_IsString(id) || !id->valuestring) {
			note_skipped(st, item, "(id not a string)");
			continue;
		}
		len = strlen(id->valuestring);
		if (!snapshot_valid_name(id->valuestring, len)) {
			note_skipped(st, item, "");
			continue;
		}
		pend[n].key = snapshot_hash(hash_key, id->valuestring, len);
		pend[n].idx = idx;
		pend[n].item = item;
		pend[n].id = id->valuestring;
		pend[n].id_len = len;
		n++;
	}
	return n;
}

static int build_nodes(struct snapshot *s)
{
	size_t n = 0;

	s->nodes = malloc(sizeof(*s->nodes) * (s->ntasks * SNAP_NKINDS + 1));
	if (!s->nodes)
		return -ENOMEM;
	for (size_t i = 0; i < s->ntasks; i++) {
		for (int k = 0; k < SNAP_NKINDS; k++) {
			if (!s->tasks[i].file[k].nodeid)
				continue;
			s->nodes[n].nodeid = s->tasks[i].file[k].nodeid;
			s->nodes[n].task = (uint32_t)i;
			s->nodes[n].kind = (uint32_t)k;
			n++;
		}
	}
	s->nnodes = n;
	qsort(s->nodes, n, sizeof(*s->nodes), node_cmp);
	return 0;
}

/* ---- views ---- */

uint64_t snapshot_value_hash(const uint64_t hash_key[2], enum snap_view_kind view, const char *name,
			     size_t len)
{
	unsigned char buf[1 + 256];

	/* a separate domain per view, so a value never hashes like an id */
	buf[0] = (unsigned char)(0xf0 + view);
	if (len > 255)
		len = 255;
	memcpy(buf + 1, name, len);
	return siphash24(hash_key, buf, len + 1) & SNAP_KEY_MASK;
}

/* The value a task shows in @view, or NULL: string fields with safe names only. */
static const char *view_value(const struct snapshot *s, const char *arena, enum snap_view_kind view,
			      const struct snap_task *t, size_t *len)
{
	enum snap_kind k = view_field[view];
	const struct snap_file *f = &t->file[k];

	(void)s;
	if (!f->nodeid || !(t->strings & (1u << k)) || f->len < 2)
		return NULL;
	*len = f->len - 1; /* without the newline */
	if (!snapshot_valid_name(arena + f->off, *len))
		return NULL;
	return arena + f->off;
}

struct view_pair {
	uint64_t vkey;
	uint32_t task;
};

static int view_pair_cmp(const void *a, const void *b)
{
	const struct view_pair *x = a, *y = b;

	if (x->vkey != y->vkey)
		return x->vkey < y->vkey ? -1 : 1;
	return x->task < y->task ? -1 : x->task > y->task;
}

/* Build one view; value names are added to @a (still growing). */
static int build_view(struct snapshot *s, struct arena *a, const uint64_t hash_key[2],
		      enum snap_view_kind view)
{
	struct snap_view *v = &s->view[view];
	struct view_pair *pairs;
	char namebuf[256];
	size_t n = 0;
	int ret = -ENOMEM;

	pairs = malloc(sizeof(*pairs) * (s->ntasks + 1));
	v->members = malloc(sizeof(*v->members) * (s->ntasks + 1));
	v->values = malloc(sizeof(*v->values) * (s->ntasks + 1));
	if (!pairs || !v->members || !v->values)
		goto out;
	for (size_t i = 0; i < s->ntasks; i++) {
		size_t len;
		const char *val = view_value(s, a->buf, view, &s->tasks[i], &len);

		if (!val)
			continue;
		pairs[n].vkey = snapshot_value_hash(hash_key, view, val, len);
		pairs[n].task = (uint32_t)i;
		n++;
	}
	qsort(pairs, n, sizeof(*pairs), view_pair_cmp);
	v->nvalues = 0;
	for (size_t i = 0, m = 0; i < n; i++) {
		struct snap_value *val = v->nvalues ? &v->values[v->nvalues - 1] : NULL;
		size_t len;
		const char *name = view_value(s, a->buf, view, &s->tasks[pairs[i].task], &len);
		int64_t off;

		if (val && val->vkey == pairs[i].vkey) {
			/* same key, other text: a hash collision; leave it out */
			if (val->name_len != len || memcmp(a->buf + val->name_off, name, len))
				continue;
			v->members[m++] = pairs[i].task;
			val->count++;
			continue;
		}
		/* copied so it ends in a NUL, as readdir needs; via a local copy
		 * because arena_add() may move the buffer @name points into */
		memcpy(namebuf, name, len);
		off = arena_add(a, namebuf, len, false);
		if (off < 0) {
			ret = (int)off;
			goto out;
		}
		val = &v->values[v->nvalues++];
		val->vkey = pairs[i].vkey;
		val->name_off = (uint32_t)off;
		val->name_len = (uint32_t)len;
		val->first = (uint32_t)m;
		val->count = 1;
		v->members[m++] = pairs[i].task;
	}
	ret = 0;
out:
	free(pairs);
	return ret;
}

int snapshot_view_of(uint64_t nodeid)
{
	if (nodeid >= SNAP_VIEW_ROOT_NODEID && nodeid < SNAP_VIEW_ROOT_NODEID + SNAP_NVIEWS)
		return (int)(nodeid - SNAP_VIEW_ROOT_NODEID);
	return -1;
}

const struct snap_value *snapshot_find_vkey(const struct snapshot *s, enum snap_view_kind view,
					    uint64_t vkey)
{
	const struct snap_view *v = &s->view[view];
	size_t lo = LOWER_BOUND(v->values, v->nvalues, vkey, vkey);

	return lo < v->nvalues && v->values[lo].vkey == vkey ? &v->values[lo] : NULL;
}

const struct snap_value *snapshot_find_value(const struct snapshot *s, const uint64_t hash_key[2],
					     enum snap_view_kind view, const char *name, size_t len)
{
	const struct snap_value *v;

	if (!snapshot_valid_name(name, len))
		return NULL;
	v = snapshot_find_vkey(s, view, snapshot_value_hash(hash_key, view, name, len));
	if (v && v->name_len == len && memcmp(s->arena + v->name_off, name, len) == 0)
		return v;
	return NULL;
}

size_t snapshot_seek_value(const struct snapshot *s, enum snap_view_kind view, uint64_t off)
{
	const struct snap_view *v = &s->view[view];

	/* cookie = vkey + SNAP_DIR_OFFSET; want the first cookie > off */
	if (off < SNAP_DIR_OFFSET)
		return 0;
	return LOWER_BOUND(v->values, v->nvalues, vkey, off - SNAP_DIR_OFFSET + 1);
}

bool snapshot_in_value(const struct snapshot *s, enum snap_view_kind view,
		       const struct snap_value *v, const struct snap_task *t)
{
	size_t len;
	const char *val = view_value(s, s->arena, view, t, &len);

	return val && len == v->name_len && memcmp(val, s->arena + v->name_off, len) == 0;
}

int snapshot_parse(char *body, size_t len, const struct snapshot *prev, struct snap_ctx *ctx,
		   struct snapshot **out, char *err, size_t errlen)
{
	const cJSON *items, *total;
	struct numtoks nt = { 0 };
	struct pending *pend = NULL;
	struct arena a = { 0 };
	struct snapshot *s;
	cJSON *root;
	size_t n, kept = 0;
	int ret = -ENOMEM;

	fix_escapes(body, len);
	root = cJSON_ParseWithLength(body, len);
	if (!root) {
		snprintf(err, errlen, "response is not valid JSON");
		return -EINVAL;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "response is not a JSON object");
		ret = -EINVAL;
		goto out_free_json;
	}
	items = cJSON_GetObjectItemCaseSensitive(root, "items");
	if (!cJSON_IsArray(items)) {
		snprintf(err, errlen, "response has no \"items\" array");
		ret = -EINVAL;
		goto out_free_json;
	}
	ret = scan_numbers(body, len, &nt);
	if (ret < 0) {
		snprintf(err, errlen,
			 ret == -E2BIG ? "response too large to index" : "out of memory");
		goto out_free_json;
	}
	{
		size_t next = 0;

		if (!index_numbers(root, &next, nt.n)) {
			/* cannot happen for text cJSON accepted; print doubles then */
			free(nt.v);
			nt.v = NULL;
			nt.n = 0;
		}
	}
	ret = -ENOMEM;

	s = calloc(1, sizeof(*s));
	if (!s)
		goto out_nomem;
	atomic_init(&s->refs, 1);
	total = cJSON_GetObjectItemCaseSensitive(root, "total_items");
	s->stats.total_items = -1;
	/* only a plain count is believed; a cast of any other double is undefined */
	if (cJSON_IsNumber(total) && total->valuedouble >= 0 &&
	    total->valuedouble <= 9007199254740992.0)
		s->stats.total_items = (int64_t)total->valuedouble;

	n = (size_t)cJSON_GetArraySize(items);
	pend = malloc(sizeof(*pend) * (n + 1));
	if (!pend)
		goto out_free_snap;
	n = collect_items(items, ctx->hash_key, pend, &s->stats);
	qsort(pend, n, sizeof(*pend), pending_cmp);

	s->tasks = malloc(sizeof(*s->tasks) * (n + 1));
	if (!s->tasks)
		goto out_free_snap;
	/* the files take about as much as the answer: size the arena once */
	a.cap = len + len / 4 + 65536;
	a.buf = malloc(a.cap);
	if (!a.buf)
		goto out_free_snap;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && pend[i].key == pend[i - 1].key) {
			if (pend[i].id_len == pend[i - 1].id_len &&
			    memcmp(pend[i].id, pend[i - 1].id, pend[i].id_len) == 0) {
				s->stats.duplicates++;
			} else {
				/* a 59-bit keyed hash collision: astronomically rare */
				s->stats.skipped++;
				note_example(&s->stats, pend[i].id, pend[i].id_len);
			}
			/* keep comparing against the first of the run */
			pend[i] = pend[i - 1];
			continue;
		}
		ret = build_task(&a, ctx, prev, &nt, &pend[i], &s->tasks[kept]);
		if (ret < 0) {
			snprintf(err, errlen,
				 ret == -E2BIG ? "response too large to index" : "out of memory");
			goto out_free_snap;
		}
		kept++;
	}
	s->ntasks = kept;
	for (int v = 0; v < SNAP_NVIEWS; v++) {
		ret = build_view(s, &a, ctx->hash_key, (enum snap_view_kind)v);
		if (ret < 0) {
			snprintf(err, errlen,
				 ret == -E2BIG ? "response too large to index" : "out of memory");
			goto out_free_snap;
		}
	}
	s->arena = a.buf;
	s->arena_len = a.len;
	a.buf = NULL;
	if (s->arena_len && s->arena_len < a.cap) {
		char *shrunk = realloc(s->arena, s->arena_len);

		if (shrunk)
			s->arena = shrunk;
	}
	if (build_nodes(s) < 0) {
		ret = -ENOMEM;
		goto out_free_snap;
	}

	s->mtime = ctx->now;
	s->views_mtime = prev ? prev->views_mtime : ctx->now;
	if (prev) {
		if (same_listing(prev, s))
			s->mtime = prev->mtime;
		else if (prev->mtime >= s->mtime)
			s->mtime = prev->mtime + 1;
	}
	grave_update(ctx, prev, s);
	free(pend);
	free(nt.v);
	cJSON_Delete(root);
	*out = s;
	return 0;

out_free_snap:
	snapshot_put(s);
out_nomem:
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	free(a.buf);
	free(pend);
out_free_json:
	free(nt.v);
	cJSON_Delete(root);
	return ret;
}

struct snapshot *snapshot_get(struct snapshot *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void snapshot_put(struct snapshot *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (int v = 0; v < SNAP_NVIEWS; v++) {
		free(s->view[v].values);
		free(s->view[v].members);
	}
	free(s->tasks);
	free(s->nodes);
	free(s->arena);
	free(s);
}

/* ---- lookups ---- */

static size_t lower_bound_key(const struct snapshot *s, uint64_t key)
{
	return LOWER_BOUND(s->tasks, s->ntasks, key, key);
}

const struct snap_task *snapshot_find_key(const struct snapshot *s, uint64_t key)
{
	size_t i = lower_bound_key(s, key);

	return i < s->ntasks && s->tasks[i].key == key ? &s->tasks[i] : NULL;
}

const struct snap_task *snapshot_find(const struct snapshot *s, const uint64_t hash_key[2],
				      const char *name, size_t len)
{
	const struct snap_task *t;

	if (!snapshot_valid_name(name, len))
		return NULL;
	t = snapshot_find_key(s, snapshot_hash(hash_key, name, len));
	if (t && t->id_len == len && memcmp(snap_task_id(s, t), name, len) == 0)
		return t;
	return NULL;
}

bool snapshot_find_node(const struct snapshot *s, uint64_t nodeid, const struct snap_task **task,
			enum snap_kind *kind)
{
	size_t lo = LOWER_BOUND(s->nodes, s->nnodes, nodeid, nodeid);

	if (lo == s->nnodes || s->nodes[lo].nodeid != nodeid)
		return false;
	*task = &s->tasks[s->nodes[lo].task];
	*kind = (enum snap_kind)s->nodes[lo].kind;
	return true;
}

size_t snapshot_seek(const struct snapshot *s, uint64_t off)
{
	/* cookie = key + SNAP_DIR_OFFSET; want the first cookie > off */
	if (off < SNAP_DIR_OFFSET)
		return 0;
	return lower_bound_key(s, off - SNAP_DIR_OFFSET + 1);
}

/* ---- differences ---- */

static size_t diff_task(const struct snapshot *old, const struct snap_task *o,
			const struct snapshot *new, const struct snap_task *n,
			const struct snap_diff_ops *ops, void *arg)
{
	uint64_t dir = snap_dir_nodeid(n->key);
	bool listing = false;
	size_t calls = 0;

	for (int k = 0; k < SNAP_NKINDS; k++) {
		if (o->file[k].nodeid == n->file[k].nodeid)
			continue;
		ops->entry(arg, dir, snap_file_names[k], strlen(snap_file_names[k]));
		calls++;
		if (!o->file[k].nodeid != !n->file[k].nodeid)
			listing = true;
	}
	if (listing || o->mtime != n->mtime) {
		ops->inode(arg, dir);
		calls++;
	}
	if (o->mtime != n->mtime) {
		/* the view links carry the task's time as their mtime */
		for (int v = 0; v < SNAP_NVIEWS; v++)
			ops->inode(arg, snap_link_nodeid(n->key, (enum snap_view_kind)v));
		calls += SNAP_NVIEWS;
	}
	return calls;
}

/*
 * A folder's node id outlives the task: the kernel may keep a detached
 * folder entry with a child still in use, and reattach it when the id
 * comes back.  So a task that goes or comes also drops its children.
 */
static size_t forget_children(uint64_t key, const struct snap_diff_ops *ops, void *arg)
{
	for (int k = 0; k < SNAP_NKINDS; k++)
		ops->entry(arg, snap_dir_nodeid(key), snap_file_names[k],
			   strlen(snap_file_names[k]));
	return SNAP_NKINDS;
}

/* Value folders whose listing changed, to invalidate each once. */
struct touched {
	uint64_t *v;
	size_t n, cap;
};

static void touch(struct touched *t, uint64_t vkey)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		uint64_t *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return; /* then the kernel keeps that listing until its timeout */
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = vkey;
}

static int u64_cmp(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}

/* A task's membership in @view moved from @o (in @old) to @n (in @new). */
static size_t diff_membership(const struct snapshot *old, const struct snap_task *o,
			      const struct snapshot *new, const struct snap_task *n,
			      const uint64_t hash_key[2], enum snap_view_kind view,
			      const struct snap_diff_ops *ops, void *arg, struct touched *tv)
{
	size_t olen = 0, nlen = 0, calls = 0;
	const char *ov = o ? view_value(old, old->arena, view, o, &olen) : NULL;
	const char *nv = n ? view_value(new, new->arena, view, n, &nlen) : NULL;
	const struct snap_task *t = n ? n : o;
	const char *id = n ? snap_task_id(new, n) : snap_task_id(old, o);

	if (ov && nv && olen == nlen && memcmp(ov, nv, olen) == 0)
		return 0;
	if (ov) {
		uint64_t vk = snapshot_value_hash(hash_key, view, ov, olen);

		ops->entry(arg, snap_value_nodeid(vk), id, t->id_len);
		touch(tv, vk);
		calls++;
	}
	if (nv) {
		uint64_t vk = snapshot_value_hash(hash_key, view, nv, nlen);

		ops->entry(arg, snap_value_nodeid(vk), id, t->id_len);
		touch(tv, vk);
		calls++;
	}
	return calls;
}

static size_t diff_view(const struct snapshot *old, const struct snapshot *new,
			const uint64_t hash_key[2], enum snap_view_kind view,
			const struct snap_diff_ops *ops, void *arg)
{
	const struct snap_view *ov = &old->view[view], *nv = &new->view[view];
	struct touched tv = { 0 };
	size_t i = 0, j = 0, calls = 0;
	bool listing = false;

	/* values that appeared or went away */
	while (i < ov->nvalues || j < nv->nvalues) {
		const struct snap_value *o = i < ov->nvalues ? &ov->values[i] : NULL;
		const struct snap_value *n = j < nv->nvalues ? &nv->values[j] : NULL;

		if (o && n && o->vkey == n->vkey) {
			i++, j++;
		} else if (o && (!n || o->vkey < n->vkey)) {
			ops->entry(arg, SNAP_VIEW_ROOT_NODEID + view, old->arena + o->name_off,
				   o->name_len);
			listing = true;
			calls++;
			i++;
		} else {
			ops->entry(arg, SNAP_VIEW_ROOT_NODEID + view, new->arena + n->name_off,
				   n->name_len);
			listing = true;
			calls++;
			j++;
		}
	}
	if (listing) {
		ops->inode(arg, SNAP_VIEW_ROOT_NODEID + view);
		calls++;
	}
	/* tasks that moved between values, came or went */
	for (i = 0, j = 0; i < old->ntasks || j < new->ntasks;) {
		const struct snap_task *o = i < old->ntasks ? &old->tasks[i] : NULL;
		const struct snap_task *n = j < new->ntasks ? &new->tasks[j] : NULL;

		if (o && n && o->key == n->key) {
			calls += diff_membership(old, o, new, n, hash_key, view, ops, arg, &tv);
			i++, j++;
		} else if (o && (!n || o->key < n->key)) {
			calls += diff_membership(old, o, new, NULL, hash_key, view, ops, arg, &tv);
			i++;
		} else {
			calls += diff_membership(old, NULL, new, n, hash_key, view, ops, arg, &tv);
			j++;
		}
	}
	if (tv.n) {
		qsort(tv.v, tv.n, sizeof(*tv.v), u64_cmp);
		for (size_t k = 0; k < tv.n; k++) {
			if (k && tv.v[k] == tv.v[k - 1])
				continue;
			ops->inode(arg, snap_value_nodeid(tv.v[k]));
			calls++;
		}
	}
	free(tv.v);
	return calls;
}

size_t snapshot_diff(const struct snapshot *old, const struct snapshot *new,
		     const uint64_t hash_key[2], const struct snap_diff_ops *ops, void *arg)
{
	size_t i = 0, j = 0, calls = 0;
	bool root = false;

	while (i < old->ntasks || j < new->ntasks) {
		const struct snap_task *o = i < old->ntasks ? &old->tasks[i] : NULL;
		const struct snap_task *n = j < new->ntasks ? &new->tasks[j] : NULL;

		if (o && n && o->key == n->key) {
			calls += diff_task(old, o, new, n, ops, arg);
			i++, j++;
		} else if (o && (!n || o->key < n->key)) {
			ops->entry(arg, SNAP_ROOT_NODEID, snap_task_id(old, o), o->id_len);
			calls += 1 + forget_children(o->key, ops, arg);
			root = true;
			i++;
		} else {
			/* also drops a cached negative entry for the new name */
			ops->entry(arg, SNAP_ROOT_NODEID, snap_task_id(new, n), n->id_len);
			calls += 1 + forget_children(n->key, ops, arg);
			root = true;
			j++;
		}
	}
	if (root || old->mtime != new->mtime) {
		ops->inode(arg, SNAP_ROOT_NODEID);
		calls++;
	}
	for (int v = 0; v < SNAP_NVIEWS; v++)
		calls += diff_view(old, new, hash_key, (enum snap_view_kind)v, ops, arg);
	return calls;
}

void snapshot_for_each_gone(const struct snapshot *old, const struct snapshot *new,
			    void (*fn)(void *arg, const struct snapshot *old,
				       const struct snap_node *node),
			    void *arg)
{
	size_t i = 0, j = 0;

	while (i < old->nnodes) {
		if (j < new->nnodes &&new->nodes[j].nodeid < old->nodes[i].nodeid) {
			j++;
		} else if (j < new->nnodes &&new->nodes[j].nodeid == old->nodes[i].nodeid) {
			i++, j++;
		} else {
			fn(arg, old, &old->nodes[i]);
			i++;
		}
	}
}
