// SPDX-License-Identifier: MIT
/* API answer bytes -> a cJSON tree, repaired and read exactly. */
#include "json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* cJSON rejects a lone surrogate escape and cuts a string at \u0000 */
/*
 * The escape at @p (a backslash in a string): repaired if need be (then
 * counted in *@n); where to go on.
 */
static char *repair_escape(char *b, char *p, const char *end, size_t *n)
{
	size_t i = (size_t)(p - b), len = (size_t)(end - b);
	int v, lo;

	if (i + 1 >= len)
		return (char *)end;
	if (b[i + 1] != 'u' || i + 6 > len || (v = hex4(b + i + 2)) < 0)
		return p + 2; /* some other escape: skip its second character */
	if (v >= 0xd800 && v <= 0xdbff && i + 12 <= len && b[i + 6] == '\\' && b[i + 7] == 'u' &&
	    (lo = hex4(b + i + 8)) >= 0xdc00 && lo <= 0xdfff)
		return p + 12; /* a proper pair */
	if ((v >= 0xd800 && v <= 0xdfff) || v == 0) {
		memcpy(b + i + 2, "0001", 4);
		(*n)++;
	}
	return p + 6;
}

size_t json_repair(char *b, size_t len)
{
	char *p = b, *end = b + len;
	size_t n = 0;

	/* every repair is of an escape: without a backslash, one fast pass */
	if (!memchr(b, '\\', len))
		return 0;
	/* from quote to quote: outside strings there is nothing to repair */
	while (p < end && (p = memchr(p, '"', (size_t)(end - p))) != NULL) {
		p++;
		for (;;) {
			char *q = memchr(p, '"', (size_t)(end - p));
			char *e = memchr(p, '\\', (size_t)((q ? q : end) - p));

			if (!e) {
				if (!q)
					return n;
				p = q + 1;
				break;
			}
			p = repair_escape(b, e, end, &n);
			if (p >= end)
				return n;
		}
	}
	return n;
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

/* ---- items ---- */

/* set when cJSON's allocator failed, to tell that from text it refused */
static _Thread_local bool json_oom;
static pthread_once_t json_hooks_once = PTHREAD_ONCE_INIT;

static void *json_malloc(size_t n)
{
	void *p = malloc(n);

	if (!p)
		json_oom = true;
	return p;
}

static void json_hooks_init(void)
{
	cJSON_Hooks hooks = { .malloc_fn = json_malloc, .free_fn = free };

	cJSON_InitHooks(&hooks);
}

struct json_item {
	cJSON *root;
	struct numtoks nt; /* the item's number tokens, for exact output */
};

int json_item_parse(const char *text, size_t len, struct json_item **out)
{
	struct json_item *it = calloc(1, sizeof(*it));
	size_t next = 0;
	int ret;

	if (!it)
		return -ENOMEM;
	pthread_once(&json_hooks_once, json_hooks_init);
	json_oom = false;
	it->root = cJSON_ParseWithLength(text, len);
	if (!it->root) {
		free(it);
		/* for text scan.c accepted only memory can be short, unless the
		 * two disagree: a bug, which the fuzzer looks for */
		return json_oom ? -ENOMEM : -EPROTO;
	}
	ret = scan_numbers(text, len, &it->nt);
	if (ret < 0) {
		json_item_free(it);
		return ret;
	}
	if (!index_numbers(it->root, &next, it->nt.n)) {
		/* cannot happen for text cJSON accepted; print doubles then */
		free(it->nt.v);
		it->nt.v = NULL;
		it->nt.n = 0;
	}
	*out = it;
	return 0;
}

void json_item_free(struct json_item *it)
{
	if (!it)
		return;
	free(it->nt.v);
	cJSON_Delete(it->root);
	free(it);
}

bool json_item_number(const struct json_item *it, const char *key, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(it->root, key);

	if (!cJSON_IsNumber(v))
		return false;
	*out = v->valuedouble;
	return true;
}

int json_item_field(const struct json_item *it, const char *key, const char **text, bool *is_string,
		    char **to_free)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(it->root, key);

	*text = NULL;
	*to_free = NULL;
	*is_string = false;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsString(v)) {
		*is_string = true;
		*text = v->valuestring ? v->valuestring : "";
		return 0;
	}
	*to_free = json_print(v, false, &it->nt);
	*text = *to_free;
	return *to_free ? 0 : -ENOMEM;
}

char *json_item_print(const struct json_item *it)
{
	return json_print(it->root, true, &it->nt);
}

int64_t json_count(const char *tok, size_t len)
{
	char buf[64];
	double d;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, tok, len);
	buf[len] = '\0';
	d = strtod(buf, NULL);
	/* only a plain count is believed; a cast of any other double is undefined */
	if (d >= 0 && d <= 9007199254740992.0)
		return (int64_t)d;
	return -1;
}
