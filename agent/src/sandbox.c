/*
 * The sandbox: CreateSandbox (storages, the shared UTS and IPC namespaces
 * where the hostname is set, kernel modules, DNS), DestroySandbox (every
 * container killed and removed, storages unmounted, then the agent stops and
 * the VM powers off, as Kata's) and GetGuestDetails.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "agent.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SANDBOX_DIR "/run/kata-containers/sandbox"
#define DESTROY_WAIT_MS 5000

struct sandbox g_sandbox = { .uts_fd = -1, .ipc_fd = -1, .pid_fd = -1 };

static const Google__Protobuf__Empty EMPTY = GOOGLE__PROTOBUF__EMPTY__INIT;

void unmount_all(char **mounts, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		if (umount2(mounts[i], MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
			logmsg("umount %s: %s", mounts[i], strerror(errno));
		free(mounts[i]);
	}
	free(mounts);
}

int mount_storages(const struct call *call, Grpc__Storage *const *st, size_t n, char ***mounts, size_t *nmounts)
{
	char **list = calloc(n + 1, sizeof(char *));
	size_t k = 0;
	if (!list) {
		reply_err(call, CODE_INTERNAL, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		char err[512];
		int rc = storage_mount(st[i], err, sizeof(err));
		if (rc < 0) {
			unmount_all(list, k);
			reply_err(call, CODE_INTERNAL, "%s", err);
			return -1;
		}
		if (rc == 1)
			list[k++] = xstrdup(st[i]->mount_point);
	}
	*mounts = list;
	*nmounts = k;
	return 0;
}

/* A helper process unshares UTS + IPC and sets the hostname; its namespaces are kept by fd. */
static int shared_namespaces(const char *hostname, char *err, size_t errlen)
{
	int ready[2] = { -1, -1 }, hold[2];
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		close_fd(&ready[0]);
		close_fd(&ready[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		char ok = unshare(CLONE_NEWUTS | CLONE_NEWIPC) == 0 && (!hostname[0] || sethostname(hostname, strlen(hostname)) == 0) ? 'R' : 'E';
		int e = errno;
		if (write(ready[1], &ok, 1) < 0 || write(ready[1], &e, sizeof(e)) < 0) { }
		close(hold[1]);
		char b;
		while (read(hold[0], &b, 1) < 0 && errno == EINTR) { }
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	char ok = 0;
	int e = 0, rc = -1;
	if (pid > 0 && read_exact_until(ready[0], &ok, 1, now_ms() + 5000) == 0 && ok == 'R') {
		char p[64];
		snprintf(p, sizeof(p), "/proc/%d/ns/uts", (int)pid);
		g_sandbox.uts_fd = open(p, O_RDONLY | O_CLOEXEC);
		snprintf(p, sizeof(p), "/proc/%d/ns/ipc", (int)pid);
		g_sandbox.ipc_fd = open(p, O_RDONLY | O_CLOEXEC);
		rc = g_sandbox.uts_fd >= 0 && g_sandbox.ipc_fd >= 0 ? 0 : -1;
		e = errno;
	} else if (pid > 0) {
		read_exact_until(ready[0], &e, sizeof(e), now_ms() + 1000);
	} else {
		e = errno;
	}
	if (rc < 0)
		snprintf(err, errlen, "cannot set up the sandbox's uts/ipc namespaces (hostname \"%s\"): %s", hostname, strerror(e));
	close(ready[0]);
	close(hold[1]);
	if (pid > 0)
		reap_within(pid, NULL, 1000);
	return rc;
}

/* Kata's setup_guest_dns: the lines go to the sandbox's resolv.conf, bound over /etc/resolv.conf. */
static int setup_dns(char *const *dns, size_t n, char *err, size_t errlen)
{
	if (!n)
		return 0;
	const char *file = SANDBOX_DIR "/resolv.conf";
	FILE *f = mkdir_p(SANDBOX_DIR, 0755) == 0 ? fopen(file, "we") : NULL;
	for (size_t i = 0; f && i < n; i++)
		fprintf(f, "%s\n", dns[i]);
	if (!f || fclose(f) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", file, strerror(errno));
		return -1;
	}
	struct stat st;
	if (stat("/etc/resolv.conf", &st) < 0) {
		int fd = open("/etc/resolv.conf", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
	}
	if (mount(file, "/etc/resolv.conf", NULL, MS_BIND, NULL) < 0) {
		snprintf(err, errlen, "bind %s on /etc/resolv.conf: %s", file, strerror(errno));
		return -1;
	}
	return 0;
}

void h_create_sandbox(const struct call *call, const ProtobufCMessage *m)
{
	const Grpc__CreateSandboxRequest *req = (const Grpc__CreateSandboxRequest *)m;
	char err[512] = "";
	if (g_sandbox.created) {
		reply_err(call, CODE_ALREADY_EXISTS, "the sandbox %s is already created", g_sandbox.id);
		return;
	}
	for (size_t i = 0; i < req->n_kernel_modules; i++) {
		const Grpc__KernelModule *km = req->kernel_modules[i];
		if (check_kernel_module(km->name, km->parameters, km->n_parameters, err, sizeof(err)) < 0) {
			reply_err(call, CODE_INVALID_ARGUMENT, "%s", err);
			return;
		}
	}
	for (size_t i = 0; i < req->n_kernel_modules; i++) {
		const Grpc__KernelModule *km = req->kernel_modules[i];
		if (load_kernel_module(km->name, km->parameters, km->n_parameters, err, sizeof(err)) < 0) {
			reply_err(call, CODE_INTERNAL, "%s", err);
			return;
		}
	}
	if (shared_namespaces(req->hostname, err, sizeof(err)) < 0)
		goto fail;
	if (mount_storages(call, req->storages, req->n_storages, &g_sandbox.mounts, &g_sandbox.nmounts) < 0) {
		err[0] = 0; /* answered */
		goto fail;
	}
	if (req->guest_hook_path[0])
		logmsg("guest hooks (%s) are not supported by this agent: none run", req->guest_hook_path);
	if (setup_dns(req->dns, req->n_dns, err, sizeof(err)) < 0) {
		unmount_all(g_sandbox.mounts, g_sandbox.nmounts);
		g_sandbox.mounts = NULL;
		g_sandbox.nmounts = 0;
		goto fail;
	}
	g_sandbox.created = 1;
	g_sandbox.id = xstrdup(req->sandbox_id);
	g_sandbox.shared_pidns = req->sandbox_pidns;
	logmsg("sandbox %s created (hostname \"%s\", %zu storage(s))", req->sandbox_id, req->hostname, req->n_storages);
	reply_msg(call, &EMPTY.base);
	return;
fail:
	close_fd(&g_sandbox.uts_fd);
	close_fd(&g_sandbox.ipc_fd);
	if (err[0])
		reply_err(call, CODE_INTERNAL, "%s", err);
}

/* Kills every container, waits (bounded) for their processes, removes them. */
static void destroy_containers(void)
{
	for (struct container *c = g_containers; c; c = c->next)
		container_kill(c);
	uint64_t until = now_ms() + DESTROY_WAIT_MS;
	for (;;) {
		reap_children();
		int all = 1;
		for (struct container *c = g_containers; c; c = c->next)
			all &= container_all_exited(c);
		if (all || now_ms() >= until)
			break;
		poll(NULL, 0, 20);
	}
	while (g_containers) {
		struct container *c = g_containers;
		g_containers = c->next;
		container_destroy(c);
	}
}

void sandbox_teardown(void)
{
	destroy_containers();
	unmount_all(g_sandbox.mounts, g_sandbox.nmounts);
	g_sandbox.mounts = NULL;
	g_sandbox.nmounts = 0;
	close_fd(&g_sandbox.uts_fd);
	close_fd(&g_sandbox.ipc_fd);
	close_fd(&g_sandbox.pid_fd);
}

void h_destroy_sandbox(const struct call *call, const ProtobufCMessage *m)
{
	(void)m;
	sandbox_teardown();
	reply_msg(call, &EMPTY.base);
	logmsg("sandbox %s destroyed", g_sandbox.id ? g_sandbox.id : "");
	g_destroyed = 1;
}

void h_get_guest_details(const struct call *call, const ProtobufCMessage *m)
{
	const Grpc__GuestDetailsRequest *req = (const Grpc__GuestDetailsRequest *)m;
	Grpc__GuestDetailsResponse resp = GRPC__GUEST_DETAILS_RESPONSE__INIT;
	Grpc__AgentDetails details = GRPC__AGENT_DETAILS__INIT;
	char text[64];
	if (req->mem_block_size && read_file("/sys/devices/system/memory/block_size_bytes", text, sizeof(text)) > 0)
		resp.mem_block_size_bytes = strtoull(text, NULL, 16);
	struct stat st;
	resp.support_mem_hotplug_probe = req->mem_hotplug_probe && stat("/sys/devices/system/memory/probe", &st) == 0;
	details.version = AGENT_VERSION;
	details.init_daemon = g_pid1;
	details.storage_handlers = (char **)STORAGE_HANDLERS;
	details.n_storage_handlers = STORAGE_HANDLERS_COUNT;
	resp.agent_details = &details;
	reply_msg(call, &resp.base);
}
