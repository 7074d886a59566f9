// SPDX-License-Identifier: MIT
/* A read-only file system: statfs, and EROFS for every operation that would modify. */
#include "fs_priv.h"

#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct snapshot *s = cache_acquire(fs_of(req)->cache);
	struct statvfs sv;

	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = (s->arena_len + 4095) / 4096;
	sv.f_files = 2 + s->ntasks * (1 + SNAP_NKINDS);
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY;
	snapshot_put(s);
	fuse_reply_statfs(req, &sv);
}

void fs_erofs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		      struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

void fs_erofs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, EROFS);
}

void fs_erofs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_reply_err(req, EROFS);
}

void fs_erofs_name(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

void fs_erofs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

void fs_erofs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		     const char *newname, unsigned int flags)
{
	fuse_reply_err(req, EROFS);
}

void fs_erofs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, EROFS);
}

void fs_erofs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

void fs_erofs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

void fs_erofs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		       size_t size, int flags)
{
	fuse_reply_err(req, EROFS);
}

void fs_erofs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, EROFS);
}

void fs_erofs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}
