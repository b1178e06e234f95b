/*
 * Container cgroups on the unified hierarchy (cgroup v2 at /sys/fs/cgroup):
 * the directory named by Linux.CgroupsPath (systemd's "slice:prefix:name"
 * becomes slice/prefix-name.scope), the controllers enabled down to it, and
 * Linux.Resources written as runc writes them (memory.max, memory.low,
 * memory.swap.max, pids.max, cpu.weight, cpu.max, cpuset.*).
 */
#define _GNU_SOURCE
#include "agent.h"
#include "oci.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define CGROUP_ROOT "/sys/fs/cgroup"
#define CGROUP2_SUPER_MAGIC 0x63677270

static int cgroup2_mounted(void)
{
	struct statfs sf;
	return statfs(CGROUP_ROOT, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

/* The relative cgroup path for a container: CgroupsPath cleaned, or osbuilder/<id>. */
static int relative_path(const char *cid, const char *given, char *out, size_t len)
{
	char tmp[512];
	const char *c1 = strchr(given, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (!given[0]) {
		snprintf(tmp, sizeof(tmp), "osbuilder/%s", cid);
	} else if (c2 && !strchr(c2 + 1, ':')) {
		/* systemd's [slice]:[prefix]:[name] */
		int slice = (int)(c1 - given);
		snprintf(tmp, sizeof(tmp), "%.*s/%.*s-%s.scope", slice ? slice : 12, slice ? given : "system.slice", (int)(c2 - c1 - 1), c1 + 1, c2 + 1);
	} else {
		snprintf(tmp, sizeof(tmp), "%s", given);
	}
	size_t k = 0;
	out[0] = 0;
	for (char *save = NULL, *part = strtok_r(tmp, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
		if (!strcmp(part, ".") || !strcmp(part, ".."))
			return -1;
		int w = snprintf(out + k, len - k, "%s%s", k ? "/" : "", part);
		if (w < 0 || (size_t)w >= len - k)
			return -1;
		k += (size_t)w;
	}
	return k ? 0 : -1;
}

/* Enables the controllers a container needs in every ancestor of `rel` (missing ones are skipped). */
static void enable_controllers(const char *rel)
{
	char dir[600] = CGROUP_ROOT, avail[512], path[700];
	const char *want[] = { "cpu", "cpuset", "memory", "pids" };
	for (const char *p = rel;;) {
		snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
		if (read_file(path, avail, sizeof(avail)) < 0)
			return;
		snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
		for (size_t i = 0; i < 4; i++) {
			char op[16];
			snprintf(op, sizeof(op), "+%s", want[i]);
			if (strstr(avail, want[i]) && write_file(path, op) < 0)
				dbgmsg("%s: %s: %s", path, op, strerror(errno));
		}
		const char *slash = strchr(p, '/');
		if (!slash)
			return;
		size_t n = strlen(dir);
		snprintf(dir + n, sizeof(dir) - n, "/%.*s", (int)(slash - p), p);
		mkdir(dir, 0755);
		p = slash + 1;
	}
}

static int set_value(const char *dir, const char *file, const char *value, char *err, size_t errlen)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (write_file(path, value) == 0)
		return 0;
	snprintf(err, errlen, "cgroup %s: cannot write %s to %s: %s", dir, value, file, strerror(errno));
	return -1;
}

static void limit_text(int64_t v, char *out, size_t len)
{
	if (v < 0)
		snprintf(out, len, "max");
	else
		snprintf(out, len, "%" PRId64, v);
}

static int apply_memory(const char *dir, const Grpc__LinuxMemory *m, char *err, size_t errlen)
{
	char v[32];
	if (m->limit) {
		limit_text(m->limit, v, sizeof(v));
		if (set_value(dir, "memory.max", v, err, errlen) < 0)
			return -1;
	}
	if (m->reservation) {
		limit_text(m->reservation, v, sizeof(v));
		if (set_value(dir, "memory.low", v, err, errlen) < 0)
			return -1;
	}
	/* OCI's swap is memory + swap; v2 limits swap alone. */
	if (m->swap) {
		limit_text(m->swap < 0 || m->limit <= 0 ? m->swap : m->swap - m->limit, v, sizeof(v));
		if (set_value(dir, "memory.swap.max", v, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int apply_cpu(const char *dir, const Grpc__LinuxCPU *c, char *err, size_t errlen)
{
	char v[64];
	if (c->shares) {
		uint64_t s = c->shares < 2 ? 2 : c->shares > 262144 ? 262144 : c->shares;
		snprintf(v, sizeof(v), "%" PRIu64, 1 + ((s - 2) * 9999) / 262142);
		if (set_value(dir, "cpu.weight", v, err, errlen) < 0)
			return -1;
	}
	if (c->quota || c->period) {
		char q[32];
		limit_text(c->quota > 0 ? c->quota : -1, q, sizeof(q));
		snprintf(v, sizeof(v), "%s %" PRIu64, q, c->period ? c->period : 100000);
		if (set_value(dir, "cpu.max", v, err, errlen) < 0)
			return -1;
	}
	if (c->cpus[0] && set_value(dir, "cpuset.cpus", c->cpus, err, errlen) < 0)
		return -1;
	if (c->mems[0] && set_value(dir, "cpuset.mems", c->mems, err, errlen) < 0)
		return -1;
	return 0;
}

static int apply_resources(const char *dir, const Grpc__LinuxResources *r, char *err, size_t errlen)
{
	if (r->memory && apply_memory(dir, r->memory, err, errlen) < 0)
		return -1;
	if (r->cpu && apply_cpu(dir, r->cpu, err, errlen) < 0)
		return -1;
	if (r->pids && r->pids->limit) {
		char v[32];
		limit_text(r->pids->limit, v, sizeof(v));
		if (set_value(dir, "pids.max", v, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int wants_limits(const Grpc__LinuxResources *r)
{
	return r && ((r->memory && (r->memory->limit || r->memory->reservation || r->memory->swap)) || (r->pids && r->pids->limit) ||
		     (r->cpu && (r->cpu->shares || r->cpu->quota || r->cpu->period || r->cpu->cpus[0] || r->cpu->mems[0])));
}

int cgroup_create(const char *cid, const Grpc__Linux *linux, char *dir, size_t dirlen, char *err, size_t errlen)
{
	const Grpc__LinuxResources *res = linux ? linux->resources : NULL;
	dir[0] = 0;
	if (!cgroup2_mounted()) {
		if (!wants_limits(res))
			return 0;
		snprintf(err, errlen, "cannot apply Linux.Resources: no cgroup v2 hierarchy is mounted at %s", CGROUP_ROOT);
		return -1;
	}
	char rel[512];
	if (relative_path(cid, linux ? linux->cgroupspath : "", rel, sizeof(rel)) < 0) {
		snprintf(err, errlen, "invalid Linux.CgroupsPath \"%s\"", linux ? linux->cgroupspath : "");
		return -1;
	}
	enable_controllers(rel);
	snprintf(dir, dirlen, "%s/%s", CGROUP_ROOT, rel);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create cgroup %s: %s", dir, strerror(errno));
		dir[0] = 0;
		return -1;
	}
	if (res && apply_resources(dir, res, err, errlen) < 0) {
		cgroup_remove(dir);
		dir[0] = 0;
		return -1;
	}
	return 0;
}

int cgroup_add(const char *dir, pid_t pid)
{
	char path[600], v[16];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	snprintf(v, sizeof(v), "%d", (int)pid);
	return write_file(path, v);
}

size_t cgroup_pids(const char *dir, pid_t *out, size_t max)
{
	char path[600];
	static char text[65536];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	if (read_file(path, text, sizeof(text)) < 0)
		return 0;
	size_t n = 0;
	for (char *p = text; *p && n < max;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (v > 0)
			out[n++] = (pid_t)v;
		p = end;
	}
	return n;
}

void cgroup_remove(const char *dir)
{
	if (!dir[0])
		return;
	for (int i = 0; i < 50; i++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return;
		if (errno != EBUSY)
			break;
		poll(NULL, 0, 10); /* the last task is leaving */
	}
	logmsg("cannot remove cgroup %s: %s", dir, strerror(errno));
}
