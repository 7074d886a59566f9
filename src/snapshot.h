/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_SNAPSHOT_H
#define INGESTFS_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "items.h"
#include "view.h"

/*
 * A snapshot is one parsed API answer, immutable once built and shared by
 * reference count: its tasks, their files' bytes (one arena), the file
 * node index and the views (view.h).  snapshot_parse() builds one from
 * the items json.h reads; snapshot_put() of the last reference frees it
 * all.  Everything here is pure: no clock (ctx->now_ns is given), no I/O, no
 * locks; the cache publishes snapshots and diff.h compares them.
 *
 * Node ids (what the kernel caches by) follow one rule: the bytes and
 * attributes behind a node id never change.  A task folder's node id is
 * derived from its id (stable as long as the hash key is kept); a file's
 * node id names one version of its content and is its st_ino too, so a
 * changed file looks like one replaced by rename(2): new content, new
 * inode number, never reused (the allocator only moves forward, and the
 * state folder keeps it across restarts).
 *
 *   1                       the root
 *   [16, 2^61)              file versions, from ctx->next_nodeid
 *   [2^61, 2^62)            .status versions (cache.c)
 *   2^62 | key << 3         task folders
 *   ... | 5 + view          a task's symlink in a view (same in every value)
 *   2^62 | vkey << 3 | 7    a view's value folder (vkey: hash of view+value)
 *   3, 4                    the view roots .by-state and .by-operation
 *
 * Everything stays below 2^63 for programs that keep inodes signed.
 */

enum snap_kind { SNAP_STATE, SNAP_OPERATION, SNAP_TIMESTAMP, SNAP_RAW, SNAP_NKINDS };

#define SNAP_ROOT_NODEID	1ULL
#define SNAP_FIRST_FILE_NODEID	16ULL
#define SNAP_LAST_FILE_NODEID	(SNAP_STATUS_NODEID_BASE - 1)
#define SNAP_STATUS_NODEID_BASE (1ULL << 61)
#define SNAP_DIR_BIT		(1ULL << 62)
#define SNAP_KEY_MASK		((1ULL << 59) - 1)
#define SNAP_DIR_OFFSET		3    /* readdir cookies 1 and 2 are "." and ".." */
#define SNAP_VIEW_ROOT_NODEID	3ULL /* + view */
#define SNAP_LOW_LINK		5    /* + view */
#define SNAP_LOW_VALUE		7

static inline uint64_t snap_dir_nodeid(uint64_t key)
{
	return SNAP_DIR_BIT | (key << 3);
}

/* true for every path-derived node id: task folders, links, value folders */
static inline bool snap_is_dir_nodeid(uint64_t nodeid)
{
	return (nodeid & SNAP_DIR_BIT) != 0;
}

static inline uint64_t snap_link_nodeid(uint64_t key, enum snap_view_kind view)
{
	return SNAP_DIR_BIT | (key << 3) | (uint64_t)(SNAP_LOW_LINK + view);
}

static inline uint64_t snap_value_nodeid(uint64_t vkey)
{
	return SNAP_DIR_BIT | (vkey << 3) | SNAP_LOW_VALUE;
}

/* .events generations: one node id (and st_ino) each, while it grows */
#define SNAP_EVENTS_NODEID_BASE (SNAP_STATUS_NODEID_BASE + (1ULL << 60))

/* true for the node ids of .status versions */
static inline bool snap_is_status_nodeid(uint64_t nodeid)
{
	return nodeid >= SNAP_STATUS_NODEID_BASE && nodeid < SNAP_EVENTS_NODEID_BASE;
}

/* true for the node ids of .events generations */
static inline bool snap_is_events_nodeid(uint64_t nodeid)
{
	return nodeid >= SNAP_EVENTS_NODEID_BASE && nodeid < SNAP_DIR_BIT;
}

static inline uint64_t snap_dir_key(uint64_t nodeid)
{
	return (nodeid & ~SNAP_DIR_BIT) >> 3;
}

struct snap_file {
	uint64_t nodeid;  /* and st_ino; 0 when the field is missing or null */
	int64_t mtime_ns; /* when this content was first seen, wall clock ns */
	uint32_t off;	  /* content: arena[off, off + len) */
	uint32_t len;
};

struct snap_task {
	uint64_t key;	    /* keyed hash of the id: readdir order, cookie, inode */
	uint64_t item_hash; /* keyed hash of the item's bytes: unchanged items are reused */
	int64_t mtime;	    /* s; the task's timestamp */
	uint32_t id_off, id_len;
	uint32_t strings;  /* bit k: field k was a JSON string */
	uint32_t item_off; /* where its item is in the answer... */
	uint32_t item_len; /* ...and its bytes there */
	/* 1 + the place of an item with these bytes in the answer the state
	 * file holds whole (state.h), 0 if none: only the refresher reads or
	 * writes it, so a full save may set it on a published snapshot */
	uint32_t base_pos;
	uint32_t item_arena; /* what items.c charged for it: arena bytes... */
	uint32_t item_parse; /* ...and parse bytes (UINT32_MAX: too many to keep) */
	struct snap_file file[SNAP_NKINDS];
};

struct snap_node {
	uint64_t nodeid;
	uint32_t task; /* index into tasks[] */
	uint32_t kind;
};

struct snapshot {
	atomic_uint refs;
	/* a newer snapshot is being put in place: names from this one are not cached */
	atomic_bool retiring;
	int64_t mtime_ns;	/* root folder: when this listing was first seen */
	int64_t views_mtime_ns; /* view folders: when the first snapshot was built */
	size_t ntasks;
	struct snap_task *tasks; /* sorted by key */
	uint32_t *order;	 /* task indexes in the answer's order */
	size_t nnodes;
	struct snap_node *nodes; /* file node ids, sorted */
	char *arena;
	size_t arena_len;
	struct snap_view view[SNAP_NVIEWS];
	struct snap_stats stats;
};

struct snap_ctx {
	uint64_t hash_key[2]; /* per-mount random key for the id hash */
	int64_t now_ns;	      /* wall clock when the answer arrived */
	uint64_t next_nodeid; /* file node id allocator; advanced by parse */
	int64_t newest_ns;    /* the latest mtime given out; parse never lowers it */
	bool stamped;	      /* this parse has given out a stamp... */
	int64_t first_ns;     /* ...and this was the first */
	bool no_reuse;	      /* tests: build every task from its item, reuse nothing */
	bool no_template;     /* tests: store every raw.json (SNAP_OFF_TEMPLATE unused) */
	size_t reused;	      /* tasks the last parse took over from @prev unparsed */
};

extern const char *const snap_file_names[SNAP_NKINDS];

/*
 * snapshot_parse - build a snapshot from an API answer.  @prev (may be
 * NULL) lends node ids and mtimes to files whose content did not change,
 * and a task whose item has the same bytes as in @prev (same keyed hash)
 * is copied from it without being parsed again: the result is the one a
 * full build would give, at the cost of a memcpy.
 * @body may be rewritten in place (same length), see json_answer_parse().  Returns 0 with *@out
 * holding one reference, or -EINVAL/-ENOMEM/-E2BIG with a one-line cause in
 * @err.  Pure: no clock, no I/O, no locks.
 */
int snapshot_parse(char *body, size_t len, const struct snapshot *prev, struct snap_ctx *ctx,
		   struct snapshot **out, char *err, size_t errlen);

/*
 * snapshot_reindex - rebuild the node index of @s after its files' node
 * ids were set anew (state.c restoring saved ones).  0, -ENOMEM, or
 * -EINVAL when two files share a node id (then @s must only be put).
 */
int snapshot_reindex(struct snapshot *s);

/*
 * snapshot_restamp - move the stamps the last parse gave out (the new
 * versions of @s, just built with @ctx) forward so that the first is
 * @at_ns; nothing when that is not later.  Their order, 1 ns apart, and
 * their whole second after the last change stay.  Before @s is shown.
 */
void snapshot_restamp(struct snapshot *s, struct snap_ctx *ctx, int64_t at_ns);

/* snapshot_item_hash - the keyed hash of an item's bytes (snap_task.item_hash) */
uint64_t snapshot_item_hash(const uint64_t hash_key[2], const char *item, size_t len);

struct snapshot *snapshot_get(struct snapshot *s);
void snapshot_put(struct snapshot *s);

static inline const char *snap_task_id(const struct snapshot *s, const struct snap_task *t)
{
	return s->arena + t->id_off;
}

/*
 * A raw.json that is exactly the API's documented item, pretty printed
 *
 *   {"@id": "/api/v4/managed-slicer/ingest-points/tasks/<id>",
 *    "@type": "ReservedEndpointTask", "id": "<id>",
 *    "state": ..., "operation": ..., "timestamp": ...}
 *
 * (nearly every item is) is not stored: it is rendered from the id and the
 * three field files when it is read, which saves a quarter KiB per task.
 * Its off is SNAP_OFF_TEMPLATE; its len is exact as for any file.  The
 * build keeps a rendering only when it is byte for byte the printed item.
 */
#define SNAP_OFF_TEMPLATE UINT32_MAX

/*
 * snap_template_len - the length of task @t's rendering (with the final
 * newline), 0 if it has none (a field is missing).  snap_template_render
 * writes it to @buf; @arena holds @t's id and field files.
 */
size_t snap_template_len(const struct snap_task *t);
void snap_template_render(const char *arena, const struct snap_task *t, char *buf);

/*
 * snap_file_read - the t->file[@k].len bytes of a file of @t (in @s): a
 * pointer into the arena, or a rendering malloc'd for a templated
 * raw.json, which is also put in *@to_free (else NULL) for the caller to
 * free.  NULL only when that malloc fails.
 */
const char *snap_file_read(const struct snapshot *s, const struct snap_task *t, enum snap_kind k,
			   char **to_free);

/* snapshot_body_hash - a keyed 64-bit hash of a whole answer, to spot repeats */
uint64_t snapshot_body_hash(const uint64_t hash_key[2], const char *body, size_t len);

/* snapshot_hash - the 59-bit key of an id under @hash_key */
uint64_t snapshot_hash(const uint64_t hash_key[2], const char *id, size_t len);

/* lookups: NULL / false when absent */
const struct snap_task *snapshot_find(const struct snapshot *s, const uint64_t hash_key[2],
				      const char *name, size_t len);
const struct snap_task *snapshot_find_key(const struct snapshot *s, uint64_t key);
bool snapshot_find_node(const struct snapshot *s, uint64_t nodeid, const struct snap_task **task,
			enum snap_kind *kind);
/* snapshot_seek - index of the first task whose readdir cookie is > @off */
size_t snapshot_seek(const struct snapshot *s, uint64_t off);
/* snapshot_kind - SNAP_* for a file name, or -1 */
int snapshot_kind(const char *name);

#endif
