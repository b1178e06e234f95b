/*
 * Kernel modules loaded at CreateSandbox, as Kata's agent does it: `modprobe
 * name params…`. modprobe is looked up in the sbin and bin directories
 * itself (PID 1 starts with no PATH); its output becomes the error message,
 * so a missing module or a vermagic mismatch is named in the reply.
 */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* modprobe runs while every other request waits: it gets this long, then SIGKILL. */
#define MODPROBE_TIMEOUT_MS 30000
#define MAX_PARAMS 64

static const char *const MODPROBE[] = { "/sbin/modprobe", "/usr/sbin/modprobe", "/bin/modprobe", "/usr/bin/modprobe" };

static int valid_module_name(const char *name)
{
	if (!name[0] || name[0] == '-')
		return 0;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
			return 0;
	return 1;
}

int check_kernel_module(const char *name, char *const *params, size_t n, char *err, size_t errlen)
{
	if (!valid_module_name(name)) {
		snprintf(err, errlen, "kernel module name \"%s\" is not a module name", name);
		return -1;
	}
	if (n > MAX_PARAMS) {
		snprintf(err, errlen, "kernel module %s: %zu parameters, at most %d", name, n, MAX_PARAMS);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (params[i][0] == '-' || !params[i][0]) {
			snprintf(err, errlen, "kernel module %s: parameter \"%s\" is not name=value", name, params[i]);
			return -1;
		}
	}
	return 0;
}

/* Collects the child's output (at most out_len-1 bytes kept) until EOF or the deadline. */
static void collect(int fd, char *out, size_t out_len, uint64_t deadline)
{
	size_t got = 0;
	char sink[512];
	for (;;) {
		uint64_t now = now_ms();
		if (now >= deadline)
			break;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r = poll(&pfd, 1, (int)(deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		char *to = got + 1 < out_len ? out + got : sink;
		size_t room = got + 1 < out_len ? out_len - 1 - got : sizeof(sink);
		ssize_t k = read(fd, to, room);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (to != sink)
			got += (size_t)k;
	}
	out[got] = 0;
	while (got && (out[got - 1] == '\n' || out[got - 1] == ' '))
		out[--got] = 0;
}

int load_kernel_module(const char *name, char *const *params, size_t n, char *err, size_t errlen)
{
	if (check_kernel_module(name, params, n, err, errlen) < 0)
		return -1;
	const char *argv[MAX_PARAMS + 3] = { "modprobe", name };
	for (size_t i = 0; i < n; i++)
		argv[i + 2] = params[i];
	argv[n + 2] = NULL;
	int out[2];
	if (pipe2(out, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "load kernel module %s: pipe: %s", name, strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(out[1], 1);
		dup2(out[1], 2);
		char *const envp[] = { "PATH=/sbin:/usr/sbin:/bin:/usr/bin", NULL };
		for (size_t i = 0; i < sizeof(MODPROBE) / sizeof(*MODPROBE); i++)
			execve(MODPROBE[i], (char *const *)argv, envp);
		dprintf(2, "no modprobe in /sbin, /usr/sbin, /bin or /usr/bin");
		_exit(127);
	}
	close(out[1]);
	char text[384] = "";
	int status = 0;
	if (pid > 0)
		collect(out[0], text, sizeof(text), now_ms() + MODPROBE_TIMEOUT_MS);
	close(out[0]);
	if (pid < 0 || reap_within(pid, &status, pid > 0 ? 1000 : 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (pid < 0)
			snprintf(text, sizeof(text), "fork: %s", strerror(errno));
		else if (WIFSIGNALED(status))
			snprintf(text + strlen(text), sizeof(text) - strlen(text), "%skilled by signal %d", text[0] ? "; " : "", WTERMSIG(status));
		snprintf(err, errlen, "load kernel module %s: modprobe failed: %s", name, text[0] ? text : "no output");
		return -1;
	}
	logmsg("kernel module %s loaded (%zu parameter(s))", name, n);
	return 0;
}
