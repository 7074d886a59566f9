/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_NODES_H
#define INGESTFS_NODES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The kernel's lookup counts, by node id, and the content of node ids that
 * no current snapshot holds any more (an old version of a file some process
 * still has open, or a .status version).  Not locked: the caller (cache.c)
 * holds its lock around every call.
 */

struct blob {
	atomic_uint refs;
	uint64_t ino; /* st_ino */
	int64_t mtime_ns;
	size_t len;
	char data[];
};

/* blob_new - a blob holding a copy of @data, one reference; NULL on ENOMEM */
struct blob *blob_new(uint64_t ino, int64_t mtime_ns, const char *data, size_t len);
struct blob *blob_get(struct blob *b);
void blob_put(struct blob *b);

struct nodes;

struct nodes *nodes_new(void);
/* nodes_free - drops every entry and the blobs they own */
void nodes_free(struct nodes *t);

/* nodes_ref - add @n lookups to @nodeid; 0 or -ENOMEM */
int nodes_ref(struct nodes *t, uint64_t nodeid, uint64_t n);
/* nodes_count - the lookup count of @nodeid, 0 when unknown */
uint64_t nodes_count(const struct nodes *t, uint64_t nodeid);
/* nodes_blob - the blob kept for @nodeid, borrowed; NULL if none */
struct blob *nodes_blob(const struct nodes *t, uint64_t nodeid);
/*
 * nodes_set_blob - give @nodeid blob @b, taking @b's reference (dropped at
 * once if @nodeid is not counted); -ENOMEM leaves @b to the caller
 */
int nodes_set_blob(struct nodes *t, uint64_t nodeid, struct blob *b);
/*
 * nodes_forget - take @n lookups from @nodeid.  When the count reaches 0
 * the entry goes and its blob, if any, is returned for the caller to
 * blob_put() outside the lock.
 */
struct blob *nodes_forget(struct nodes *t, uint64_t nodeid, uint64_t n);
/* nodes_size - entries held; nodes_blobs - how many of them own a blob */
size_t nodes_size(const struct nodes *t);
size_t nodes_blobs(const struct nodes *t);

#endif
