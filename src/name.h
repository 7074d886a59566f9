/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_NAME_H
#define INGESTFS_NAME_H

/*
 * The rules for names the mount shows (task folders, view value folders).
 * A name comes from the network, so it must be one path component that
 * cannot escape its folder, hide, or fool a terminal.  Pure functions over
 * bytes: no allocation, no state.
 */

#include <stdbool.h>
#include <stddef.h>

/* name_utf8_valid - strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF */
bool name_utf8_valid(const char *s, size_t len);

/*
 * name_valid - true when @name (@len bytes, not NUL-terminated) may be a
 * folder name in the mount: 1 to 255 bytes of strict UTF-8, not starting
 * with '.', no '/', no control character.
 */
bool name_valid(const char *name, size_t len);

#endif
