// SPDX-License-Identifier: MIT
/* snapshot: parsing, odd fields, carry-over between versions, diffs. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "diff.h"
#include "name.h"
#include "snapshot.h"

#define ID1 "5eead8d6-79e3-4a3d-915e-a886199dfde0"
#define ID2 "7c401e2e-d53f-4b82-9ba2-f89cb00d245a"

static const char seed[] =
	"{\"@id\": \"/api/v4/managed-slicer/ingest-points/tasks\", \"@type\": \"Collection\","
	" \"items\": ["
	"{\"@id\": \"/x/" ID1 "\", \"@type\": \"ReservedEndpointTask\", \"id\": \"" ID1 "\","
	" \"state\": \"COMPLETED\", \"operation\": \"DELETE\", \"timestamp\": 1664900951},"
	"{\"@id\": \"/x/" ID2 "\", \"@type\": \"ReservedEndpointTask\", \"id\": \"" ID2 "\","
	" \"state\": \"COMPLETED\", \"operation\": \"CREATE\", \"timestamp\": 1663974437}"
	"], \"total_items\": 2}";

#define NS 1000000000LL

static struct snap_ctx ctx = { .hash_key = { 1, 2 }, .now_ns = 1000 * NS, .next_nodeid = 16 };

static struct snapshot *parse(const char *json, const struct snapshot *prev)
{
	struct snapshot *s = NULL;
	char err[160] = "", *copy = strdup(json);
	int ret = snapshot_parse(copy, strlen(copy), prev, &ctx, &s, err, sizeof(err));

	free(copy);
	if (ret < 0) {
		fprintf(stderr, "parse failed: %s\n", err);
		return NULL;
	}
	return s;
}

static const char *file_text(const struct snapshot *s, const char *id, enum snap_kind k)
{
	static char buf[4096];
	const struct snap_task *t = snapshot_find(s, ctx.hash_key, id, strlen(id));
	const char *data;
	char *to_free;

	if (!t || !t->file[k].nodeid || t->file[k].len >= sizeof(buf))
		return NULL;
	data = snap_file_read(s, t, k, &to_free);
	if (!data)
		return NULL;
	memcpy(buf, data, t->file[k].len);
	buf[t->file[k].len] = '\0';
	free(to_free);
	return buf;
}

static void test_seed(void)
{
	struct snapshot *s = parse(seed, NULL);
	const struct snap_task *t;
	const char *raw;

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(s->ntasks == 2);
	CHECK(s->stats.items == 2 && s->stats.skipped == 0 && s->stats.total_items == 2);
	CHECK_STR(file_text(s, ID1, SNAP_STATE), "COMPLETED\n");
	CHECK_STR(file_text(s, ID1, SNAP_OPERATION), "DELETE\n");
	CHECK_STR(file_text(s, ID1, SNAP_TIMESTAMP), "1664900951\n");
	CHECK_STR(file_text(s, ID2, SNAP_OPERATION), "CREATE\n");
	raw = file_text(s, ID1, SNAP_RAW);
	CHECK_STR(raw, "{\n"
		       "  \"@id\": \"/x/" ID1 "\",\n"
		       "  \"@type\": \"ReservedEndpointTask\",\n"
		       "  \"id\": \"" ID1 "\",\n"
		       "  \"state\": \"COMPLETED\",\n"
		       "  \"operation\": \"DELETE\",\n"
		       "  \"timestamp\": 1664900951\n"
		       "}\n");
	t = snapshot_find(s, ctx.hash_key, ID1, strlen(ID1));
	CHECK(t && t->mtime == 1664900951);
	/* new versions: the arrival time, then 1 ns apart; the root after them */
	CHECK(t && t->file[SNAP_STATE].mtime_ns >= 1000 * NS &&
	      t->file[SNAP_STATE].mtime_ns < 1000 * NS + 8);
	CHECK(s->mtime_ns == 1000 * NS + 8);
	for (size_t i = 0; i < s->ntasks; i++)
		for (size_t j = 0; j < s->ntasks; j++)
			for (int k = 0; k < SNAP_NKINDS; k++)
				for (int l = 0; l < SNAP_NKINDS; l++)
					CHECK((i == j && k == l) ||
					      s->tasks[i].file[k].mtime_ns !=
						      s->tasks[j].file[l].mtime_ns);
	CHECK(snapshot_find(s, ctx.hash_key, "nope", 4) == NULL);
	CHECK(snapshot_find(s, ctx.hash_key, ID1, strlen(ID1) - 1) == NULL);
	/* sorted by key, node ids unique and indexed */
	CHECK(s->tasks[0].key < s->tasks[1].key);
	CHECK(s->nnodes == 8);
	for (size_t i = 1; i < s->nnodes; i++)
		CHECK(s->nodes[i - 1].nodeid < s->nodes[i].nodeid);
	for (size_t i = 0; i < s->nnodes; i++) {
		const struct snap_task *ft;
		enum snap_kind k;

		CHECK(snapshot_find_node(s, s->nodes[i].nodeid, &ft, &k));
		CHECK(ft->file[k].nodeid == s->nodes[i].nodeid);
	}
	/* readdir cookies: seek past each task lands on the next */
	CHECK(snapshot_seek(s, 0) == 0);
	CHECK(snapshot_seek(s, 2) == 0);
	CHECK(snapshot_seek(s, s->tasks[0].key + SNAP_DIR_OFFSET) == 1);
	CHECK(snapshot_seek(s, s->tasks[1].key + SNAP_DIR_OFFSET) == 2);
	snapshot_put(s);
}

static void test_odd_fields(void)
{
	struct snapshot *s = parse(
		"{\"items\": ["
		"{\"id\": \"a\", \"state\": null, \"operation\": 7, \"timestamp\": \"soon\"},"
		"{\"id\": \"b\", \"state\": {\"x\": [1, true]}, \"timestamp\": 1.5},"
		"{\"id\": \"c\", \"state\": \"line1\\nline2\", \"timestamp\": 12345678901234},"
		"{\"id\": \"d\", \"operation\": false, \"unknown\": \"kept\"}"
		"]}",
		NULL);
	const char *raw;

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(s->ntasks == 4);
	CHECK(file_text(s, "a", SNAP_STATE) == NULL); /* null: no file */
	CHECK_STR(file_text(s, "a", SNAP_OPERATION), "7\n");
	CHECK_STR(file_text(s, "a", SNAP_TIMESTAMP), "soon\n");
	CHECK_STR(file_text(s, "b", SNAP_STATE), "{\"x\":[1,true]}\n");
	CHECK(file_text(s, "b", SNAP_OPERATION) == NULL); /* missing: no file */
	CHECK_STR(file_text(s, "b", SNAP_TIMESTAMP), "1.5\n");
	CHECK_STR(file_text(s, "c", SNAP_STATE), "line1\nline2\n");
	CHECK_STR(file_text(s, "c", SNAP_TIMESTAMP), "12345678901234\n");
	CHECK_STR(file_text(s, "d", SNAP_OPERATION), "false\n");
	raw = file_text(s, "d", SNAP_RAW);
	CHECK_STR(raw,
		  "{\n  \"id\": \"d\",\n  \"operation\": false,\n  \"unknown\": \"kept\"\n}\n");
	raw = file_text(s, "b", SNAP_RAW);
	CHECK_STR(raw, "{\n  \"id\": \"b\",\n  \"state\": {\n    \"x\": [\n      1,\n      true\n"
		       "    ]\n  },\n  \"timestamp\": 1.5\n}\n");
	/* a timestamp that is not a number leaves the folder at "now" */
	CHECK(snapshot_find(s, ctx.hash_key, "a", 1)->mtime == 1000);
	CHECK(snapshot_find(s, ctx.hash_key, "b", 1)->mtime == 1);
	snapshot_put(s);
}

static void test_exact_numbers(void)
{
	struct snapshot *s =
		parse("{\"items\": [{\"id\": \"a\", \"timestamp\": 12345678901234567890,"
		      " \"state\": 1.50, \"operation\": -0, \"x\": [1e3, {\"y\": 2E-2}]},"
		      " {\"id\": \"b\", \"note\": \"-12 in a string 3.0\", \"timestamp\": "
		      "9007199254740993}"
		      "], \"total_items\": 2}",
		      NULL);

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_STR(file_text(s, "a", SNAP_TIMESTAMP), "12345678901234567890\n");
	CHECK_STR(file_text(s, "a", SNAP_STATE), "1.50\n");
	CHECK_STR(file_text(s, "a", SNAP_OPERATION), "-0\n");
	CHECK_STR(file_text(s, "b", SNAP_TIMESTAMP), "9007199254740993\n");
	CHECK_STR(file_text(s, "a", SNAP_RAW),
		  "{\n  \"id\": \"a\",\n  \"timestamp\": 12345678901234567890,\n"
		  "  \"state\": 1.50,\n  \"operation\": -0,\n  \"x\": [\n    1e3,\n"
		  "    {\n      \"y\": 2E-2\n    }\n  ]\n}\n");
	/* mtimes are clamped to what time_t holds */
	CHECK(snapshot_find(s, ctx.hash_key, "a", 1)->mtime == 1LL << 62);
	snapshot_put(s);
}

static void test_odd_escapes(void)
{
	struct snapshot *s =
		parse("{\"items\": [{\"id\": \"lone\\udcff\", \"state\": \"x\\ud800y\"},"
		      " {\"id\": \"nul\\u0000byte\"}, {\"id\": \"pair\\ud83d\\ude00\"},"
		      " {\"id\": \"esc\\\\ud800\"}]}",
		      NULL);

	CHECK(s != NULL); /* one odd escape does not sink the answer */
	if (!s)
		return;
	CHECK(s->ntasks == 2);
	CHECK(snapshot_find(s, ctx.hash_key, "nul", 3) == NULL); /* not cut short */
	CHECK(snapshot_find(s, ctx.hash_key, "pair\xf0\x9f\x98\x80", 8) != NULL);
	CHECK(snapshot_find(s, ctx.hash_key, "esc\\ud800", 9) != NULL); /* an escaped backslash */
	CHECK(s->stats.skipped == 2); /* "lone\udcff" and "nul\u0000byte" */
	snapshot_put(s);
	s = parse("{\"items\": [{\"id\": \"v\", \"state\": \"x\\ud800y\\u0000z\"}]}", NULL);
	CHECK(s && s->ntasks == 1);
	if (s)
		CHECK_STR(file_text(s, "v", SNAP_STATE), "x\x01y\x01z\n");
	snapshot_put(s);
}

static void test_bad_items(void)
{
	struct snapshot *s = parse(
		"{\"items\": [1, \"x\", null, {\"id\": 5}, {\"id\": \"\"}, {\"id\": \".\"},"
		"{\"id\": \"..\"}, {\"id\": \".hidden\"}, {\"id\": \"a/b\"}, {\"id\": "
		"\"a\\u0001\"},"
		"{\"state\": \"X\"}, {\"id\": \"\\u00e9t\\u00e9\"}, {\"id\": \"ok\", \"state\": "
		"\"first\"},"
		"{\"id\": \"ok\", \"state\": \"second\"}], \"total_items\": 99}",
		NULL);

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(s->ntasks == 2); /* "été" and "ok" */
	CHECK(s->stats.items == 14);
	CHECK(s->stats.skipped == 11);
	CHECK(s->stats.duplicates == 1);
	CHECK(s->stats.total_items == 99);
	CHECK_STR(file_text(s, "ok", SNAP_STATE), "first\n");
	CHECK(snapshot_find(s, ctx.hash_key, "\xc3\xa9t\xc3\xa9", 5) != NULL);
	CHECK(s->stats.examples[0] != '\0');
	snapshot_put(s);
}

static void test_names(void)
{
	char longname[300];

	memset(longname, 'a', sizeof(longname));
	CHECK(name_valid("abc", 3));
	CHECK(name_valid(longname, 255));
	CHECK(!name_valid(longname, 256));
	CHECK(!name_valid("", 0));
	CHECK(!name_valid(".", 1));
	CHECK(!name_valid("..", 2));
	CHECK(!name_valid(".x", 2));
	CHECK(!name_valid("a/b", 3));
	CHECK(!name_valid("a\0b", 3));
	CHECK(!name_valid("a\x7f", 2));
	CHECK(!name_valid("\xff", 1));	       /* not UTF-8 */
	CHECK(!name_valid("\xc0\xaf", 2));     /* overlong */
	CHECK(!name_valid("\xed\xa0\x80", 3)); /* surrogate */
	CHECK(!name_valid("\xe2\x82", 2));     /* truncated */
	CHECK(name_valid("\xe2\x82\xac", 3));  /* euro sign */
	CHECK(!name_valid("\xc2\x9b"
			  "2J",
			  4));		    /* U+009B, CSI */
	CHECK(!name_valid("a\xc2\x85", 3)); /* U+0085, next line */
	CHECK(!name_valid("a\xc2\x80", 3)); /* U+0080 */
	CHECK(name_valid("a\xc2\xa0", 3));  /* U+00A0 is printable */
	CHECK(!name_valid("\xe2\x80\xae"
			  "gpj.exe",
			  10));			/* U+202E */
	CHECK(!name_valid("a\xe2\x80\xaa", 4)); /* U+202A */
	CHECK(!name_valid("a\xe2\x81\xa6", 4)); /* U+2066 */
	CHECK(!name_valid("a\xe2\x81\xa9", 4)); /* U+2069 */
	CHECK(name_valid("a\xe2\x81\xaa", 4));	/* U+206A, past the isolates */
	CHECK(!name_valid("a\xe2\x80\xa8", 4)); /* U+2028 */
	CHECK(!name_valid("a\xe2\x80\xa9", 4)); /* U+2029 */
	CHECK(!name_valid("a\xe2\x80\x8f", 4)); /* U+200F */
	CHECK(name_valid("a\xe2\x80\x90", 4));	/* U+2010, a hyphen */
	CHECK(snapshot_kind("state") == SNAP_STATE);
	CHECK(snapshot_kind("raw.json") == SNAP_RAW);
	CHECK(snapshot_kind("raw") == -1);
}

static void test_bad_answers(void)
{
	static const char *const bad[] = {
		"",
		"not json",
		"<html>oops</html>",
		"[]",
		"42",
		"{\"items\": 3}",
		"{\"items\": {}}",
		"{\"total_items\": 0}",
		"{\"items\": [",
		"null",
	};
	char err[160];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct snapshot *s = NULL;

		char *copy = strdup(bad[i]);

		err[0] = '\0';
		CHECK(snapshot_parse(copy, strlen(copy), NULL, &ctx, &s, err, sizeof(err)) < 0);
		CHECK(s == NULL && err[0] != '\0');
		free(copy);
	}
}

struct diff_log {
	int entries, inodes, root;
	char names[512];
};

static void log_entry(void *arg, uint64_t parent, const char *name, size_t len)
{
	struct diff_log *d = arg;

	d->entries++;
	strncat(d->names, name, len);
	strcat(d->names, " ");
}

static void log_inode(void *arg, uint64_t nodeid)
{
	struct diff_log *d = arg;

	d->inodes++;
	if (nodeid == SNAP_ROOT_NODEID)
		d->root++;
}

static void count_gone(void *arg, const struct snapshot *old, const struct snap_node *n)
{
	(*(int *)arg)++;
}

static void test_versions(void)
{
	static const struct snap_diff_ops ops = { log_entry, log_inode };
	struct snapshot *a, *b, *c, *a2, *b2, *c2;
	const struct snap_task *ta, *tb;
	struct diff_log d;
	int gone = 0;

	ctx.now_ns = 1000 * NS;
	a = parse("{\"items\": [{\"id\": \"x\", \"state\": \"PENDING\", \"timestamp\": 5},"
		  "{\"id\": \"y\", \"state\": \"PENDING\", \"timestamp\": 6}]}",
		  NULL);
	/* nothing changed: same node ids, same mtimes, no diff */
	ctx.now_ns = 1000 * NS; /* same second on purpose */
	b = parse("{\"items\": [{\"id\": \"y\", \"state\": \"PENDING\", \"timestamp\": 6},"
		  "{\"id\": \"x\", \"state\": \"PENDING\", \"timestamp\": 5}]}",
		  a);
	CHECK(a && b);
	if (!a || !b)
		return;
	memset(&d, 0, sizeof(d));
	CHECK(diff_snapshots(a, b, ctx.hash_key, &ops, &d) == 0);
	diff_for_each_gone(a, b, count_gone, &gone);
	CHECK(gone == 0);
	CHECK(b->mtime_ns == a->mtime_ns);
	snapshot_put(b);
	/* a task without a timestamp keeps its folder time across refreshes */
	ctx.now_ns = 1000 * NS;
	c = parse("{\"items\": [{\"id\": \"x\", \"state\": \"PENDING\", \"timestamp\": 5},"
		  "{\"id\": \"y\", \"state\": \"PENDING\", \"timestamp\": 6},"
		  "{\"id\": \"nots\"}]}",
		  a);
	ctx.now_ns = 2000 * NS;
	b = parse("{\"items\": [{\"id\": \"x\", \"state\": \"PENDING\", \"timestamp\": 5},"
		  "{\"id\": \"y\", \"state\": \"PENDING\", \"timestamp\": 6},"
		  "{\"id\": \"nots\"}]}",
		  c);
	memset(&d, 0, sizeof(d));
	CHECK(b && c && diff_snapshots(c, b, ctx.hash_key, &ops, &d) == 0);
	CHECK(b && snapshot_find(b, ctx.hash_key, "nots", 4)->mtime == 1000);
	snapshot_put(c);
	ctx.now_ns = 1000 * NS;

	/* same-size change in the same second: new node id, later mtime */
	c = parse("{\"items\": [{\"id\": \"x\", \"state\": \"DELETED\", \"timestamp\": 5},"
		  "{\"id\": \"z\", \"state\": \"NEW\", \"timestamp\": 7}]}",
		  b);
	CHECK(c != NULL);
	if (!c)
		goto out;
	ta = snapshot_find(b, ctx.hash_key, "x", 1);
	tb = snapshot_find(c, ctx.hash_key, "x", 1);
	CHECK(ta->file[SNAP_STATE].len == tb->file[SNAP_STATE].len);
	CHECK(ta->file[SNAP_STATE].nodeid != tb->file[SNAP_STATE].nodeid);
	CHECK(tb->file[SNAP_STATE].mtime_ns > ta->file[SNAP_STATE].mtime_ns);
	CHECK(ta->file[SNAP_TIMESTAMP].nodeid == tb->file[SNAP_TIMESTAMP].nodeid);
	CHECK(c->mtime_ns > b->mtime_ns);

	memset(&d, 0, sizeof(d));
	diff_snapshots(b, c, ctx.hash_key, &ops, &d);
	/* x: state and raw.json; y and nots removed; z added; root listing;
	 * .by-state: PENDING went, DELETED and NEW came (3), x left PENDING for
	 * DELETED (2), y left PENDING, z joined NEW; the four file names of
	 * each folder that came or went (y, nots, z) */
	CHECK(d.entries == 5 + 3 + 4 + 3 * 4);
	CHECK(strstr(d.names, "state ") && strstr(d.names, "raw.json ") && strstr(d.names, "y ") &&
	      strstr(d.names, "z "));
	/* the root, .by-state, and the PENDING, DELETED and NEW folders */
	CHECK(d.root == 1 && d.inodes == 5);
	gone = 0;
	diff_for_each_gone(b, c, count_gone, &gone);
	CHECK(gone == 2 + 3 + 1); /* x's two changed files, y's three, nots' raw.json */
	snapshot_put(c);

	/* x goes and comes back within the same second with same-size content */
	ctx.now_ns = 5000 * NS;
	a2 = parse("{\"items\": [{\"id\": \"w\", \"state\": \"AAAA\"}, {\"id\": \"q\"}]}", NULL);
	b2 = parse("{\"items\": [{\"id\": \"q\"}]}", a2);
	c2 = parse("{\"items\": [{\"id\": \"w\", \"state\": \"BBBB\"}, {\"id\": \"q\"}]}", b2);
	CHECK(a2 && b2 && c2);
	if (a2 && c2) {
		const struct snap_task *w1 = snapshot_find(a2, ctx.hash_key, "w", 1);
		const struct snap_task *w2 = snapshot_find(c2, ctx.hash_key, "w", 1);

		CHECK(w2->file[SNAP_STATE].mtime_ns > w1->file[SNAP_STATE].mtime_ns);
	}
	/* a clock stepped back: new versions are still newer than every old one */
	ctx.now_ns = 10 * NS;
	snapshot_put(b2);
	b2 = parse("{\"items\": [{\"id\": \"w\", \"state\": \"CCCC\"}, {\"id\": \"q\"}]}", c2);
	CHECK(b2 && c2);
	if (b2 && c2)
		CHECK(snapshot_find(b2, ctx.hash_key, "w", 1)->file[SNAP_STATE].mtime_ns >
		      c2->tasks[0].file[SNAP_RAW].mtime_ns);
	snapshot_put(a2);
	snapshot_put(b2);
	snapshot_put(c2);
out:
	snapshot_put(a);
	snapshot_put(b);
}

/* Stamps move to the moment of showing; carried-over versions keep theirs. */
static void test_restamp(void)
{
	struct snapshot *a, *b;
	const struct snap_task *ta, *tb;
	int64_t old_state, old_op, newest;

	ctx.now_ns = 7000 * NS;
	a = parse("{\"items\": [{\"id\": \"r\", \"state\": \"A\", \"operation\": \"X\"}]}", NULL);
	ctx.now_ns = 7100 * NS;
	b = parse("{\"items\": [{\"id\": \"r\", \"state\": \"B\", \"operation\": \"X\"}]}", a);
	CHECK(a && b);
	if (!a || !b)
		return;
	tb = snapshot_find(b, ctx.hash_key, "r", 1);
	old_state = tb->file[SNAP_STATE].mtime_ns;
	old_op = tb->file[SNAP_OPERATION].mtime_ns;
	newest = ctx.newest_ns;
	CHECK(old_state == 7100 * NS);
	snapshot_restamp(b, &ctx, 7100 * NS - 5); /* earlier: nothing moves */
	CHECK(tb->file[SNAP_STATE].mtime_ns == old_state && ctx.newest_ns == newest);
	snapshot_restamp(b, &ctx, 7105 * NS);
	CHECK(tb->file[SNAP_STATE].mtime_ns == 7105 * NS);
	CHECK(tb->file[SNAP_RAW].mtime_ns == tb->file[SNAP_STATE].mtime_ns + 1);
	CHECK(tb->file[SNAP_OPERATION].mtime_ns == old_op); /* not new: kept */
	CHECK(b->mtime_ns == a->mtime_ns);		    /* the listing did not change */
	CHECK(ctx.newest_ns == newest + 5 * NS && ctx.first_ns == 7105 * NS);
	ta = snapshot_find(a, ctx.hash_key, "r", 1);
	CHECK(ta->file[SNAP_STATE].mtime_ns == 7000 * NS); /* the old snapshot untouched */
	snapshot_put(a);
	snapshot_put(b);
}

static void test_views(void)
{
	struct snapshot *s =
		parse("{\"items\": ["
		      "{\"id\": \"a\", \"state\": \"FAILED\", \"operation\": \"CREATE\"},"
		      "{\"id\": \"b\", \"state\": \"FAILED\", \"operation\": \"DELETE\"},"
		      "{\"id\": \"c\", \"state\": \"DONE\"},"
		      "{\"id\": \"d\", \"state\": 7, \"operation\": \"../x\"},"
		      "{\"id\": \"e\", \"state\": \".hidden\", \"operation\": \"\"}]}",
		      NULL);
	const struct snap_value *failed, *done;
	const struct snap_view *v;

	CHECK(s != NULL);
	if (!s)
		return;
	v = &s->view[SNAP_VIEW_STATE];
	CHECK(v->nvalues == 2); /* 7, ".hidden" are not safe names or not strings */
	failed = view_find_value(s, ctx.hash_key, SNAP_VIEW_STATE, "FAILED", 6);
	done = view_find_value(s, ctx.hash_key, SNAP_VIEW_STATE, "DONE", 4);
	CHECK(failed && failed->count == 2 && done && done->count == 1);
	CHECK(view_find_value(s, ctx.hash_key, SNAP_VIEW_STATE, "FAIL", 4) == NULL);
	CHECK(view_find_value(s, ctx.hash_key, SNAP_VIEW_OPERATION, "FAILED", 6) == NULL);
	if (failed) {
		CHECK_STR(s->arena + failed->name_off, "FAILED");
		for (uint32_t i = 0; i < failed->count; i++) {
			const struct snap_task *t = &s->tasks[v->members[failed->first + i]];

			CHECK(view_has_task(s, SNAP_VIEW_STATE, failed, t));
			if (i)
				CHECK(s->tasks[v->members[failed->first + i - 1]].key < t->key);
		}
		CHECK(!view_has_task(s, SNAP_VIEW_STATE, failed,
				     snapshot_find(s, ctx.hash_key, "c", 1)));
	}
	CHECK(s->view[SNAP_VIEW_OPERATION].nvalues == 2); /* CREATE, DELETE */
	CHECK(view_of(SNAP_VIEW_ROOT_NODEID) == SNAP_VIEW_STATE);
	CHECK(view_of(SNAP_VIEW_ROOT_NODEID + 1) == SNAP_VIEW_OPERATION);
	CHECK(view_of(SNAP_ROOT_NODEID) == -1);
	snapshot_put(s);
}

/* Unchanged items are taken over unparsed, and that changes nothing a reader sees. */
static void test_reuse(void)
{
	static const char *const two[] = {
		"{\"items\": [{\"id\": \"x\", \"state\": \"PENDING\", \"timestamp\": 5},"
		"{\"id\": \"y\", \"state\": \"PENDING\"}, {\"id\": \"z\", \"state\": 7}]}",
		/* w is new, y changed; x and z are the same bytes, found in answer order */
		"{\"items\": [{\"id\": \"w\", \"operation\": \"CREATE\"}, "
		"{\"id\": \"x\", \"state\": \"PENDING\", \"timestamp\": 5}, "
		"{\"id\": \"y\", \"state\": \"FAILED\"}, {\"id\": \"z\", \"state\": 7}]}",
	};
	struct snapshot *a, *b, *c;
	struct snap_ctx saved;

	ctx.now_ns = 3000 * NS;
	a = parse(two[0], NULL);
	CHECK(a && ctx.reused == 0);
	ctx.now_ns += NS;
	saved = ctx;
	b = parse(two[1], a);
	CHECK(b && ctx.reused == 2);
	CHECK(b && b->stats.unscanned == 2 && b->stats.items == 4);
	ctx = saved;
	ctx.no_reuse = true;
	c = parse(two[1], a);
	ctx.no_reuse = false;
	CHECK(c && ctx.reused == 0 && c->stats.unscanned == 0);
	if (!a || !b || !c)
		return;
	CHECK(b->ntasks == 4 && c->ntasks == 4);
	for (size_t i = 0; i < b->ntasks && i < c->ntasks; i++) {
		const struct snap_task *x = &b->tasks[i], *y = &c->tasks[i];

		CHECK(x->key == y->key && x->mtime == y->mtime && x->strings == y->strings);
		for (int k = 0; k < SNAP_NKINDS; k++) {
			CHECK(x->file[k].nodeid == y->file[k].nodeid);
			CHECK(x->file[k].mtime_ns == y->file[k].mtime_ns);
			CHECK(x->file[k].len == y->file[k].len);
			if (x->file[k].nodeid && x->file[k].len == y->file[k].len) {
				char *f1, *f2;
				const char *d1 = snap_file_read(b, x, k, &f1);
				const char *d2 = snap_file_read(c, y, k, &f2);

				CHECK(d1 && d2 && memcmp(d1, d2, x->file[k].len) == 0);
				free(f1);
				free(f2);
			}
		}
	}
	CHECK_STR(file_text(b, "z", SNAP_STATE), "7\n");
	CHECK_STR(file_text(b, "y", SNAP_STATE), "FAILED\n");
	CHECK(strstr(file_text(b, "x", SNAP_RAW), "\"timestamp\": 5") != NULL);
	snapshot_put(a);
	snapshot_put(b);
	snapshot_put(c);
}

#define TPL_ITEM(id, state, extra)                                                   \
	"{\"@id\": \"/api/v4/managed-slicer/ingest-points/tasks/" id "\", "          \
	"\"@type\": \"ReservedEndpointTask\", \"id\": \"" id "\", \"state\": " state \
	", \"operation\": \"CREATE\", \"timestamp\": 1660000000" extra "}"

static const struct snap_file *raw_of(const struct snapshot *s, const char *id)
{
	const struct snap_task *t = snapshot_find(s, ctx.hash_key, id, strlen(id));

	return t ? &t->file[SNAP_RAW] : NULL;
}

/*
 * raw.json of an item of the documented shape is rendered, not stored;
 * any other item's is stored.  Either way the bytes are the printed item.
 */
static void test_template(void)
{
	static const char one[] = "{\"items\": [" TPL_ITEM("t1", "\"PENDING\"", "") ", " TPL_ITEM(
		"t2", "\"A\\\"B\"",
		"") ", " TPL_ITEM("t3", "\"PENDING\"",
				  ", \"x\": 1") ", " TPL_ITEM("t4", "7",
							      "") ", "
								  "{\"@id\": \"/x/t5\", \"@type\": "
								  "\"ReservedEndpointTask\", "
								  "\"id\": \"t5\", \"state\": "
								  "\"P\", \"operation\": "
								  "\"CREATE\", "
								  "\"timestamp\": 1660000000}"
								  "]}";
	static const char two[] = "{\"items\": [" TPL_ITEM("t1", "\"FAILED\"", "") ", " TPL_ITEM(
		"t3", "\"PENDING\"", "") "]}";
	static const char want1[] =
		"{\n  \"@id\": \"/api/v4/managed-slicer/ingest-points/tasks/t1\",\n"
		"  \"@type\": \"ReservedEndpointTask\",\n  \"id\": \"t1\",\n"
		"  \"state\": \"PENDING\",\n  \"operation\": \"CREATE\",\n"
		"  \"timestamp\": 1660000000\n}\n";
	struct snapshot *a = parse(one, NULL), *b, *c;
	const struct snap_file *f;
	uint64_t id1, id3;

	CHECK(a != NULL);
	if (!a)
		return;
	f = raw_of(a, "t1");
	CHECK(f && f->off == SNAP_OFF_TEMPLATE && f->len == sizeof(want1) - 1);
	CHECK_STR(file_text(a, "t1", SNAP_RAW), want1);
	/* an escaped string, another field, a number for state: JSON the renderer
	 * would not give, or only in the wrong order: stored */
	CHECK(raw_of(a, "t2")->off != SNAP_OFF_TEMPLATE);
	CHECK(strstr(file_text(a, "t2", SNAP_RAW), "\"state\": \"A\\\"B\"") != NULL);
	CHECK(raw_of(a, "t3")->off != SNAP_OFF_TEMPLATE);
	f = raw_of(a, "t4");
	CHECK(f && f->off == SNAP_OFF_TEMPLATE); /* a number renders as it is */
	CHECK(strstr(file_text(a, "t4", SNAP_RAW), "\"state\": 7,") != NULL);
	CHECK(raw_of(a, "t5")->off != SNAP_OFF_TEMPLATE); /* another @id */
	id1 = raw_of(a, "t1")->nodeid;
	id3 = raw_of(a, "t3")->nodeid;

	/* versions: t1 changes (new id), t3 loses its extra field (new id, now rendered) */
	b = parse(two, a);
	CHECK(b != NULL);
	if (b) {
		CHECK(raw_of(b, "t1")->off == SNAP_OFF_TEMPLATE && raw_of(b, "t1")->nodeid != id1);
		CHECK(strstr(file_text(b, "t1", SNAP_RAW), "\"FAILED\"") != NULL);
		CHECK(raw_of(b, "t3")->off == SNAP_OFF_TEMPLATE && raw_of(b, "t3")->nodeid != id3);
		/* the same again: every file keeps its id, rendered or reused */
		c = parse(two, b);
		CHECK(c && raw_of(c, "t1")->nodeid == raw_of(b, "t1")->nodeid &&
		      raw_of(c, "t3")->nodeid == raw_of(b, "t3")->nodeid &&
		      raw_of(c, "t1")->off == SNAP_OFF_TEMPLATE);
		if (c)
			CHECK_STR(file_text(c, "t3", SNAP_RAW), file_text(b, "t3", SNAP_RAW));
		snapshot_put(c);
		/* built without reuse, a rendered file still matches the stored one */
		ctx.no_reuse = true;
		c = parse(two, b);
		ctx.no_reuse = false;
		CHECK(c && raw_of(c, "t1")->nodeid == raw_of(b, "t1")->nodeid);
		snapshot_put(c);
		/* a build that stores everything keeps the ids of rendered files */
		ctx.no_template = ctx.no_reuse = true;
		c = parse(two, b);
		ctx.no_template = ctx.no_reuse = false;
		CHECK(c && raw_of(c, "t1")->off != SNAP_OFF_TEMPLATE &&
		      raw_of(c, "t1")->nodeid == raw_of(b, "t1")->nodeid);
		snapshot_put(c);
	}
	snapshot_put(a);
	snapshot_put(b);
}

int main(void)
{
	test_seed();
	test_odd_fields();
	test_exact_numbers();
	test_odd_escapes();
	test_bad_items();
	test_names();
	test_bad_answers();
	test_versions();
	test_views();
	test_reuse();
	test_template();
	test_restamp(); /* last: it moves the shared clock far ahead */
	return check_done("test_snapshot");
}
