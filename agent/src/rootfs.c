/*
 * A container's mount namespace, built by its init process before exec, the
 * way runc and Kata's rustjail build it: the rootfs bound onto itself, the
 * spec's mounts in order (targets resolved inside the rootfs, symlinks never
 * leaving it), default device nodes when /dev is a fresh tmpfs, then
 * pivot_root (or, on an initramfs root where pivot_root is refused, a move
 * mount and chroot), masked and read-only paths, a read-only root, sysctls.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "oci.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

/* Appends one component to a relative path ("a/b" + "c"). */
static int push_component(char *cur, size_t len, const char *c, size_t n)
{
	size_t k = strlen(cur);
	if (k + n + 2 > len)
		return -1;
	if (k)
		cur[k++] = '/';
	memcpy(cur + k, c, n);
	cur[k + n] = 0;
	return 0;
}

static void pop_component(char *cur)
{
	char *slash = strrchr(cur, '/');
	if (slash)
		*slash = 0;
	else
		cur[0] = 0;
}

/* A symlink met at `cur`: its target replaces the last component, and the walk
 * goes on through the target, then the unwalked rest `p` (rest is 2 * PATH_MAX). */
static int splice_link(char *cur, char *rest, const char *link, const char *p)
{
	char tail[2 * PATH_MAX];
	pop_component(cur);
	if (link[0] == '/')
		cur[0] = 0;
	if (snprintf(tail, sizeof(tail), "%s/%s", link, p) >= (int)sizeof(tail)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(rest, tail);
	return 0;
}

int secure_join(const char *root, const char *path, char *out, size_t outlen)
{
	char cur[PATH_MAX] = "", rest[2 * PATH_MAX], full[2 * PATH_MAX], link[PATH_MAX];
	int links = 0, missing = 0;
	if (strlen(path) >= sizeof(rest)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(rest, path);
	for (char *p = rest; *p;) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (n == 0)
			break;
		char *c = p;
		p += n;
		if (n == 1 && c[0] == '.')
			continue;
		if (n == 2 && c[0] == '.' && c[1] == '.') {
			pop_component(cur);
			continue;
		}
		if (push_component(cur, sizeof(cur), c, n) < 0) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (missing)
			continue; /* below a missing directory everything is lexical */
		snprintf(full, sizeof(full), "%s/%s", root, cur);
		struct stat st;
		if (lstat(full, &st) < 0) {
			if (errno != ENOENT)
				return -1;
			missing = 1;
			continue;
		}
		if (!S_ISLNK(st.st_mode))
			continue;
		ssize_t k = readlink(full, link, sizeof(link) - 1);
		if (k < 0 || ++links > 255) {
			errno = k < 0 ? errno : ELOOP;
			return -1;
		}
		link[k] = 0;
		if (splice_link(cur, rest, link, p) < 0)
			return -1;
		p = rest;
	}
	if (snprintf(out, outlen, "%s/%s", root, cur) >= (int)outlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Makes the mount target: a directory, or an empty file when binding a file. */
static int make_target(const char *target, int file)
{
	struct stat st;
	if (stat(target, &st) == 0)
		return 0; /* already there (a read-only rootfs has its mount points) */
	if (!file)
		return mkdir_p(target, 0755);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", target);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (mkdir_p(dir, 0755) < 0)
			return -1;
	}
	int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno == EISDIR || errno == EEXIST ? 0 : -1;
	close(fd);
	return 0;
}

static int bind_entry(const Grpc__Mount *m, const char *target, const struct mount_opts *mo, char *err, size_t errlen)
{
	struct stat st;
	if (stat(m->source, &st) < 0)
		FAIL("bind mount source %s (for %s): %s", m->source, m->destination, strerror(errno));
	if (make_target(target, !S_ISDIR(st.st_mode)) < 0)
		FAIL("cannot create mount point %s: %s", m->destination, strerror(errno));
	if (mount(m->source, target, NULL, MS_BIND | (mo->flags & MS_REC), NULL) < 0)
		FAIL("bind mount %s on %s: %s", m->source, m->destination, strerror(errno));
	unsigned long extra = mo->flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
	if (extra && mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | extra, NULL) < 0)
		FAIL("remount %s with its options: %s", m->destination, strerror(errno));
	return 0;
}

static int mount_entry(const char *root, const Grpc__Mount *m, char *err, size_t errlen)
{
	char target[PATH_MAX];
	struct mount_opts mo;
	if (m->destination[0] != '/')
		FAIL("mount destination \"%s\" is not an absolute path", m->destination);
	if (secure_join(root, m->destination, target, sizeof(target)) < 0)
		FAIL("mount destination %s: %s", m->destination, strerror(errno));
	if (parse_mount_options(m->options, m->n_options, &mo) < 0)
		FAIL("mount %s: options too long", m->destination);
	if (!strcmp(m->type, "bind") || mo.bind) {
		if (bind_entry(m, target, &mo, err, errlen) < 0)
			return -1;
	} else {
		const char *type = !strcmp(m->type, "cgroup") ? "cgroup2" : m->type;
		if (make_target(target, 0) < 0)
			FAIL("cannot create mount point %s: %s", m->destination, strerror(errno));
		if (mount(m->source, target, type, mo.flags, mo.data[0] ? mo.data : NULL) < 0)
			FAIL("mount %s (%s) on %s: %s", m->source, type, m->destination, strerror(errno));
	}
	if (mo.propagation && mount(NULL, target, NULL, mo.propagation, NULL) < 0)
		FAIL("set propagation of %s: %s", m->destination, strerror(errno));
	return 0;
}

struct devnode {
	const char *name;
	unsigned major, minor;
};

static const struct devnode DEFAULT_DEVICES[] = {
	{ "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 }, { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
};

static int make_node(const char *path, mode_t type, mode_t mode, dev_t dev, uid_t uid, gid_t gid)
{
	unlink(path);
	if (mknod(path, type | (mode & 07777), dev) < 0 || chmod(path, mode & 07777) < 0 || chown(path, uid, gid) < 0)
		return -1;
	return 0;
}

/* /dev is a fresh tmpfs: the nodes and links every container expects (runc's defaults). */
static int default_devices(const char *root, char *err, size_t errlen)
{
	char path[PATH_MAX];
	for (size_t i = 0; i < sizeof(DEFAULT_DEVICES) / sizeof(DEFAULT_DEVICES[0]); i++) {
		const struct devnode *d = &DEFAULT_DEVICES[i];
		snprintf(path, sizeof(path), "%s/dev/%s", root, d->name);
		if (make_node(path, S_IFCHR, 0666, makedev(d->major, d->minor), 0, 0) < 0)
			FAIL("cannot create /dev/%s: %s", d->name, strerror(errno));
	}
	const char *links[][2] = {
		{ "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" }, { "/proc/self/fd/1", "stdout" },
		{ "/proc/self/fd/2", "stderr" }, { "/proc/kcore", "core" }, { "pts/ptmx", "ptmx" },
	};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		snprintf(path, sizeof(path), "%s/dev/%s", root, links[i][1]);
		if (symlink(links[i][0], path) < 0 && errno != EEXIST)
			FAIL("cannot create /dev/%s: %s", links[i][1], strerror(errno));
	}
	return 0;
}

static int spec_devices(const char *root, const Grpc__Linux *linux, char *err, size_t errlen)
{
	for (size_t i = 0; linux && i < linux->n_devices; i++) {
		const Grpc__LinuxDevice *d = linux->devices[i];
		char path[PATH_MAX];
		mode_t type = !strcmp(d->type, "b") ? S_IFBLK : !strcmp(d->type, "p") ? S_IFIFO : S_IFCHR;
		if (d->path[0] != '/' || secure_join(root, d->path, path, sizeof(path)) < 0)
			FAIL("device path \"%s\" is not a usable absolute path", d->path);
		if (make_target(path, 1) < 0 || make_node(path, type, d->filemode ? d->filemode : 0666, makedev((unsigned)d->major, (unsigned)d->minor), d->uid, d->gid) < 0)
			FAIL("cannot create device %s: %s", d->path, strerror(errno));
	}
	return 0;
}

static int fresh_dev(const Grpc__Spec *spec)
{
	for (size_t i = 0; i < spec->n_mounts; i++)
		if (!strcmp(spec->mounts[i]->destination, "/dev") && strcmp(spec->mounts[i]->type, "bind"))
			return 1;
	return 0;
}

/* Into the rootfs: pivot_root, or a move mount + chroot where the old root is an initramfs. */
static int enter_root(const char *root, char *err, size_t errlen)
{
	if (chdir(root) < 0)
		FAIL("chdir %s: %s", root, strerror(errno));
	if (syscall(SYS_pivot_root, ".", ".") == 0) {
		if (umount2(".", MNT_DETACH) < 0)
			FAIL("unmount the old root: %s", strerror(errno));
	} else if (errno == EINVAL) {
		if (mount(root, "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0)
			FAIL("move the rootfs onto /: %s", strerror(errno));
	} else {
		FAIL("pivot_root %s: %s", root, strerror(errno));
	}
	if (chdir("/") < 0)
		FAIL("chdir /: %s", strerror(errno));
	return 0;
}

static int mask_paths(const Grpc__Linux *linux, char *err, size_t errlen)
{
	for (size_t i = 0; linux && i < linux->n_maskedpaths; i++) {
		const char *p = linux->maskedpaths[i];
		struct stat st;
		if (stat(p, &st) < 0)
			continue;
		int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY, NULL) : mount("/dev/null", p, NULL, MS_BIND, NULL);
		if (rc < 0)
			FAIL("mask %s: %s", p, strerror(errno));
	}
	for (size_t i = 0; linux && i < linux->n_readonlypaths; i++) {
		const char *p = linux->readonlypaths[i];
		struct statvfs sv;
		if (access(p, F_OK) < 0)
			continue;
		if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0 || statvfs(p, &sv) < 0 ||
		    mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | (sv.f_flag & (ST_NOSUID | ST_NODEV | ST_NOEXEC)), NULL) < 0)
			FAIL("make %s read-only: %s", p, strerror(errno));
	}
	return 0;
}

static int readonly_root(char *err, size_t errlen)
{
	struct statvfs sv;
	if (statvfs("/", &sv) < 0 || mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | (sv.f_flag & (ST_NOSUID | ST_NODEV | ST_NOEXEC)), NULL) < 0)
		FAIL("remount the rootfs read-only: %s", strerror(errno));
	return 0;
}

static int sysctls(const Grpc__Linux *linux, char *err, size_t errlen)
{
	for (size_t i = 0; linux && i < linux->n_sysctl; i++) {
		const char *key = linux->sysctl[i]->key;
		char path[PATH_MAX];
		if (strstr(key, "..") || strchr(key, '/'))
			FAIL("invalid sysctl %s", key);
		int n = snprintf(path, sizeof(path), "/proc/sys/%s", key);
		for (char *c = path + 10; c < path + n; c++)
			if (*c == '.')
				*c = '/';
		if (write_file(path, linux->sysctl[i]->value) < 0)
			FAIL("sysctl %s=%s: %s", key, linux->sysctl[i]->value, strerror(errno));
	}
	return 0;
}

static unsigned long propagation(const char *name)
{
	struct { const char *n; unsigned long f; } t[] = {
		{ "shared", MS_SHARED }, { "rshared", MS_SHARED | MS_REC }, { "slave", MS_SLAVE }, { "rslave", MS_SLAVE | MS_REC },
		{ "private", MS_PRIVATE }, { "rprivate", MS_PRIVATE | MS_REC }, { "unbindable", MS_UNBINDABLE }, { "runbindable", MS_UNBINDABLE | MS_REC },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(t[i].n, name))
			return t[i].f;
	return 0;
}

int setup_rootfs(const Grpc__Spec *spec, char *err, size_t errlen)
{
	const Grpc__Linux *linux = spec->linux;
	const char *root = spec->root->path;
	unsigned long prop = linux && linux->rootfspropagation[0] ? propagation(linux->rootfspropagation) : 0;
	if (linux && linux->rootfspropagation[0] && !prop)
		FAIL("unknown Linux.RootfsPropagation \"%s\"", linux->rootfspropagation);
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		FAIL("make / a slave mount: %s", strerror(errno));
	if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0)
		FAIL("bind the rootfs %s: %s", root, strerror(errno));
	mode_t old = umask(0);
	for (size_t i = 0; i < spec->n_mounts; i++)
		if (mount_entry(root, spec->mounts[i], err, errlen) < 0)
			return -1;
	if (fresh_dev(spec) && default_devices(root, err, errlen) < 0)
		return -1;
	if (spec_devices(root, linux, err, errlen) < 0)
		return -1;
	umask(old);
	if (enter_root(root, err, errlen) < 0 || mask_paths(linux, err, errlen) < 0)
		return -1;
	if (spec->root->readonly && readonly_root(err, errlen) < 0)
		return -1;
	if (prop && mount(NULL, "/", NULL, prop, NULL) < 0)
		FAIL("set the rootfs propagation: %s", strerror(errno));
	return sysctls(linux, err, errlen);
}
