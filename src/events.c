// SPDX-License-Identifier: MIT
/* The change feed's lines from two snapshots; the value escape. */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool room(struct events_buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (b->len + n <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void put(struct events_buf *b, const char *s, size_t n)
{
	if (room(b, n)) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

void events_escape(struct events_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";

	if (len == 1 && s[0] == '-') {
		put(b, "\\-", 2);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[4] = { '\\', 0, 0, 0 };
		size_t n = 2;

		switch (c) {
		case '\\':
			esc[1] = '\\';
			break;
		case '\t':
			esc[1] = 't';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		default:
			if (c >= 0x20 && c != 0x7f) {
				put(b, (const char *)&s[i], 1);
				continue;
			}
			esc[1] = 'x';
			esc[2] = hex[c >> 4];
			esc[3] = hex[c & 15];
			n = 4;
		}
		put(b, esc, n);
	}
}

/* a file's value: its bytes without the newline every file ends with; - when absent */
static void value(struct events_buf *b, const struct snapshot *s, const struct snap_task *t,
		  enum snap_kind kind)
{
	const struct snap_file *f = t ? &t->file[kind] : NULL;

	if (!f || !f->nodeid) {
		put(b, "-", 1);
		return;
	}
	/* state, operation or timestamp: always in the arena */
	events_escape(b, s->arena + f->off, f->len ? f->len - 1 : 0);
}

struct line {
	struct events_buf *b;
	const char *when;
	size_t n;
};

static void line(struct line *l, const struct snapshot *id_s, const struct snap_task *id_t,
		 const char *kind, const char *field, const struct snapshot *os,
		 const struct snap_task *ot, const struct snapshot *ns, const struct snap_task *nt,
		 enum snap_kind vkind)
{
	struct events_buf *b = l->b;

	put(b, l->when, strlen(l->when));
	put(b, "\t", 1);
	events_escape(b, snap_task_id(id_s, id_t), id_t->id_len);
	put(b, "\t", 1);
	put(b, kind, strlen(kind));
	put(b, "\t", 1);
	put(b, field, strlen(field));
	put(b, "\t", 1);
	value(b, os, ot, vkind);
	put(b, "\t", 1);
	value(b, ns, nt, vkind);
	put(b, "\n", 1);
	l->n++;
}

/*
 * Whether @o and @n, which share a key, are one task.  snapshot.c hands a
 * file's node id on only to the same id, so one shared node id settles it
 * without touching the ids (two reads far apart in memory per task, most
 * of the walk's time at 100k tasks); only a task with every file new
 * compares its id.
 */
static bool same_task(const struct snapshot *old, const struct snap_task *o,
		      const struct snapshot *new, const struct snap_task *n)
{
	for (int k = 0; k < SNAP_NKINDS; k++)
		if (o->file[k].nodeid && o->file[k].nodeid == n->file[k].nodeid)
			return true;
	return o->id_len == n->id_len &&
	       memcmp(snap_task_id(old, o), snap_task_id(new, n), o->id_len) == 0;
}

size_t events_lines(const struct snapshot *old, const struct snapshot *new, int64_t when_ns,
		    struct events_buf *out)
{
	static const enum snap_kind fields[] = { SNAP_STATE, SNAP_OPERATION, SNAP_TIMESTAMP };
	char when[32];
	time_t secs = (time_t)(when_ns / 1000000000);
	struct tm tm;
	struct line l = { out, when, 0 };
	size_t i = 0, j = 0;

	if (!gmtime_r(&secs, &tm) || !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(when, sizeof(when), "-");
	while (i < old->ntasks || j < new->ntasks) {
		const struct snap_task *o = i < old->ntasks ? &old->tasks[i] : NULL;
		const struct snap_task *n = j < new->ntasks ? &new->tasks[j] : NULL;

		if (o && n && o->key == n->key && !same_task(old, o, new, n)) {
			/* two ids with one 59-bit key: one went, one came */
			line(&l, old, o, "removed", "-", old, o, NULL, NULL, SNAP_STATE);
			line(&l, new, n, "added", "-", NULL, NULL, new, n, SNAP_STATE);
			i++, j++;
		} else if (n && (!o || n->key < o->key)) {
			line(&l, new, n, "added", "-", NULL, NULL, new, n, SNAP_STATE);
			j++;
		} else if (o && (!n || o->key < n->key)) {
			line(&l, old, o, "removed", "-", old, o, NULL, NULL, SNAP_STATE);
			i++;
		} else {
			for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++)
				if (o->file[fields[k]].nodeid != n->file[fields[k]].nodeid)
					line(&l, new, n, "changed", snap_file_names[fields[k]], old,
					     o, new, n, fields[k]);
			i++, j++;
		}
	}
	return l.n;
}
