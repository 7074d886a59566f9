// SPDX-License-Identifier: MIT
/* events: the feed's lines from two snapshots, and the value escape. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "events.h"
#include "snapshot.h"

#define NS 1000000000LL

static struct snap_ctx ctx = { .hash_key = { 5, 6 }, .next_nodeid = 16 };

static struct snapshot *parse(const char *json, const struct snapshot *prev)
{
	struct snapshot *s = NULL;
	char err[160], *copy = strdup(json);

	ctx.now_ns += NS;
	if (snapshot_parse(copy, strlen(copy), prev, &ctx, &s, err, sizeof(err)) < 0)
		s = NULL;
	free(copy);
	return s;
}

static char *escaped(const char *s, size_t len)
{
	struct events_buf b = { 0 };
	char *out;

	events_escape(&b, s, len);
	events_escape(&b, "", 1); /* the NUL, escaped: marks the end */
	out = calloc(1, b.len + 1);
	if (out)
		memcpy(out, b.p, b.len);
	free(b.p);
	return out;
}

static void test_escape(void)
{
	char *e;

	e = escaped("a\tb\nc\\d\re", 9);
	CHECK_STR(e, "a\\tb\\nc\\\\d\\re\\x00");
	free(e);
	e = escaped("-", 1);
	CHECK_STR(e, "\\-\\x00");
	free(e);
	e = escaped("--", 2); /* only a lone dash is special */
	CHECK_STR(e, "--\\x00");
	free(e);
	e = escaped("\x01\x1f\x7f\xc3\xa9", 5); /* UTF-8 passes as it is */
	CHECK_STR(e, "\\x01\\x1f\\x7f\xc3\xa9\\x00");
	free(e);
}

/* the lines, sorted, so that the key order does not matter to the test */
static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *sorted_lines(const struct snapshot *a, const struct snapshot *b, size_t *n)
{
	struct events_buf out = { 0 };
	char *lines[16], *p, *joined;
	size_t k = 0, len = 0;

	*n = events_lines(a, b, 1796054400 * NS + 5, &out);
	CHECK(!out.oom);
	out.p = realloc(out.p, out.len + 1);
	if (!out.p)
		return NULL;
	out.p[out.len] = '\0';
	for (p = strtok(out.p, "\n"); p && k < 16; p = strtok(NULL, "\n"))
		lines[k++] = p;
	qsort(lines, k, sizeof(lines[0]), cmp);
	joined = calloc(1, out.len + 2);
	for (size_t i = 0; i < k; i++)
		len += (size_t)sprintf(joined + len, "%s\n", lines[i]);
	free(out.p);
	return joined;
}

static void test_lines(void)
{
	struct snapshot *a, *b, *c;
	char *got;
	size_t n;

	a = parse("{\"items\": [{\"id\": \"t1\", \"state\": \"PENDING\", \"operation\": \"CREATE\","
		  " \"timestamp\": 5}, {\"id\": \"t2\", \"state\": \"COMPLETED\"}]}",
		  NULL);
	/* nothing changed but the order and an unshown field: no line */
	b = parse("{\"items\": [{\"id\": \"t2\", \"state\": \"COMPLETED\", \"x\": 1},"
		  " {\"id\": \"t1\", \"state\": \"PENDING\", \"operation\": \"CREATE\", "
		  "\"timestamp\": 5}]}",
		  a);
	CHECK(a && b);
	if (!a || !b)
		return;
	got = sorted_lines(a, b, &n);
	CHECK(n == 0 && got && got[0] == '\0');
	free(got);
	/* t1: state and timestamp change, operation goes; t2 goes; t3 comes */
	c = parse("{\"items\": [{\"id\": \"t1\", \"state\": \"FAILED\\tX\", \"timestamp\": 6},"
		  " {\"id\": \"t3\", \"state\": \"-\"}]}",
		  b);
	CHECK(c != NULL);
	if (!c)
		goto out;
	got = sorted_lines(b, c, &n);
	CHECK(n == 5);
	CHECK_STR(got, "2026-11-30T16:00:00Z\tt1\tchanged\toperation\tCREATE\t-\n"
		       "2026-11-30T16:00:00Z\tt1\tchanged\tstate\tPENDING\tFAILED\\tX\n"
		       "2026-11-30T16:00:00Z\tt1\tchanged\ttimestamp\t5\t6\n"
		       "2026-11-30T16:00:00Z\tt2\tremoved\t-\tCOMPLETED\t-\n"
		       "2026-11-30T16:00:00Z\tt3\tadded\t-\t-\t\\-\n");
	free(got);
	snapshot_put(c);
out:
	snapshot_put(a);
	snapshot_put(b);
}

/* two ids that share a key (a 59-bit hash collision, forced here) are two tasks */
static void test_key_collision(void)
{
	struct snapshot *a, *b;
	char *got;
	size_t n;

	a = parse("{\"items\": [{\"id\": \"u1\", \"state\": \"PENDING\"}]}", NULL);
	b = parse("{\"items\": [{\"id\": \"u2\", \"state\": \"PENDING\"}]}", NULL);
	CHECK(a && b && a->ntasks == 1 && b->ntasks == 1);
	if (!a || !b || a->ntasks != 1 || b->ntasks != 1)
		goto out;
	b->tasks[0].key = a->tasks[0].key;
	got = sorted_lines(a, b, &n);
	CHECK(n == 2);
	CHECK_STR(got, "2026-11-30T16:00:00Z\tu1\tremoved\t-\tPENDING\t-\n"
		       "2026-11-30T16:00:00Z\tu2\tadded\t-\t-\tPENDING\n");
	free(got);
out:
	snapshot_put(a);
	snapshot_put(b);
}

int main(void)
{
	test_escape();
	test_lines();
	test_key_collision();
	return check_done("test_events");
}
