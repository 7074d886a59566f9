// SPDX-License-Identifier: MIT
/* Strict JSON checking and the index of an answer's items, in one pass. */
#include "scan.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* json.c's printer indents two spaces a level, flattened at this width */
#define SCAN_INDENT_MAX 40

enum expect { E_VALUE, E_VALUE_OR_CLOSE, E_KEY, E_KEY_OR_CLOSE, E_AFTER };

/* which member of the top-level object the next value at depth 1 is */
enum top_member { TOP_OTHER, TOP_ITEMS, TOP_TOTAL };

static const char *const field_names[SCAN_NFIELDS] = {
	[SCAN_ID] = "id",
	[SCAN_STATE] = "state",
	[SCAN_OPERATION] = "operation",
	[SCAN_TIMESTAMP] = "timestamp",
};

struct scanner {
	const char *b;
	size_t len, pos;
	uint64_t *stack;   /* a bit per open container: 1 = object */
	size_t depth, cap; /* open containers; bits the stack holds */
	const char *fatal; /* why the whole answer is refused */
	size_t fatal_at;   /* byte offset */

	/* the top level */
	bool not_object;
	bool seen_items, seen_total, items_bad;
	bool items_open; /* the container at depth 2 is the items array */
	enum top_member member;
	uint32_t total_start;
	struct scan_result *res;

	/* the item being scanned: values at depth >= 2 inside items */
	bool in_item;
	struct scan_item item;
	int field; /* the item member whose value comes next, or -1 */
	uint32_t field_start;
	void (*fn)(void *arg, const struct scan_item *it);
	size_t (*known)(void *arg, uint32_t off, uint32_t idx);
	void *arg;
};

static bool fatal(struct scanner *sc, const char *why)
{
	if (!sc->fatal) {
		sc->fatal = why;
		sc->fatal_at = sc->pos;
	}
	return false;
}

/* Bytes that are not strict JSON: the item's problem, or the answer's. */
static void defect(struct scanner *sc, const char *why)
{
	if (!sc->in_item)
		fatal(sc, why);
	else if (!sc->item.defect)
		sc->item.defect = why;
}

static bool push(struct scanner *sc, bool object)
{
	if (sc->depth == sc->cap) {
		size_t cap = sc->cap ? sc->cap * 2 : 1024;
		uint64_t *s = realloc(sc->stack, cap / 8);

		if (!s)
			return fatal(sc, "out of memory");
		sc->stack = s;
		sc->cap = cap;
	}
	if (object)
		sc->stack[sc->depth / 64] |= 1ULL << (sc->depth % 64);
	else
		sc->stack[sc->depth / 64] &= ~(1ULL << (sc->depth % 64));
	sc->depth++;
	return true;
}

static bool top_is_object(const struct scanner *sc)
{
	size_t d = sc->depth - 1;

	return (sc->stack[d / 64] >> (d % 64)) & 1;
}

static size_t indent(size_t depth)
{
	/* the item itself is at depth 2 and indented by nothing */
	size_t n = 2 * (depth - 2);

	return n < SCAN_INDENT_MAX ? n : SCAN_INDENT_MAX;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string token at sc->pos; on return sc->pos is past its closing quote. */
/*
 * Whether any of the 8 bytes of @w is a quote, a backslash, a control
 * byte or not ASCII: what the string loop must look at one by one.  Once
 * every byte is below 0x80, a byte x - n (n <= 0x20) has its high bit set
 * only when it wrapped (x < n) or a lower byte wrapped before it, so the
 * high bits answer "is any byte below n" exactly; x == c is x ^ c below 1.
 */
static inline bool word_needs_care(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
	uint64_t quote = w ^ (ones * '"'), slash = w ^ (ones * '\\');

	if (w & high)
		return true;
	return (((w - ones * 0x20) | (quote - ones) | (slash - ones)) & high) != 0;
}

static bool scan_str(struct scanner *sc)
{
	const unsigned char *b = (const unsigned char *)sc->b;
	size_t i = sc->pos + 1;

	for (;;) {
		unsigned char c;
		uint32_t cp;
		size_t n;

		/* plain printable ASCII, eight bytes at a time */
		while (i + 8 <= sc->len) {
			uint64_t w;

			memcpy(&w, b + i, 8);
			if (word_needs_care(w))
				break;
			i += 8;
		}
		if (i >= sc->len)
			return fatal(sc, "unterminated string");
		c = b[i];
		if (c == '"') {
			sc->pos = i + 1;
			return true;
		}
		if (c < 0x20) {
			defect(sc, "raw control character in a string");
			i++;
		} else if (c == '\\') {
			if (i + 1 >= sc->len)
				return fatal(sc, "unterminated string");
			if (b[i + 1] == 'u') {
				if (i + 6 > sc->len || !is_hex((char)b[i + 2]) ||
				    !is_hex((char)b[i + 3]) || !is_hex((char)b[i + 4]) ||
				    !is_hex((char)b[i + 5])) {
					defect(sc, "bad \\u escape in a string");
					i += 2;
				} else {
					i += 6;
				}
			} else {
				if (!memchr("\"\\/bfnrt", b[i + 1], 8))
					defect(sc, "bad escape in a string");
				/* json.c prints \b and \f as \u0008 and \u000c */
				if (sc->in_item && (b[i + 1] == 'b' || b[i + 1] == 'f'))
					sc->item.pretty += 4;
				i += 2;
			}
		} else if (c < 0x80) {
			i++;
		} else if ((n = utf8_decode(b + i, sc->len - i, &cp)) != 0) {
			i += n;
		} else {
			defect(sc, "invalid UTF-8 in a string");
			i++;
		}
	}
}

static bool is_digit(const struct scanner *sc, size_t i)
{
	return i < sc->len && sc->b[i] >= '0' && sc->b[i] <= '9';
}

static bool in_number(const struct scanner *sc, size_t i)
{
	return i < sc->len && sc->b[i] && strchr("0123456789+-.eE", sc->b[i]);
}

/* A number at sc->pos: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static void scan_num(struct scanner *sc)
{
	size_t i = sc->pos;
	bool ok = true;

	if (sc->b[i] == '-')
		i++;
	if (i < sc->len && sc->b[i] == '0') {
		i++;
	} else if (is_digit(sc, i)) {
		while (is_digit(sc, i))
			i++;
	} else {
		ok = false;
	}
	if (ok && i < sc->len && sc->b[i] == '.') {
		i++;
		ok = is_digit(sc, i);
		while (is_digit(sc, i))
			i++;
	}
	if (ok && i < sc->len && (sc->b[i] == 'e' || sc->b[i] == 'E')) {
		i++;
		if (i < sc->len && (sc->b[i] == '+' || sc->b[i] == '-'))
			i++;
		ok = is_digit(sc, i);
		while (is_digit(sc, i))
			i++;
	}
	if (!ok || in_number(sc, i)) {
		/* 01, 1., -.5, 1e: find where the token ends anyway */
		defect(sc, "number not valid JSON");
		while (in_number(sc, i))
			i++;
	}
	sc->pos = i;
}

/* True when the string token @tok (@len bytes, quotes included) decodes to @name. */
static bool token_is(const char *tok, size_t len, const char *name)
{
	size_t n = strlen(name);
	char buf[256];

	if (len == n + 2 && memcmp(tok + 1, name, n) == 0)
		return true;
	/* an escaped spelling, like "\u0069d"; decoding never grows */
	if (len > sizeof(buf) || !memchr(tok, '\\', len))
		return false;
	return scan_string(tok, len, buf) == n && memcmp(buf, name, n) == 0;
}

static void begin_value(struct scanner *sc)
{
	size_t d = sc->depth;
	char c = sc->b[sc->pos];

	if (d == 0) {
		sc->not_object = c != '{';
	} else if (d == 1) {
		if (sc->member == TOP_ITEMS) {
			sc->items_bad = c != '[';
			sc->items_open = c == '[';
		} else if (sc->member == TOP_TOTAL) {
			sc->total_start = (uint32_t)sc->pos;
		}
	} else if (d == 2 && sc->items_open && !sc->in_item) {
		sc->in_item = true;
		memset(&sc->item, 0, sizeof(sc->item));
		sc->item.off = (uint32_t)sc->pos;
		sc->item.idx = (uint32_t)++sc->res->items;
		sc->field = -1;
	}
	if (!sc->in_item)
		return;
	sc->item.nvalues++;
	if (d - 1 > sc->item.depth)
		sc->item.depth = (uint32_t)(d - 1);
	if (d >= 3) /* newline, indent and comma before an element */
		sc->item.pretty += 2 + indent(d);
	if (d == 3 && sc->field >= 0)
		sc->field_start = (uint32_t)sc->pos;
}

/* The value that began at depth sc->depth ended just before sc->pos. */
static void end_value(struct scanner *sc, char type)
{
	size_t d = sc->depth;

	if (d == 1 && sc->member == TOP_TOTAL) {
		sc->res->total.off = sc->total_start;
		sc->res->total.len = (uint32_t)(sc->pos - sc->total_start);
		sc->res->total.type = type;
	}
	if (!sc->in_item)
		return;
	if (d == 3 && sc->field >= 0) {
		struct scan_span *f = &sc->item.field[sc->field];

		f->off = sc->field_start;
		f->len = (uint32_t)(sc->pos - sc->field_start);
		f->type = type;
		sc->field = -1;
	}
	if (d == 2) {
		sc->item.len = (uint32_t)(sc->pos - sc->item.off);
		sc->in_item = false;
		sc->fn(sc->arg, &sc->item);
	}
}

/* A member name at depth sc->depth, just scanned from @start. */
static void note_key(struct scanner *sc, size_t start)
{
	const char *tok = sc->b + start;
	size_t len = sc->pos - start;

	if (sc->depth == 1) {
		sc->member = TOP_OTHER;
		if (!sc->seen_items && token_is(tok, len, "items")) {
			sc->seen_items = true;
			sc->member = TOP_ITEMS;
		} else if (!sc->seen_total && token_is(tok, len, "total_items")) {
			sc->seen_total = true;
			sc->member = TOP_TOTAL;
		}
	}
	if (!sc->in_item)
		return;
	sc->item.pretty += len + 2; /* the name and ": " */
	if (sc->depth != 3)
		return;
	for (int k = 0; k < SCAN_NFIELDS; k++) {
		if (!sc->item.field[k].type && token_is(tok, len, field_names[k])) {
			/* the first of each name counts, as cJSON's lookup finds it */
			sc->field = k;
			sc->item.field[k].type = 1; /* taken, even if its value is odd */
			break;
		}
	}
}

static void skip_ws(struct scanner *sc)
{
	for (; sc->pos < sc->len; sc->pos++) {
		char c = sc->b[sc->pos];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
	}
}

static bool close_container(struct scanner *sc)
{
	bool object = top_is_object(sc);

	sc->pos++;
	sc->depth--;
	if (sc->depth == 1 && sc->items_open)
		sc->items_open = false;
	if (sc->in_item) /* the bracket, and a newline with the closing indent */
		sc->item.pretty += 2 + (sc->depth >= 2 ? indent(sc->depth) : 0);
	end_value(sc, object ? '{' : '[');
	return true;
}

/* A scalar at sc->pos; false (and sc->fatal) when it is not one. */
static bool scan_scalar(struct scanner *sc)
{
	static const char *const words[] = { "true", "false", "null" };
	size_t start = sc->pos;
	char c = sc->b[start], type;

	if (c == '"') {
		if (!scan_str(sc))
			return false;
		type = '"';
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		scan_num(sc);
		type = '0';
	} else {
		size_t i;

		for (i = 0; i < 3; i++) {
			size_t n = strlen(words[i]);

			if (sc->len - start >= n && memcmp(sc->b + start, words[i], n) == 0) {
				sc->pos += n;
				break;
			}
		}
		if (i == 3)
			return fatal(sc, "unexpected character");
		type = words[i][0];
	}
	if (sc->in_item)
		sc->item.pretty += sc->pos - start;
	end_value(sc, type);
	return true;
}

static bool step(struct scanner *sc, enum expect *e)
{
	char c = sc->b[sc->pos];
	size_t start = sc->pos;

	switch (*e) {
	case E_VALUE_OR_CLOSE:
		if (c == ']') {
			*e = E_AFTER;
			return close_container(sc);
		}
		/* fall through */
	case E_VALUE:
		if (sc->known && c == '{' && sc->depth == 2 && sc->items_open && !sc->in_item) {
			size_t n =
				sc->known(sc->arg, (uint32_t)sc->pos, (uint32_t)sc->res->items + 1);

			if (n) { /* seen whole before: not scanned again */
				sc->res->items++;
				sc->pos += n;
				*e = E_AFTER;
				return true;
			}
		}
		begin_value(sc);
		if (c == '{' || c == '[') {
			if (sc->in_item)
				sc->item.pretty += 1;
			sc->pos++;
			*e = c == '{' ? E_KEY_OR_CLOSE : E_VALUE_OR_CLOSE;
			return push(sc, c == '{');
		}
		*e = E_AFTER;
		return scan_scalar(sc);
	case E_KEY_OR_CLOSE:
		if (c == '}') {
			*e = E_AFTER;
			return close_container(sc);
		}
		/* fall through */
	case E_KEY:
		if (c != '"')
			return fatal(sc, "expected a member name");
		if (!scan_str(sc))
			return false;
		note_key(sc, start);
		skip_ws(sc);
		if (sc->pos >= sc->len || sc->b[sc->pos] != ':')
			return fatal(sc, "expected ':'");
		sc->pos++;
		*e = E_VALUE;
		return true;
	case E_AFTER:
		if (c == ',') {
			sc->pos++;
			*e = top_is_object(sc) ? E_KEY : E_VALUE;
			return true;
		}
		if (c == (top_is_object(sc) ? '}' : ']'))
			return close_container(sc);
		return fatal(sc, top_is_object(sc) ? "expected ',' or '}'" : "expected ',' or ']'");
	}
	return fatal(sc, "internal error");
}

int scan_answer(const char *body, size_t len, void (*fn)(void *arg, const struct scan_item *it),
		void *arg, struct scan_result *res, char *err, size_t errlen)
{
	return scan_answer_known(body, len, fn, NULL, arg, res, err, errlen);
}

int scan_answer_known(const char *body, size_t len,
		      void (*fn)(void *arg, const struct scan_item *it),
		      size_t (*known)(void *arg, uint32_t off, uint32_t idx), void *arg,
		      struct scan_result *res, char *err, size_t errlen)
{
	struct scanner sc = {
		.b = body, .len = len, .fn = fn, .known = known, .arg = arg, .res = res
	};
	enum expect e = E_VALUE;
	int ret = -EINVAL;

	memset(res, 0, sizeof(*res));
	if (len > UINT32_MAX) {
		snprintf(err, errlen, "response too large to index");
		return -E2BIG;
	}
	for (;;) {
		skip_ws(&sc);
		if (e == E_AFTER && sc.depth == 0)
			break;
		if (sc.pos >= len) {
			fatal(&sc, "unexpected end");
			break;
		}
		if (!step(&sc, &e))
			break;
	}
	free(sc.stack);
	if (!sc.fatal && sc.pos < len)
		fatal(&sc, "text after the JSON value");
	if (sc.fatal && strcmp(sc.fatal, "out of memory") == 0) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
	} else if (sc.fatal) {
		snprintf(err, errlen, "response is not valid JSON: %s at byte %zu", sc.fatal,
			 sc.fatal_at);
	} else if (sc.not_object) {
		snprintf(err, errlen, "response is not a JSON object");
	} else if (!sc.seen_items || sc.items_bad) {
		snprintf(err, errlen, "response has no \"items\" array");
	} else {
		ret = 0;
	}
	return ret;
}

/* 0 for a byte that is not a hex digit: a defective token may be decoded too */
static uint32_t hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return (uint32_t)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (uint32_t)(c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (uint32_t)(c - 'A' + 10);
	return 0;
}

static uint32_t hex4(const char *p)
{
	return hex_value(p[0]) << 12 | hex_value(p[1]) << 8 | hex_value(p[2]) << 4 |
	       hex_value(p[3]);
}

static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

size_t scan_string(const char *tok, size_t len, char *out)
{
	size_t i = 1, n = 0;

	while (i + 1 < len) {
		char c = tok[i];
		uint32_t cp;

		if (c != '\\') {
			out[n++] = c;
			i++;
			continue;
		}
		c = tok[i + 1];
		i += 2;
		switch (c) {
		case 'b':
			out[n++] = '\b';
			continue;
		case 'f':
			out[n++] = '\f';
			continue;
		case 'n':
			out[n++] = '\n';
			continue;
		case 'r':
			out[n++] = '\r';
			continue;
		case 't':
			out[n++] = '\t';
			continue;
		case 'u':
			break;
		default: /* " \ / */
			out[n++] = c;
			continue;
		}
		if (i + 4 > len - 1)
			break;
		cp = hex4(tok + i);
		i += 4;
		if (cp >= 0xd800 && cp <= 0xdbff && i + 6 <= len - 1 && tok[i] == '\\' &&
		    tok[i + 1] == 'u') {
			uint32_t lo = hex4(tok + i + 2);

			if (lo >= 0xdc00 && lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				i += 6;
			}
		}
		if (cp >= 0xd800 && cp <= 0xdfff)
			cp = 0xfffd;
		n += put_utf8(out + n, cp);
	}
	return n;
}
