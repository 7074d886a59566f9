/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_ITEMS_H
#define INGESTFS_ITEMS_H

/*
 * From answer bytes to the list of items worth building, before anything
 * is built: the answer is repaired (json.h) and checked (scan.h); each
 * item is kept or skipped with a reason (not strict JSON, no usable id,
 * nested too deep, too large), later items repeating an id are dropped,
 * and the whole answer is held to a memory budget derived from its size.
 * What the list holds is sorted by the keyed hash of the id, so the
 * snapshot's tasks come out in readdir order.
 *
 * The budget: building a snapshot from an answer of N bytes may take at
 * most ITEMS_BUDGET_BASE + ITEMS_BUDGET_RATIO x N bytes (the new
 * snapshot, the list, and the one item's parse tree alive at a time), so
 * a small answer cannot make the daemon large.  An item that alone would
 * take more than a quarter of it is skipped; an answer whose kept items
 * together would take more is refused whole, and the last good data stays.
 * The costs are upper bounds computed from the scan, before any allocation.
 *
 * The caller owns a struct item_list and frees it with items_free().
 * Pure: no clock, no I/O, no locks.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"

#define ITEMS_BUDGET_BASE  (32ULL << 20)
#define ITEMS_BUDGET_RATIO 4
#define ITEMS_MAX_DEPTH	   512 /* nesting an item may have: cJSON stops at 1000 */
/* a task's own structures at most: snapshot.c checks it at compile time */
#define ITEMS_TASK_COST 512

/* Why an item of the answer has no folder. */
enum items_skip {
	ITEMS_SKIP_NOT_OBJECT, /* the item is not a JSON object */
	ITEMS_SKIP_NO_ID,      /* its "id" is missing or not a string */
	ITEMS_SKIP_BAD_NAME,   /* its id cannot be a folder name (name.h) */
	ITEMS_SKIP_INVALID,    /* its bytes are not strict JSON */
	ITEMS_SKIP_TOO_DEEP,   /* nested deeper than ITEMS_MAX_DEPTH */
	ITEMS_SKIP_TOO_LARGE,  /* would take more than its share of the budget */
	ITEMS_SKIP_COLLISION,  /* another id has the same 59-bit keyed hash */
	ITEMS_NSKIPS
};

extern const char *const items_skip_names[ITEMS_NSKIPS];

struct snap_stats {
	size_t items;		   /* entries in the items array */
	size_t skipped;		   /* items not shown, for any reason below */
	size_t skip[ITEMS_NSKIPS]; /* ...by reason */
	size_t duplicates;	   /* items whose id came earlier */
	size_t unscanned;	   /* items known from the previous answer, not scanned again */
	size_t repaired;	   /* escapes json_repair() rewrote: 0, the bytes are as sent */
	int64_t total_items;	   /* as the API said, -1 if absent */
	const char *invalid;	   /* the first ITEMS_SKIP_INVALID cause, static */
	char examples[160];	   /* a few skipped ids, escaped, for the log */
};

/* One item to build. */
struct item_ref {
	uint64_t key;		 /* keyed hash of the id: sort order, folder node id */
	uint32_t idx;		 /* position in items, from 1: the first of equal ids wins */
	uint32_t off, len;	 /* the item's bytes in the body */
	uint32_t id_off, id_len; /* the decoded id: in the list's ids, or @prev's arena */
	uint32_t parse;		 /* bytes parsing it can take (saturated) */
	uint64_t arena;		 /* bytes its files and names can take in an arena */
	uint64_t hash;		 /* snapshot_item_hash of its bytes, when @ptask */
	uint32_t ptask;		 /* 1 + index of the task of @prev it is; 0: scanned */
};

struct item_list {
	struct item_ref *v; /* sorted by key; no two with the same key */
	size_t n, cap;
	struct arena ids;     /* decoded ids, NUL-terminated */
	const char *prev_ids; /* the arena of @prev, where known items' ids are */
	uint64_t arena;	      /* the sum of v[].arena */
	uint64_t budget;      /* bytes a build from this answer may take */
};

struct snapshot;

/*
 * items_collect - repair and check @body (may be rewritten in place, at
 * the same length), fill @l and @st.  An item whose bytes are those of a
 * task of @prev (may be NULL), found by walking @prev's tasks in answer
 * order along with the new answer and comparing keyed hashes, is not
 * scanned again: its id and costs are @prev's (the id stays in @prev's
 * arena: @prev must outlive the list), and it is put in key order by its
 * place in @prev, not sorted.  The list is the same as without @prev.  0, or -EINVAL (not an
 * answer), -EFBIG (over its memory budget), -E2BIG or -ENOMEM, with a one-line cause in @err.
 */
int items_collect(char *body, size_t len, const uint64_t hash_key[2], const struct snapshot *prev,
		  struct item_list *l, struct snap_stats *st, char *err, size_t errlen);
void items_free(struct item_list *l);

static inline const char *items_id(const struct item_list *l, const struct item_ref *r)
{
	return (r->ptask ? l->prev_ids : l->ids.buf) + r->id_off;
}

/* items_skipped - count one more item skipped for @why, with @example (may be NULL) */
void items_skipped(struct snap_stats *st, enum items_skip why, const char *example, size_t len);

/* items_skip_summary - "2 not strict JSON, 1 too large" into @buf, or "none" */
void items_skip_summary(const struct snap_stats *st, char *buf, size_t len);

#endif
