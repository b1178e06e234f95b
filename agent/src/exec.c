/* osbuilder.Guest/Exec: run one command, capture stdout/stderr, honour a timeout. */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* A sane default environment; request entries (KEY=VALUE) override by key. */
static const char *const default_env[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"TERM=dumb",
	"LANG=C.UTF-8",
};

static int waited_pid = -1, waited_status, waited_done;

int reap_children(void)
{
	int n = 0, status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		n++;
		if (pid == waited_pid) {
			waited_status = status;
			waited_done = 1;
		}
	}
	return n;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t keylen(const char *kv)
{
	const char *eq = strchr(kv, '=');
	return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* Default env + request env, later entries replacing earlier ones with the same key. */
static char **build_env(const struct exec_req *req)
{
	size_t max = sizeof(default_env) / sizeof(default_env[0]) + req->envc + 1, n = 0;
	char **env = calloc(max, sizeof(char *));
	if (!env)
		return NULL;
	for (size_t i = 0; i < max - 1; i++) {
		const char *kv = i < sizeof(default_env) / sizeof(default_env[0])
			? default_env[i] : req->env[i - sizeof(default_env) / sizeof(default_env[0])];
		if (!strchr(kv, '='))
			continue;
		size_t k = keylen(kv), j;
		for (j = 0; j < n; j++)
			if (keylen(env[j]) == k && !strncmp(env[j], kv, k))
				break;
		env[j] = (char *)kv;
		if (j == n)
			n++;
	}
	env[n] = NULL;
	return env;
}

static void child(const struct exec_req *req, char **env, int in, int out, int err, int status_fd)
{
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	setsid();
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(127);
	int stage = 0;
	if (req->cwd && *req->cwd && chdir(req->cwd) < 0) {
		stage = 1;
	} else {
		if (!req->cwd || !*req->cwd)
			if (chdir("/") < 0) { /* not fatal */ }
		environ = env;
		execvp(req->argv[0], req->argv);
		stage = 2;
	}
	int report[2] = { stage, errno };
	if (write(status_fd, report, sizeof(report)) < 0) { /* nothing left to do */ }
	_exit(errno == ENOENT ? 127 : 126);
}

static void collect(int *fd, struct buf *b, size_t cap, int *truncated)
{
	uint8_t tmp[65536];
	ssize_t n = read(*fd, tmp, sizeof(tmp));
	if (n > 0) {
		size_t keep = b->len >= cap ? 0 : cap - b->len;
		if ((size_t)n > keep)
			*truncated = 1;
		buf_put(b, tmp, (size_t)n < keep ? (size_t)n : keep);
		return;
	}
	if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(*fd);
		*fd = -1;
	}
}

static void drain(int *fd, struct buf *b, size_t cap, int *truncated)
{
	if (*fd < 0)
		return;
	fcntl(*fd, F_SETFL, O_NONBLOCK);
	while (*fd >= 0) {
		uint8_t tmp[65536];
		ssize_t n = read(*fd, tmp, sizeof(tmp));
		if (n > 0) {
			size_t keep = b->len >= cap ? 0 : cap - b->len;
			if ((size_t)n > keep)
				*truncated = 1;
			buf_put(b, tmp, (size_t)n < keep ? (size_t)n : keep);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
}

void exec_run(const struct exec_req *req, struct exec_res *res, int sigfd)
{
	int inp[2] = { -1, -1 }, outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, stp[2] = { -1, -1 };
	char **env = NULL;
	memset(res, 0, sizeof(*res));
	if (req->argc == 0) {
		snprintf(res->error, sizeof(res->error), "argv is empty");
		return;
	}
	env = build_env(req);
	if (!env || pipe2(inp, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(stp, O_CLOEXEC) < 0) {
		snprintf(res->error, sizeof(res->error), "cannot set up pipes: %s", strerror(errno));
		goto out;
	}
	waited_pid = -1;
	waited_done = 0;
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(res->error, sizeof(res->error), "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child(req, env, inp[0], outp[1], errp[1], stp[1]);
	waited_pid = pid;
	dbgmsg("exec %s: pid %d", req->argv[0], (int)pid);
	close(inp[0]); inp[0] = -1;
	close(outp[1]); outp[1] = -1;
	close(errp[1]); errp[1] = -1;
	close(stp[1]); stp[1] = -1;
	fcntl(inp[1], F_SETFL, O_NONBLOCK);
	size_t stdin_off = 0;
	if (req->stdin_len == 0) {
		close(inp[1]);
		inp[1] = -1;
	}

	uint64_t deadline = req->timeout_ms ? now_ms() + req->timeout_ms : 0;
	int report[2] = { 0, 0 }, stop_killed = 0;
	size_t report_got = 0;
	for (;;) {
		reap_children();
		if (waited_done) {
			/* The command is gone: take what is already in the pipes, do not wait for
			 * background processes that inherited them. */
			drain(&outp[0], &res->out, EXEC_STDOUT_MAX, &res->truncated);
			drain(&errp[0], &res->err, EXEC_STDERR_MAX, &res->truncated);
			if (stp[0] >= 0 && report_got < sizeof(report)) {
				fcntl(stp[0], F_SETFL, O_NONBLOCK);
				ssize_t n = read(stp[0], (char *)report + report_got, sizeof(report) - report_got);
				if (n > 0)
					report_got += (size_t)n;
			}
			break;
		}
		if (g_stop_signal && !stop_killed) {
			/* The agent is being stopped (systemctl stop, ^C): kill the command's group as a
			 * timeout does and wait for it, so the Exec is still answered if the host is
			 * there; the main loop then exits as for a stop signal while idle. */
			stop_killed = 1;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
		}
		struct pollfd p[5];
		int np = 0, ifd = -1, iout = -1, ierr = -1, ist = -1;
		p[np++] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
		if (outp[0] >= 0) { iout = np; p[np++] = (struct pollfd){ .fd = outp[0], .events = POLLIN }; }
		if (errp[0] >= 0) { ierr = np; p[np++] = (struct pollfd){ .fd = errp[0], .events = POLLIN }; }
		if (inp[1] >= 0) { ifd = np; p[np++] = (struct pollfd){ .fd = inp[1], .events = POLLOUT }; }
		if (stp[0] >= 0) { ist = np; p[np++] = (struct pollfd){ .fd = stp[0], .events = POLLIN }; }
		int timeout = -1;
		if (deadline && !res->timed_out) {
			uint64_t now = now_ms();
			if (now >= deadline) {
				res->timed_out = 1;
				kill(-pid, SIGKILL);
				kill(pid, SIGKILL);
				continue;
			}
			timeout = (int)(deadline - now);
		}
		int r = poll(p, np, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents & POLLIN)
			read_signals(sigfd); /* SIGCHLD: reaped at the top; a stop: recorded, acted on above */
		if (iout >= 0 && p[iout].revents)
			collect(&outp[0], &res->out, EXEC_STDOUT_MAX, &res->truncated);
		if (ierr >= 0 && p[ierr].revents)
			collect(&errp[0], &res->err, EXEC_STDERR_MAX, &res->truncated);
		if (ifd >= 0 && p[ifd].revents) {
			ssize_t n = write(inp[1], req->stdin_data + stdin_off, req->stdin_len - stdin_off);
			if (n > 0)
				stdin_off += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || stdin_off >= req->stdin_len || (p[ifd].revents & (POLLERR | POLLHUP))) {
				close(inp[1]);
				inp[1] = -1;
			}
		}
		if (ist >= 0 && p[ist].revents) {
			ssize_t n = read(stp[0], (char *)report + report_got, sizeof(report) - report_got);
			if (n > 0)
				report_got += (size_t)n;
			else {
				close(stp[0]);
				stp[0] = -1;
			}
		}
	}
	if (report_got == sizeof(report)) {
		const char *what = report[0] == 1 ? "cannot change to directory" : "cannot run";
		const char *arg = report[0] == 1 ? req->cwd : req->argv[0];
		char msg[512];
		int n = snprintf(msg, sizeof(msg), "kata-agent: %s '%s': %s\n", what, arg, strerror(report[1]));
		buf_put(&res->err, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
	}
	if (stop_killed) {
		char msg[128];
		int n = snprintf(msg, sizeof(msg), "kata-agent: stopped by signal %d; the command was killed\n", g_stop_signal);
		buf_put(&res->err, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
	}
	if (waited_done) {
		if (WIFEXITED(waited_status)) {
			res->exit_code = WEXITSTATUS(waited_status);
		} else if (WIFSIGNALED(waited_status)) {
			res->signal = WTERMSIG(waited_status);
			res->exit_code = 128 + res->signal;
		}
	}
	waited_pid = -1;
out:
	for (int *fd = &inp[0]; fd <= &inp[1]; fd++) if (*fd >= 0) close(*fd);
	for (int *fd = &outp[0]; fd <= &outp[1]; fd++) if (*fd >= 0) close(*fd);
	for (int *fd = &errp[0]; fd <= &errp[1]; fd++) if (*fd >= 0) close(*fd);
	for (int *fd = &stp[0]; fd <= &stp[1]; fd++) if (*fd >= 0) close(*fd);
	free(env);
}
