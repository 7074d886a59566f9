/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_HASH_H
#define INGESTFS_HASH_H

/*
 * Keyed hashing.  Task ids and view values come from the network, so
 * every index built from them uses a keyed hash (SipHash-2-4) under a
 * per-mount random key: nobody who cannot read the key can craft
 * collisions.  Pure functions: no allocation, no state.
 */

#include <stddef.h>
#include <stdint.h>

/* hash_siphash24 - SipHash-2-4 of @len bytes at @in under the 128-bit key @k */
uint64_t hash_siphash24(const uint64_t k[2], const void *in, size_t len);

#endif
