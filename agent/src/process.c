/*
 * Container processes: the table, reaping, and the RPCs on a process's life
 * (SignalProcess, WaitProcess), with Kata's rules: exec id "" is the init
 * process; an exit by signal N is status 128+N; SIGTERM to an init process
 * that does not handle it becomes SIGKILL (a pid namespace's init ignores
 * unhandled signals); WaitProcess forgets the process once answered.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "agent.pb-c.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct process *process_new(struct container *ctr, const char *exec_id, pid_t pid, int init, int fds[3])
{
	struct process *p = calloc(1, sizeof(*p));
	if (!p) {
		logmsg("out of memory");
		_exit(1);
	}
	p->ctr = ctr;
	p->exec_id = xstrdup(exec_id);
	p->pid = pid;
	p->init = init;
	p->in_fd = fds[0];
	p->out_fd = fds[1];
	p->err_fd = fds[2];
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			set_nonblock(fds[i]);
	p->next = ctr->procs;
	ctr->procs = p;
	return p;
}

void process_free(struct process *p)
{
	close_fd(&p->in_fd);
	close_fd(&p->out_fd);
	close_fd(&p->err_fd);
	free(p->exec_id);
	free(p);
}

struct process *process_lookup(const struct call *call, const char *cid, const char *eid, int internal)
{
	struct container *c = container_find(cid);
	if (!c) {
		if (call && internal)
			reply_err(call, CODE_INTERNAL, "Invalid container id");
		else if (call)
			reply_err(call, CODE_INVALID_ARGUMENT, "InvalidContainerId");
		return NULL;
	}
	for (struct process *p = c->procs; p; p = p->next) {
		if (p->waited)
			continue;
		if (eid[0] ? !strcmp(p->exec_id, eid) : p->init)
			return p;
	}
	if (call && internal)
		reply_err(call, CODE_INTERNAL, "%s", eid[0] ? "Process not found: invalid exec id" : "Process not found: init process missing");
	else if (call)
		reply_err(call, CODE_NOT_FOUND, "%s", eid[0] ? "InvalidExecId" : "InitProcessNotFound");
	return NULL;
}

int process_reaped(pid_t pid, int status)
{
	for (struct container *c = g_containers; c; c = c->next) {
		for (struct process *p = c->procs; p; p = p->next) {
			if (p->pid != pid || p->exited)
				continue;
			p->exited = 1;
			p->exited_at = now_ms();
			p->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			if (p->init)
				c->init_pid = 0; /* its namespaces are gone: no ExecProcess from now on */
			dbgmsg("container %s process %s (pid %d) exited with %d", c->id, p->exec_id, (int)pid, p->exit_code);
			return 1;
		}
	}
	return 0;
}

void reap_children(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG | __WALL)) > 0)
		if (WIFEXITED(status) || WIFSIGNALED(status))
			process_reaped(pid, status);
}

void process_gc(void)
{
	for (struct container *c = g_containers; c; c = c->next) {
		for (struct process **pp = &c->procs; *pp;) {
			struct process *p = *pp;
			if (p->waited) {
				*pp = p->next;
				process_free(p);
			} else {
				pp = &p->next;
			}
		}
	}
}

/* ---------------------------------------------------------------- WaitProcess */

struct wait_data {
	char *cid, *eid;
};

static void wait_release(struct pending *pd)
{
	struct wait_data *w = pd->data;
	free(w->cid);
	free(w->eid);
	free(w);
}

static void answer_wait(const struct call *call, struct process *p)
{
	Grpc__WaitProcessResponse resp = GRPC__WAIT_PROCESS_RESPONSE__INIT;
	resp.status = p->exit_code;
	reply_msg(call, &resp.base);
}

/* Every waiter of an exited process gets its status; then the process is forgotten. */
static int wait_progress(struct pending *pd)
{
	struct wait_data *w = pd->data;
	struct container *c = container_find(w->cid);
	struct process *p = NULL;
	for (struct process *q = c ? c->procs : NULL; q && !p; q = q->next)
		if (w->eid[0] ? !strcmp(q->exec_id, w->eid) : q->init)
			p = q;
	if (!p) {
		reply_err(&pd->call, CODE_INTERNAL, "Failed to receive exit code");
		return 1;
	}
	if (!p->exited)
		return 0;
	answer_wait(&pd->call, p);
	p->waited = 1;
	return 1;
}

void h_wait_process(const struct call *call, const ProtobufCMessage *m)
{
	const Grpc__WaitProcessRequest *req = (const Grpc__WaitProcessRequest *)m;
	struct process *p = process_lookup(call, req->container_id, req->exec_id, 0);
	if (!p)
		return;
	if (p->exited) {
		answer_wait(call, p);
		p->waited = 1;
		return;
	}
	struct pending *pd = calloc(1, sizeof(*pd));
	struct wait_data *w = calloc(1, sizeof(*w));
	if (!pd || !w) {
		free(pd);
		free(w);
		reply_err(call, CODE_INTERNAL, "out of memory");
		return;
	}
	w->cid = xstrdup(req->container_id);
	w->eid = xstrdup(p->exec_id);
	pd->call = *call;
	pd->data = w;
	pd->progress = wait_progress;
	pd->release = wait_release;
	pending_add(pd);
}

/* ---------------------------------------------------------------- SignalProcess */

/* Kata's is_signal_handled: the signal is blocked, ignored or caught (/proc/<pid>/status). */
static int signal_handled(pid_t pid, unsigned sig)
{
	char path[64], text[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (sig == 0)
		return read_file(path, text, sizeof(text)) >= 0;
	if (sig > 64 || read_file(path, text, sizeof(text)) < 0)
		return 0;
	const char *keys[] = { "SigBlk:", "SigIgn:", "SigCgt:" };
	for (size_t i = 0; i < 3; i++) {
		const char *line = strstr(text, keys[i]);
		if (line && (strtoull(line + strlen(keys[i]), NULL, 16) >> (sig - 1)) & 1)
			return 1;
	}
	return 0;
}

static void signal_all(const struct call *call, struct container *c, int sig)
{
	pid_t pids[1024];
	size_t n = c->cgroup[0] ? cgroup_pids(c->cgroup, pids, 1024) : 0;
	for (size_t i = 0; i < n; i++)
		if (kill(pids[i], sig) < 0)
			logmsg("signal %d to pid %d: %s", sig, (int)pids[i], strerror(errno));
	for (struct process *p = c->procs; p; p = p->next)
		if (!p->exited)
			kill(p->pid, sig);
	reply_msg(call, &((Google__Protobuf__Empty)GOOGLE__PROTOBUF__EMPTY__INIT).base);
}

void h_signal_process(const struct call *call, const ProtobufCMessage *m)
{
	const Grpc__SignalProcessRequest *req = (const Grpc__SignalProcessRequest *)m;
	int sig = (int)req->signal;
	if (req->signal >= 65) {
		reply_err(call, CODE_INTERNAL, "EINVAL: Invalid argument");
		return;
	}
	if (!req->exec_id[0] && sig == SIGKILL) {
		struct container *c = container_find(req->container_id);
		if (c)
			signal_all(call, c, sig);
		else
			reply_err(call, CODE_INTERNAL, "Invalid container id %s", req->container_id);
		return;
	}
	struct process *p = process_lookup(call, req->container_id, req->exec_id, 0);
	if (!p)
		return;
	if (p->init && sig == SIGTERM && !signal_handled(p->pid, (unsigned)sig))
		sig = SIGKILL;
	if (!p->exited && kill(p->pid, sig) < 0 && errno != ESRCH) {
		reply_err(call, CODE_INTERNAL, "%s", strerror(errno));
		return;
	}
	reply_msg(call, &((Google__Protobuf__Empty)GOOGLE__PROTOBUF__EMPTY__INIT).base);
}
