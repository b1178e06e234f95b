/*
 * Storage handlers (CreateSandbox / CreateContainer storages), as Kata's:
 * "9p" and "virtio-fs" mount the shared directory by its tag, "ephemeral" a
 * tmpfs, "local" makes a directory; every mount point is created first and
 * the options split into mount flags and filesystem data.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "agent.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

const char *const STORAGE_HANDLERS[] = { "9p", "virtio-fs", "ephemeral", "local" };
const size_t STORAGE_HANDLERS_COUNT = sizeof(STORAGE_HANDLERS) / sizeof(STORAGE_HANDLERS[0]);

static int known_driver(const char *d)
{
	for (size_t i = 0; i < STORAGE_HANDLERS_COUNT; i++)
		if (!strcmp(d, STORAGE_HANDLERS[i]))
			return 1;
	return 0;
}

/* An absolute path with no "." or ".." component. */
static int clean_abs_path(const char *p)
{
	if (p[0] != '/')
		return 0;
	for (const char *s = p; *s;) {
		while (*s == '/')
			s++;
		size_t n = strcspn(s, "/");
		if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		s += n;
	}
	return 1;
}

static int local_dir(const Grpc__Storage *s, char *err, size_t errlen)
{
	for (size_t i = 0; i < s->n_options; i++) {
		if (strncmp(s->options[i], "mode=", 5))
			continue;
		char *end;
		unsigned long mode = strtoul(s->options[i] + 5, &end, 8);
		if (*end || mode > 07777 || chmod(s->mount_point, (mode_t)mode) < 0) {
			snprintf(err, errlen, "local storage %s: bad %s: %s", s->mount_point, s->options[i], *end || mode > 07777 ? "not an octal mode" : strerror(errno));
			return -1;
		}
	}
	return 0;
}

int storage_mount(const Grpc__Storage *s, char *err, size_t errlen)
{
	if (!known_driver(s->driver)) {
		snprintf(err, errlen, "Failed to find the storage handler %s", s->driver);
		return -1;
	}
	if (!clean_abs_path(s->mount_point)) {
		snprintf(err, errlen, "storage mount point %s is not a clean absolute path", s->mount_point);
		return -1;
	}
	if (mkdir_p(s->mount_point, 0755) < 0) {
		snprintf(err, errlen, "failed to create dir all %s: %s", s->mount_point, strerror(errno));
		return -1;
	}
	if (!strcmp(s->driver, "local"))
		return local_dir(s, err, errlen) < 0 ? -1 : 0;
	struct mount_opts mo;
	if (parse_mount_options(s->options, s->n_options, &mo) < 0) {
		snprintf(err, errlen, "storage %s: mount options too long", s->mount_point);
		return -1;
	}
	const char *fstype = s->fstype[0] ? s->fstype : (!strcmp(s->driver, "ephemeral") ? "tmpfs" : s->driver);
	if (!strcmp(fstype, "virtio-fs"))
		fstype = "virtiofs";
	if (mount(s->source, s->mount_point, fstype, mo.flags, mo.data[0] ? mo.data : NULL) < 0) {
		snprintf(err, errlen, "mount %s (%s) on %s with options \"%s\": %s", s->source, fstype, s->mount_point, mo.data, strerror(errno));
		return -1;
	}
	dbgmsg("mounted %s (%s) on %s", s->source, fstype, s->mount_point);
	return 1;
}
