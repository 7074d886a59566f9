/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_HASH_H
#define INGESTFS_HASH_H

/*
 * Keyed hashing.  Task ids and view values come from the network, so
 * every index built from them uses a keyed hash (SipHash-2-4) under a
 * per-mount random key: nobody who cannot read the key can craft
 * collisions.  Pure functions: no allocation, no state.
 *
 * SipHash-1-3 (one round per word, three at the end: the variant Rust's
 * and Python's hash tables use) is for the bulk, where the hash only
 * spots bytes seen before: a whole answer, each item of it.  At some 24
 * MiB an answer, it is half the cost of 2-4.  The node ids derived from
 * ids stay on 2-4: they are kept across restarts and must not move.
 */

#include <stddef.h>
#include <stdint.h>

/* hash_siphash24 - SipHash-2-4 of @len bytes at @in under the 128-bit key @k */
uint64_t hash_siphash24(const uint64_t k[2], const void *in, size_t len);

/* hash_siphash13 - SipHash-1-3, the same inputs */
uint64_t hash_siphash13(const uint64_t k[2], const void *in, size_t len);

#endif
