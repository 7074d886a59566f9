// SPDX-License-Identifier: MIT
/* items and scan: strict JSON, hostile items, the memory budget. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "items.h"
#include "scan.h"
#include "snapshot.h"

static struct snap_ctx ctx = { .hash_key = { 3, 4 }, .now_ns = 1000000000000LL, .next_nodeid = 16 };

/* Parse @len bytes (may hold NULs); NULL on failure with the cause in @err. */
static struct snapshot *parse_n(const char *json, size_t len, char *err, size_t errlen)
{
	struct snapshot *s = NULL;
	char *copy = malloc(len + 1);
	int ret;

	memcpy(copy, json, len);
	copy[len] = '\0';
	ret = snapshot_parse(copy, len, NULL, &ctx, &s, err, errlen);
	free(copy);
	return ret < 0 ? NULL : s;
}

static struct snapshot *parse(const char *json, char *err, size_t errlen)
{
	return parse_n(json, strlen(json), err, errlen);
}

static bool has(const struct snapshot *s, const char *id)
{
	return snapshot_find(s, ctx.hash_key, id, strlen(id)) != NULL;
}

/* Item 3: numbers JSON forbids skip their item; text after the value sinks the answer. */
static void test_numbers(void)
{
	static const char *const bad[] = { "01", "-.5",	 "1.",	"007",	 "1e",	 "1e+",
					   "-",	 "1.e5", "--1", "1.5.5", "1e5e5" };
	static const char *const good[] = { "0", "-0", "1.5", "0.5e-3", "1E+2", "-12e3", "7" };
	char json[256], err[200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct snapshot *s;

		snprintf(json, sizeof(json),
			 "{\"items\": [{\"id\": \"bad\", \"timestamp\": %s}, {\"id\": \"ok\"}]}",
			 bad[i]);
		s = parse(json, err, sizeof(err));
		CHECK(s != NULL);
		if (!s) {
			fprintf(stderr, "  %s: %s\n", bad[i], err);
			continue;
		}
		CHECK(!has(s, "bad") && has(s, "ok"));
		CHECK(s->stats.skip[ITEMS_SKIP_INVALID] == 1);
		CHECK_STR(s->stats.invalid, "number not valid JSON");
		snapshot_put(s);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct snapshot *s;

		snprintf(json, sizeof(json), "{\"items\": [{\"id\": \"n\", \"x\": [%s]}]}",
			 good[i]);
		s = parse(json, err, sizeof(err));
		CHECK(s && has(s, "n") && s->stats.skipped == 0);
		snapshot_put(s);
	}
	/* outside an item a bad number is the answer's fault */
	CHECK(parse("{\"items\": [], \"total_items\": 01}", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "not valid JSON") != NULL);
	CHECK(parse("{\"items\": [{\"id\": \"a\"}]} x", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "text after the JSON value") != NULL);
	CHECK(parse("{\"items\": [{\"id\": \"a\"}]}{}", err, sizeof(err)) == NULL);
	{
		struct snapshot *s = parse("{\"items\": [{\"id\": \"a\"}]} \n\t", err, sizeof(err));

		CHECK(s != NULL); /* white space after the value is fine */
		snapshot_put(s);
	}
	CHECK(parse("{\"items\": [+1]}", err, sizeof(err)) == NULL);
	CHECK(parse("{\"items\": [0x1]}", err, sizeof(err)) == NULL);
	CHECK(parse("{\"items\": [{\"id\": \"a\",}]}", err, sizeof(err)) == NULL);
	CHECK(parse("{\"items\": [{\"id\": \"a\"}],}", err, sizeof(err)) == NULL);
	CHECK(parse("{\"items\": [{\"id\": \"a\"}", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "unexpected end") != NULL);
	CHECK(parse("[1]", err, sizeof(err)) == NULL);
	CHECK_STR(err, "response is not a JSON object");
	CHECK(parse("{\"items\": {}}", err, sizeof(err)) == NULL);
	CHECK_STR(err, "response has no \"items\" array");
	CHECK(parse("{\"itemz\": []}", err, sizeof(err)) == NULL);
}

/* Item 2: raw control bytes never alias or cut an id. */
static void test_raw_controls(void)
{
	static const char nul_id[] = "{\"items\": [{\"id\": \"job-1\0-canary\"},"
				     " {\"id\": \"job-1\0-other\"}, {\"id\": \"job-1\"}]}";
	static const char spoof[] = "{\"items\": [{\"id\0-spoof\": \"alias\", \"id\": \"real\"}]}";
	static const char tab[] =
		"{\"items\": [{\"id\": \"a\", \"state\": \"x\ty\"}, {\"id\": \"b\"}]}";
	char err[200];
	struct snapshot *s = parse_n(nul_id, sizeof(nul_id) - 1, err, sizeof(err));

	CHECK(s != NULL);
	if (s) {
		CHECK(s->ntasks == 1 && has(s, "job-1")); /* the real one, with its own data */
		CHECK(s->stats.skip[ITEMS_SKIP_INVALID] == 2);
		CHECK(s->stats.duplicates == 0);
		CHECK(strstr(s->stats.examples, "job-1\\x00-canary") != NULL);
		snapshot_put(s);
	}
	s = parse_n(spoof, sizeof(spoof) - 1, err, sizeof(err));
	CHECK(s && s->ntasks == 0 && s->stats.skip[ITEMS_SKIP_INVALID] == 1);
	snapshot_put(s);
	s = parse(tab, err, sizeof(err));
	CHECK(s && s->ntasks == 1 && has(s, "b"));
	CHECK(s && strcmp(s->stats.invalid, "raw control character in a string") == 0);
	snapshot_put(s);
	/* outside the items the answer is refused, not half-read */
	s = parse("{\"@id\": \"x\x01y\", \"items\": []}", err, sizeof(err));
	CHECK(s == NULL && strstr(err, "raw control character") != NULL);
	/* bad escapes and bad UTF-8 are the item's fault too */
	s = parse("{\"items\": [{\"id\": \"a\\x\"}, {\"id\": \"\xc0\xaf\"}, {\"id\": \"c\"}]}", err,
		  sizeof(err));
	CHECK(s && s->ntasks == 1 && s->stats.skip[ITEMS_SKIP_INVALID] == 2);
	snapshot_put(s);
}

/* Item 4: one deep item is skipped, the rest of the answer stands. */
static void test_deep(void)
{
	size_t depth = 1000, len = 2 * depth + 200;
	char *json = malloc(len), *p = json, err[200];
	struct snapshot *s;

	p += sprintf(p, "{\"items\": [{\"id\": \"deep\", \"x\": ");
	memset(p, '[', depth);
	p += depth;
	memset(p, ']', depth);
	p += depth;
	sprintf(p, "}, {\"id\": \"fine\"}]}");
	s = parse(json, err, sizeof(err));
	CHECK(s != NULL);
	if (s) {
		CHECK(has(s, "fine") && !has(s, "deep"));
		CHECK(s->stats.skip[ITEMS_SKIP_TOO_DEEP] == 1);
		CHECK(strstr(s->stats.examples, "deep") != NULL);
		snapshot_put(s);
	}
	/* just inside the limit it is kept */
	p = json + sprintf(json, "{\"items\": [{\"id\": \"ok\", \"x\": ");
	memset(p, '[', ITEMS_MAX_DEPTH - 1);
	p += ITEMS_MAX_DEPTH - 1;
	memset(p, ']', ITEMS_MAX_DEPTH - 1);
	p += ITEMS_MAX_DEPTH - 1;
	sprintf(p, "}]}");
	s = parse(json, err, sizeof(err));
	CHECK(s && has(s, "ok"));
	snapshot_put(s);
	free(json);

	/* a million levels outside the items: refused or not, never a crash */
	len = 2000000 + 64;
	json = malloc(len);
	p = json + sprintf(json, "{\"items\": [], \"x\": ");
	memset(p, '[', 1000000);
	p += 1000000;
	memset(p, ']', 1000000);
	p += 1000000;
	sprintf(p, "}");
	s = parse(json, err, sizeof(err));
	CHECK(s && s->ntasks == 0);
	snapshot_put(s);
	free(json);
}

/* Item 1: the budget is checked before anything large is allocated. */
static void test_budget(void)
{
	size_t zeros = 2000000, n;
	char *json = malloc(2 * zeros + 200), *p, err[200];
	struct snapshot *s;

	/* one item holding two million tiny values: skipped, the others kept */
	p = json + sprintf(json, "{\"items\": [{\"id\": \"small\"}, {\"id\": \"huge\", \"x\": [");
	for (size_t i = 0; i < zeros; i++) {
		*p++ = '0';
		*p++ = ',';
	}
	p[-1] = ']';
	sprintf(p, "}]}");
	s = parse(json, err, sizeof(err));
	CHECK(s != NULL);
	if (s) {
		CHECK(has(s, "small") && !has(s, "huge"));
		CHECK(s->stats.skip[ITEMS_SKIP_TOO_LARGE] == 1);
		/* what was built stays in proportion to the answer */
		CHECK(s->arena_len < 4096);
		snapshot_put(s);
	}
	free(json);

	/* very many tiny distinct tasks: more than the budget, refused whole */
	n = 200000;
	json = malloc(n * 24 + 64);
	p = json + sprintf(json, "{\"items\": [");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "{\"id\":\"%zx\"},", i);
	p[-1] = ']';
	sprintf(p, "}");
	s = parse(json, err, sizeof(err));
	CHECK(s == NULL);
	CHECK(strstr(err, "more than its budget") != NULL);
	free(json);
}

/* The scanner's index: spans, depth, first member of each name, escaped names. */
static void on_item(void *arg, const struct scan_item *it)
{
	struct scan_item *out = arg;

	out[it->idx - 1] = *it;
}

static void test_scan_index(void)
{
	static const char body[] = "{\"total_items\": 2, \"items\": [ {\"\\u0069d\": \"a\\/b\","
				   " \"state\": \"S\", \"state\": \"T\", \"y\": {\"z\": [1]}}, 7 ],"
				   " \"items\": 5}";
	static const char esc[] = "\"\\ud83d\\ude00\\u00e9\\n\\ud800x\"";
	struct scan_item it[2];
	struct scan_result res;
	char err[200], id[64];
	size_t n;

	memset(it, 0, sizeof(it));
	CHECK(scan_answer(body, sizeof(body) - 1, on_item, it, &res, err, sizeof(err)) == 0);
	CHECK(res.items == 2);
	CHECK(res.total.type == '0' && res.total.len == 1 && body[res.total.off] == '2');
	CHECK(it[0].idx == 1 && body[it[0].off] == '{' && body[it[0].off + it[0].len - 1] == '}');
	CHECK(it[0].depth == 4 && it[0].nvalues == 7);
	CHECK(it[0].field[SCAN_ID].type == '"');
	n = scan_string(body + it[0].field[SCAN_ID].off, it[0].field[SCAN_ID].len, id);
	CHECK(n == 3 && memcmp(id, "a/b", 3) == 0);
	CHECK(it[0].field[SCAN_STATE].len == 3 && body[it[0].field[SCAN_STATE].off + 1] == 'S');
	CHECK(it[0].field[SCAN_OPERATION].type == 0);
	CHECK(it[1].idx == 2 && it[1].nvalues == 1 && it[1].depth == 1 && it[1].len == 1);
	n = scan_string(esc, strlen(esc), id);
	CHECK(n == 4 + 2 + 1 + 3 + 1 &&
	      memcmp(id, "\xf0\x9f\x98\x80\xc3\xa9\n\xef\xbf\xbdx", n) == 0);
}

int main(void)
{
	test_numbers();
	test_raw_controls();
	test_deep();
	test_budget();
	test_scan_index();
	return check_done("test_items");
}
