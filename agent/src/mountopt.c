/* Mount options as OCI runtimes and Kata's agent read them: flags by name, the rest is data. */
#define _GNU_SOURCE
#include "agent.h"

#include <string.h>
#include <sys/mount.h>

struct flag {
	const char *name;
	int clear;
	unsigned long flag;
};

static const struct flag FLAGS[] = {
	{ "defaults", 0, 0 },
	{ "ro", 0, MS_RDONLY },            { "rw", 1, MS_RDONLY },
	{ "nosuid", 0, MS_NOSUID },        { "suid", 1, MS_NOSUID },
	{ "nodev", 0, MS_NODEV },          { "dev", 1, MS_NODEV },
	{ "noexec", 0, MS_NOEXEC },        { "exec", 1, MS_NOEXEC },
	{ "sync", 0, MS_SYNCHRONOUS },     { "async", 1, MS_SYNCHRONOUS },
	{ "dirsync", 0, MS_DIRSYNC },      { "remount", 0, MS_REMOUNT },
	{ "mand", 0, MS_MANDLOCK },        { "nomand", 1, MS_MANDLOCK },
	{ "noatime", 0, MS_NOATIME },      { "atime", 1, MS_NOATIME },
	{ "nodiratime", 0, MS_NODIRATIME }, { "diratime", 1, MS_NODIRATIME },
	{ "relatime", 0, MS_RELATIME },    { "norelatime", 1, MS_RELATIME },
	{ "strictatime", 0, MS_STRICTATIME }, { "nostrictatime", 1, MS_STRICTATIME },
	{ "bind", 0, MS_BIND },            { "rbind", 0, MS_BIND | MS_REC },
};

static const struct flag PROPAGATION[] = {
	{ "private", 0, MS_PRIVATE },      { "rprivate", 0, MS_PRIVATE | MS_REC },
	{ "shared", 0, MS_SHARED },        { "rshared", 0, MS_SHARED | MS_REC },
	{ "slave", 0, MS_SLAVE },          { "rslave", 0, MS_SLAVE | MS_REC },
	{ "unbindable", 0, MS_UNBINDABLE }, { "runbindable", 0, MS_UNBINDABLE | MS_REC },
};

static const struct flag *lookup(const struct flag *t, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].name, name))
			return &t[i];
	return NULL;
}

int parse_mount_options(char *const *opts, size_t n, struct mount_opts *out)
{
	memset(out, 0, sizeof(*out));
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		const char *o = opts[i];
		const struct flag *f = lookup(FLAGS, sizeof(FLAGS) / sizeof(FLAGS[0]), o);
		const struct flag *p = f ? NULL : lookup(PROPAGATION, sizeof(PROPAGATION) / sizeof(PROPAGATION[0]), o);
		if (f && f->clear) {
			out->flags &= ~f->flag;
			out->clear |= f->flag;
		} else if (f) {
			out->flags |= f->flag;
			out->clear &= ~f->flag;
		} else if (p) {
			out->propagation = p->flag;
		} else if (*o) {
			size_t len = strlen(o);
			if (used + len + 2 > sizeof(out->data))
				return -1;
			if (used)
				out->data[used++] = ',';
			memcpy(out->data + used, o, len + 1);
			used += len;
		}
	}
	out->bind = (out->flags & MS_BIND) != 0;
	return 0;
}
