/*
 * Containers: CreateContainer (storages, cgroup, the init process set up and
 * waiting), StartContainer (the init execs), ExecProcess (a second process
 * in the container), RemoveContainer (every process killed and reaped, then
 * storages unmounted and the cgroup removed). As in Kata's agent the init
 * process's exec id is the container id.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "agent.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct container *g_containers;

static const Google__Protobuf__Empty EMPTY = GOOGLE__PROTOBUF__EMPTY__INIT;

struct container *container_find(const char *id)
{
	for (struct container *c = g_containers; c; c = c->next)
		if (!strcmp(c->id, id) && c->removing != 2)
			return c;
	return NULL;
}

void container_kill(struct container *c)
{
	close_fd(&c->start_fd);
	pid_t pids[1024];
	size_t n = c->cgroup[0] ? cgroup_pids(c->cgroup, pids, 1024) : 0;
	for (size_t i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	for (struct process *p = c->procs; p; p = p->next)
		if (!p->exited)
			kill(p->pid, SIGKILL);
}

int container_all_exited(const struct container *c)
{
	for (const struct process *p = c->procs; p; p = p->next)
		if (!p->exited)
			return 0;
	pid_t pid;
	return !c->cgroup[0] || cgroup_pids(c->cgroup, &pid, 1) == 0;
}

void container_destroy(struct container *c)
{
	close_fd(&c->start_fd);
	unmount_all(c->mounts, c->nmounts);
	cgroup_remove(c->cgroup);
	while (c->procs) {
		struct process *p = c->procs;
		c->procs = p->next;
		process_free(p);
	}
	logmsg("container %s removed", c->id);
	free(c->id);
	free(c);
}

void container_gc(void)
{
	for (struct container **cp = &g_containers; *cp;) {
		struct container *c = *cp;
		if (c->removing == 2) {
			*cp = c->next;
			container_destroy(c);
		} else {
			cp = &c->next;
		}
	}
}

/* ---------------------------------------------------------------- stdio pipes */

/* Child ends in child[], ours in ours[]: stdin is written by us, stdout/stderr read. */
static int stdio_pipes(int child[3], int ours[3])
{
	int p[3][2];
	for (int i = 0; i < 3; i++) {
		if (pipe2(p[i], O_CLOEXEC) < 0) {
			while (i-- > 0) {
				close(p[i][0]);
				close(p[i][1]);
			}
			return -1;
		}
	}
	child[0] = p[0][0], ours[0] = p[0][1];
	for (int i = 1; i < 3; i++)
		child[i] = p[i][1], ours[i] = p[i][0];
	return 0;
}

static void close_all(int fds[3])
{
	for (int i = 0; i < 3; i++)
		close_fd(&fds[i]);
}

/* ---------------------------------------------------------------- CreateContainer */

/* What Kata's agent refuses before any work, as text (NULL = acceptable). */
static const char *check_request(const Grpc__CreateContainerRequest *req, char *buf, size_t len)
{
	const Grpc__Spec *s = req->oci;
	if (g_no_reaper)
		snprintf(buf, len, "this agent is not PID 1 and cannot become a child subreaper (%s): it cannot wait for container processes", strerror(g_no_reaper));
	else if (!valid_id(req->container_id))
		snprintf(buf, len, "invalid container id \"%s\"", req->container_id);
	else if (container_find(req->container_id))
		snprintf(buf, len, "container %s already exists", req->container_id);
	else if (!s)
		snprintf(buf, len, "no OCI spec in the create container request");
	else if (!s->process)
		snprintf(buf, len, "no process configurations");
	else if (s->process->n_args == 0)
		snprintf(buf, len, "Process.Args must not be empty");
	else if (s->process->terminal)
		snprintf(buf, len, "Process.Terminal: this agent has no terminal support; run with Terminal=false");
	else if (!s->root || !s->root->path[0])
		snprintf(buf, len, "no Root.Path in the OCI spec");
	else if (req->n_devices)
		snprintf(buf, len, "device %s (type %s): this agent has no device handlers", req->devices[0]->id, req->devices[0]->type);
	else
		return NULL;
	return buf;
}

static int check_rootfs(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "container rootfs %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "container rootfs %s is not a directory", path);
		return -1;
	}
	return 0;
}

static struct container *container_new(const char *id)
{
	struct container *c = calloc(1, sizeof(*c));
	if (!c) {
		logmsg("out of memory");
		_exit(1);
	}
	c->id = xstrdup(id);
	c->start_fd = -1;
	return c;
}

/* Cgroup, pipes and the init process; 0 with c filled, or -1 with err. */
static int start_init(const Grpc__CreateContainerRequest *req, struct container *c, char *err, size_t errlen)
{
	const Grpc__Spec *spec = req->oci;
	if (check_rootfs(spec->root->path, err, errlen) < 0 ||
	    cgroup_create(c->id, spec->linux, c->cgroup, sizeof(c->cgroup), err, errlen) < 0)
		return -1;
	int child[3], ours[3];
	if (stdio_pipes(child, ours) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	int sandbox_pidns = req->sandbox_pidns || g_sandbox.shared_pidns;
	struct spawn_req sr = { .proc = spec->process, .spec = spec, .sandbox_pidns = sandbox_pidns };
	memcpy(sr.stdio, child, sizeof(child));
	memcpy(sr.parent_ends, ours, sizeof(ours));
	pid_t pid = spawn_process(&sr, c->cgroup, &c->start_fd, err, errlen);
	close_all(child);
	if (pid < 0) {
		close_all(ours);
		return -1;
	}
	c->init_pid = pid;
	process_new(c, c->id, pid, 1, ours);
	if (sandbox_pidns && g_sandbox.pid_fd < 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
		g_sandbox.pid_fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	return 0;
}

void h_create_container(const struct call *call, const ProtobufCMessage *m)
{
	const Grpc__CreateContainerRequest *req = (const Grpc__CreateContainerRequest *)m;
	char err[512];
	const char *bad = check_request(req, err, sizeof(err));
	if (bad) {
		reply_err(call, CODE_INTERNAL, "%s", bad);
		return;
	}
	struct container *c = container_new(req->container_id);
	if (mount_storages(call, req->storages, req->n_storages, &c->mounts, &c->nmounts) < 0) {
		free(c->id);
		free(c);
		return;
	}
	if (start_init(req, c, err, sizeof(err)) < 0) {
		container_destroy(c);
		reply_err(call, CODE_INTERNAL, "%s", err);
		return;
	}
	c->next = g_containers;
	g_containers = c;
	logmsg("container %s created (init pid %d)", c->id, (int)c->init_pid);
	reply_msg(call, &EMPTY.base);
}

void h_start_container(const struct call *call, const ProtobufCMessage *m)
{
	const Grpc__StartContainerRequest *req = (const Grpc__StartContainerRequest *)m;
	struct container *c = container_find(req->container_id);
	if (!c) {
		reply_err(call, CODE_INTERNAL, "Invalid container id");
		return;
	}
	if (c->state != CTR_CREATED || c->start_fd < 0) {
		reply_err(call, CODE_INTERNAL, "container %s is not in the created state", c->id);
		return;
	}
	int rc = write_all_fd(c->start_fd, "S", 1);
	close_fd(&c->start_fd);
	if (rc < 0) {
		reply_err(call, CODE_INTERNAL, "container %s: its init process is gone: %s", c->id, strerror(errno));
		return;
	}
	c->state = CTR_RUNNING;
	reply_msg(call, &EMPTY.base);
}

/* ---------------------------------------------------------------- ExecProcess */

void h_exec_process(const struct call *call, const ProtobufCMessage *m)
{
	const Grpc__ExecProcessRequest *req = (const Grpc__ExecProcessRequest *)m;
	struct container *c = container_find(req->container_id);
	char err[512];
	if (!c) {
		reply_err(call, CODE_INTERNAL, "Invalid container id");
		return;
	}
	const char *bad = !req->process ? "Unable to parse process from ExecProcessRequest"
		: !valid_id(req->exec_id) ? "invalid exec id"
		: req->process->n_args == 0 ? "Process.Args must not be empty"
		: req->process->terminal ? "Process.Terminal: this agent has no terminal support; run with Terminal=false"
		: c->state != CTR_RUNNING ? "the container is not started"
		: NULL;
	for (struct process *p = c->procs; !bad && p; p = p->next)
		if (!p->waited && !strcmp(p->exec_id, req->exec_id))
			bad = "exec id already in use in this container";
	if (!bad && c->init_pid <= 0)
		bad = "the container's init process has exited";
	if (bad) {
		reply_err(call, CODE_INTERNAL, "%s", bad);
		return;
	}
	int child[3], ours[3];
	if (stdio_pipes(child, ours) < 0) {
		reply_err(call, CODE_INTERNAL, "pipe: %s", strerror(errno));
		return;
	}
	struct spawn_req sr = { .proc = req->process, .ctr = c };
	memcpy(sr.stdio, child, sizeof(child));
	memcpy(sr.parent_ends, ours, sizeof(ours));
	pid_t pid = spawn_process(&sr, c->cgroup, NULL, err, sizeof(err));
	close_all(child);
	if (pid < 0) {
		close_all(ours);
		reply_err(call, CODE_INTERNAL, "%s", err);
		return;
	}
	process_new(c, req->exec_id, pid, 0, ours);
	reply_msg(call, &EMPTY.base);
}

/* ---------------------------------------------------------------- RemoveContainer */

struct remove_data {
	char *cid;
	uint64_t until; /* 0 = no limit (timeout 0) */
};

static void remove_release(struct pending *pd)
{
	struct remove_data *r = pd->data;
	free(r->cid);
	free(r);
}

static int remove_progress(struct pending *pd)
{
	struct remove_data *r = pd->data;
	struct container *c = container_find(r->cid);
	if (!c) {
		reply_err(&pd->call, CODE_INTERNAL, "Invalid container id");
		return 1;
	}
	if (container_all_exited(c)) {
		c->removing = 2; /* destroyed by container_gc after this turn */
		reply_msg(&pd->call, &EMPTY.base);
		return 1;
	}
	uint64_t now = now_ms();
	if (r->until && now >= r->until) {
		c->removing = 0;
		reply_err(&pd->call, CODE_INTERNAL, "ETIME: Timer expired");
		return 1;
	}
	container_kill(c); /* processes that joined the cgroup meanwhile */
	pd->wake_at = now + 50;
	if (r->until && r->until < pd->wake_at)
		pd->wake_at = r->until;
	return 0;
}

void h_remove_container(const struct call *call, const ProtobufCMessage *m)
{
	const Grpc__RemoveContainerRequest *req = (const Grpc__RemoveContainerRequest *)m;
	struct container *c = container_find(req->container_id);
	if (!c) {
		reply_err(call, CODE_INTERNAL, "Invalid container id");
		return;
	}
	struct pending *pd = calloc(1, sizeof(*pd));
	struct remove_data *r = calloc(1, sizeof(*r));
	if (!pd || !r) {
		free(pd);
		free(r);
		reply_err(call, CODE_INTERNAL, "out of memory");
		return;
	}
	c->removing = 1;
	container_kill(c);
	r->cid = xstrdup(c->id);
	r->until = req->timeout ? now_ms() + (uint64_t)req->timeout * 1000 : 0;
	pd->call = *call;
	pd->data = r;
	pd->progress = remove_progress;
	pd->release = remove_release;
	if (remove_progress(pd))
		pending_discard(pd);
	else
		pending_add(pd);
}
