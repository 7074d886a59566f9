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

/*
 * name_valid - true when @name (@len bytes, not NUL-terminated) may be a
 * folder name in the mount: 1 to 255 bytes of strict UTF-8, not starting
 * with '.', no '/', no C0 or C1 control character or DEL, no U+2028 or
 * U+2029, and no bidirectional control (U+061C, U+200E, U+200F, U+202A to
 * U+202E, U+2066 to U+2069).
 */
bool name_valid(const char *name, size_t len);

#endif
