/*
 * Starting a container's process. The agent forks an intermediate that
 * enters the namespaces (new ones for a container, the init's for an exec)
 * and forks the process itself, so that it is born in the pid namespace.
 * The intermediate reports the pid and exits (the process is re-parented to
 * the agent, a subreaper); the agent puts it into the cgroup and lets it go
 * on. A container's init then builds its rootfs, reports ready and waits for
 * StartContainer; an exec'd process joins the init's root and execs at once.
 * Every step reports failure with a message the RPC answers with.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "oci.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SETUP_TIMEOUT_MS 30000
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* One message on the report pipe: small enough to be written atomically. */
struct report {
	char tag;        /* 'P' pid (intermediate), 'R' ready (init), 'E' error */
	int pid;
	char msg[480];
};

static void send_report(int fd, char tag, int pid, const char *msg)
{
	struct report r = { .tag = tag, .pid = pid };
	snprintf(r.msg, sizeof(r.msg), "%s", msg ? msg : "");
	if (write(fd, &r, sizeof(r)) < 0) { }
}

static void child_fail(int fd, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void child_fail(int fd, const char *fmt, ...)
{
	char msg[480];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_report(fd, 'E', 0, msg);
	_exit(1);
}

/* ---------------------------------------------------------------- the process's own settings */

static const char *const CAPS[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
	"CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};
#define NCAPS ((int)(sizeof(CAPS) / sizeof(CAPS[0])))

/* A capability list as a bit mask; -1 on an unknown name (in bad). */
static int cap_mask(char *const *names, size_t n, uint64_t *mask, const char **bad)
{
	*mask = 0;
	for (size_t i = 0; i < n; i++) {
		int c = 0;
		while (c < NCAPS && strcmp(CAPS[c], names[i]))
			c++;
		if (c == NCAPS) {
			*bad = names[i];
			return -1;
		}
		*mask |= 1ull << c;
	}
	return 0;
}

struct caps {
	uint64_t bounding, effective, inheritable, permitted, ambient;
};

static int parse_caps(const Grpc__LinuxCapabilities *c, struct caps *out, const char **bad)
{
	return cap_mask(c->bounding, c->n_bounding, &out->bounding, bad) | cap_mask(c->effective, c->n_effective, &out->effective, bad) |
	       cap_mask(c->inheritable, c->n_inheritable, &out->inheritable, bad) | cap_mask(c->permitted, c->n_permitted, &out->permitted, bad) |
	       cap_mask(c->ambient, c->n_ambient, &out->ambient, bad);
}

static int set_caps(const struct caps *c)
{
	struct { uint32_t version; int pid; } hdr = { 0x20080522, 0 }; /* _LINUX_CAPABILITY_VERSION_3 */
	struct { uint32_t effective, permitted, inheritable; } data[2] = {
		{ (uint32_t)c->effective, (uint32_t)c->permitted, (uint32_t)c->inheritable },
		{ (uint32_t)(c->effective >> 32), (uint32_t)(c->permitted >> 32), (uint32_t)(c->inheritable >> 32) },
	};
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -1;
	for (int i = 0; i < NCAPS; i++)
		if ((c->ambient >> i) & 1 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0) < 0)
			return -1;
	return 0;
}

static int rlimit_resource(const char *name)
{
	static const struct { const char *n; int r; } t[] = {
		{ "RLIMIT_AS", RLIMIT_AS }, { "RLIMIT_CORE", RLIMIT_CORE }, { "RLIMIT_CPU", RLIMIT_CPU }, { "RLIMIT_DATA", RLIMIT_DATA },
		{ "RLIMIT_FSIZE", RLIMIT_FSIZE }, { "RLIMIT_LOCKS", RLIMIT_LOCKS }, { "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK },
		{ "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE }, { "RLIMIT_NICE", RLIMIT_NICE }, { "RLIMIT_NOFILE", RLIMIT_NOFILE },
		{ "RLIMIT_NPROC", RLIMIT_NPROC }, { "RLIMIT_RSS", RLIMIT_RSS }, { "RLIMIT_RTPRIO", RLIMIT_RTPRIO },
		{ "RLIMIT_RTTIME", RLIMIT_RTTIME }, { "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING }, { "RLIMIT_STACK", RLIMIT_STACK },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(t[i].n, name))
			return t[i].r;
	return -1;
}

/* Rlimits, no_new_privs, the user and its groups, capabilities (runc's order). */
static void apply_identity(const Grpc__Process *p, int report)
{
	for (size_t i = 0; i < p->n_rlimits; i++) {
		int r = rlimit_resource(p->rlimits[i]->type);
		struct rlimit rl = { .rlim_cur = p->rlimits[i]->soft, .rlim_max = p->rlimits[i]->hard };
		if (r < 0 || setrlimit(r, &rl) < 0)
			child_fail(report, "rlimit %s: %s", p->rlimits[i]->type, r < 0 ? "unknown type" : strerror(errno));
	}
	struct caps caps;
	const char *bad = NULL;
	if (p->capabilities && parse_caps(p->capabilities, &caps, &bad) < 0)
		child_fail(report, "unknown capability %s", bad);
	if (p->capabilities) {
		for (int i = 0; i < 64; i++)
			if (!((caps.bounding >> i) & 1) && prctl(PR_CAPBSET_DROP, i, 0, 0, 0) < 0 && errno != EINVAL)
				child_fail(report, "drop capability %d from the bounding set: %s", i, strerror(errno));
		prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
	}
	const Grpc__User *u = p->user;
	uid_t uid = u ? u->uid : 0;
	gid_t gid = u ? u->gid : 0;
	gid_t groups[64];
	size_t ng = u ? u->n_additionalgids : 0;
	if (ng > 64)
		child_fail(report, "more than 64 additional gids");
	for (size_t i = 0; i < ng; i++)
		groups[i] = u->additionalgids[i];
	if (setgroups(ng, groups) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		child_fail(report, "set user %u:%u: %s", (unsigned)uid, (unsigned)gid, strerror(errno));
	if (p->capabilities && (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 || set_caps(&caps) < 0))
		child_fail(report, "set capabilities: %s", strerror(errno));
	if (p->nonewprivileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(report, "no_new_privs: %s", strerror(errno));
}

static const char *env_path(const Grpc__Process *p)
{
	for (size_t i = 0; i < p->n_env; i++)
		if (!strncmp(p->env[i], "PATH=", 5))
			return p->env[i] + 5;
	return DEFAULT_PATH;
}

static int executable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* args[0] as the kernel will run it: a path, or looked up in the process's PATH. */
static void resolve_exe(const Grpc__Process *p, char *out, size_t len, int report)
{
	const char *a0 = p->args[0];
	if (strchr(a0, '/')) {
		if (!executable(a0))
			child_fail(report, "exec: \"%s\": %s", a0, access(a0, F_OK) < 0 ? "no such file or directory" : "permission denied");
		snprintf(out, len, "%s", a0);
		return;
	}
	const char *path = env_path(p);
	for (const char *d = path;; d++) {
		size_t n = strcspn(d, ":");
		snprintf(out, len, "%.*s/%s", (int)n ? (int)n : 1, n ? d : ".", a0);
		if (executable(out))
			return;
		d += n;
		if (!*d)
			break;
	}
	child_fail(report, "exec: \"%s\": executable file not found in $PATH", a0);
}

/* Working directory and executable, checked before the process is reported ready. */
static void prepare_exec(const Grpc__Process *p, char *exe, size_t len, int report)
{
	const char *cwd = p->cwd[0] ? p->cwd : "/";
	if (chdir(cwd) < 0)
		child_fail(report, "chdir to cwd (\"%s\") set in config.json failed: %s", cwd, strerror(errno));
	resolve_exe(p, exe, len, report);
}

/* Exec with the pipes as stdio; never returns. A failure goes to the report pipe (read by
 * ExecProcess) and to the process's stderr (after StartContainer nobody reads the pipe). */
static void exec_final(const Grpc__Process *p, const char *exe, const int stdio[3], int report)
{
	for (int i = 0; i < 3; i++)
		if (dup2(stdio[i], i) < 0)
			child_fail(report, "stdio: %s", strerror(errno));
	/* Everything else closes at exec; the report pipe too, which tells the agent exec happened. */
	if (syscall(__NR_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		for (int fd = 3; fd < 1024; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	char **argv = calloc(p->n_args + 1, sizeof(char *)), **envp = calloc(p->n_env + 1, sizeof(char *));
	if (!argv || !envp)
		child_fail(report, "out of memory");
	memcpy(argv, p->args, p->n_args * sizeof(char *));
	memcpy(envp, p->env, p->n_env * sizeof(char *));
	execve(exe, argv, envp);
	int e = errno;
	dprintf(2, "kata-agent: exec %s: %s\n", exe, strerror(e));
	child_fail(report, "exec %s: %s", exe, strerror(e));
}

/* ---------------------------------------------------------------- namespaces */

struct ns_plan {
	int new_uts, new_cgroup;
};

static void join_ns(int fd, const char *what, int report)
{
	if (setns(fd, 0) < 0)
		child_fail(report, "join the %s namespace: %s", what, strerror(errno));
}

static int open_ns(const char *path, const char *type, int report)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		child_fail(report, "%s namespace %s: %s", type, path, strerror(errno));
	return fd;
}

/* A container's: new mount and pid namespaces (or the sandbox's pid one), the sandbox's uts and
 * ipc ones where there is a sandbox (as Kata's agent), the rest as the spec asks. */
static void enter_container_ns(const struct spawn_req *req, struct ns_plan *plan, int report)
{
	const Grpc__Linux *linux = req->spec->linux;
	int flags = CLONE_NEWNS | CLONE_NEWPID, join[8], nj = 0;
	const char *jname[8];
	for (size_t i = 0; linux && i < linux->n_namespaces; i++) {
		const char *t = linux->namespaces[i]->type, *path = linux->namespaces[i]->path;
		int shared = !strcmp(t, "uts") ? g_sandbox.uts_fd : !strcmp(t, "ipc") ? g_sandbox.ipc_fd : -1;
		int flag = !strcmp(t, "uts") ? CLONE_NEWUTS : !strcmp(t, "ipc") ? CLONE_NEWIPC : !strcmp(t, "network") ? CLONE_NEWNET : 0;
		if (!strcmp(t, "mount") || !strcmp(t, "pid"))
			continue;
		if (!strcmp(t, "user"))
			child_fail(report, "user namespaces are not supported by this agent");
		if (!flag && strcmp(t, "cgroup"))
			child_fail(report, "unknown namespace type \"%s\"", t);
		if (nj == 8)
			child_fail(report, "too many namespaces");
		if (shared >= 0 || path[0]) {
			jname[nj] = t;
			join[nj++] = shared >= 0 ? shared : open_ns(path, t, report);
		} else if (flag) {
			flags |= flag;
			plan->new_uts |= flag == CLONE_NEWUTS;
		} else {
			plan->new_cgroup = 1; /* after joining the cgroup */
		}
	}
	for (int i = 0; i < nj; i++)
		join_ns(join[i], jname[i], report);
	if (req->sandbox_pidns && g_sandbox.pid_fd >= 0) {
		join_ns(g_sandbox.pid_fd, "sandbox pid", report);
		flags &= ~CLONE_NEWPID;
	}
	if (unshare(flags) < 0)
		child_fail(report, "unshare namespaces: %s", strerror(errno));
}

/* An exec'd process joins every namespace of the container's init, and its root. */
static int enter_exec_ns(pid_t init, int report)
{
	static const char *const NS[] = { "ipc", "uts", "net", "pid", "cgroup", "mnt" };
	int fds[6];
	char path[64];
	for (int i = 0; i < 6; i++) {
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)init, NS[i]);
		fds[i] = open_ns(path, NS[i], report);
	}
	snprintf(path, sizeof(path), "/proc/%d/root", (int)init);
	int root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		child_fail(report, "the container's root %s: %s", path, strerror(errno));
	for (int i = 0; i < 6; i++)
		join_ns(fds[i], NS[i], report);
	return root;
}

/* ---------------------------------------------------------------- the forked sides */

static char wait_byte(int fd)
{
	char b = 0;
	ssize_t n;
	while ((n = read(fd, &b, 1)) < 0 && errno == EINTR) { }
	return n == 1 ? b : 0;
}

static void container_init(const struct spawn_req *req, const struct ns_plan *plan, int report, int go)
{
	const Grpc__Spec *spec = req->spec;
	char err[480], exe[PATH_MAX];
	if (wait_byte(go) != 'G')
		_exit(1);
	if (plan->new_cgroup && unshare(CLONE_NEWCGROUP) < 0)
		child_fail(report, "unshare the cgroup namespace: %s", strerror(errno));
	if (plan->new_uts && spec->hostname[0] && sethostname(spec->hostname, strlen(spec->hostname)) < 0)
		child_fail(report, "sethostname %s: %s", spec->hostname, strerror(errno));
	if (req->proc->oomscoreadj) {
		char v[24];
		snprintf(v, sizeof(v), "%lld", (long long)req->proc->oomscoreadj);
		if (write_file("/proc/self/oom_score_adj", v) < 0)
			child_fail(report, "oom_score_adj %s: %s", v, strerror(errno));
	}
	if (setup_rootfs(spec, err, sizeof(err)) < 0)
		child_fail(report, "%s", err);
	apply_identity(req->proc, report);
	prepare_exec(req->proc, exe, sizeof(exe), report);
	send_report(report, 'R', 0, NULL);
	if (wait_byte(go) != 'S')
		_exit(1); /* removed before StartContainer */
	exec_final(req->proc, exe, req->stdio, report);
}

static void exec_child(const struct spawn_req *req, int root, int report, int go)
{
	char exe[PATH_MAX];
	if (wait_byte(go) != 'G')
		_exit(1);
	if (fchdir(root) < 0 || chroot(".") < 0)
		child_fail(report, "enter the container's root: %s", strerror(errno));
	close(root);
	apply_identity(req->proc, report);
	prepare_exec(req->proc, exe, sizeof(exe), report);
	exec_final(req->proc, exe, req->stdio, report);
}

static void intermediate(const struct spawn_req *req, int report, int go) __attribute__((noreturn));
static void intermediate(const struct spawn_req *req, int report, int go)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	for (int i = 0; i < 3; i++)
		if (req->parent_ends[i] >= 0)
			close(req->parent_ends[i]);
	struct ns_plan plan = { 0 };
	int root = -1;
	if (req->spec)
		enter_container_ns(req, &plan, report);
	else
		root = enter_exec_ns(req->ctr->init_pid, report);
	pid_t pid = fork();
	if (pid == 0) {
		if (req->spec)
			container_init(req, &plan, report, go);
		exec_child(req, root, report, go);
	}
	if (pid < 0)
		child_fail(report, "fork: %s", strerror(errno));
	send_report(report, 'P', (int)pid, NULL);
	_exit(0);
}

/* ---------------------------------------------------------------- the agent's side */

static const char *failure(int rc, const struct report *r, const char *what)
{
	if (rc == 0 && r->tag == 'E')
		return r->msg;
	return rc == -2 ? "timed out" : what;
}

pid_t spawn_process(const struct spawn_req *req, const char *cgroup, int *start_fd, char *err, size_t errlen)
{
	int report[2] = { -1, -1 }, go[2];
	if (pipe2(report, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		close_fd(&report[0]);
		close_fd(&report[1]);
		return -1;
	}
	pid_t mid = fork(), pid = -1;
	if (mid == 0) {
		close(report[0]);
		close(go[1]);
		intermediate(req, report[1], go[0]);
	}
	close(report[1]);
	close(go[0]);
	struct report r = { 0 };
	uint64_t deadline = now_ms() + SETUP_TIMEOUT_MS;
	int rc = mid > 0 ? read_exact_until(report[0], &r, sizeof(r), deadline) : -1;
	if (mid > 0) {
		if (rc < 0)
			kill(mid, SIGKILL); /* hung or half-done: it must not outlive the request */
		reap_within(mid, NULL, 1000);
	}
	const char *msg = NULL;
	if (rc < 0 || r.tag != 'P') {
		msg = mid < 0 ? strerror(errno) : failure(rc, &r, "the setup process died");
	} else {
		pid = r.pid;
		if (cgroup[0] && cgroup_add(cgroup, pid) < 0)
			msg = "cannot join the container's cgroup";
		else if (write_all_fd(go[1], "G", 1) < 0)
			msg = "the process died before setup";
	}
	if (!msg) {
		memset(&r, 0, sizeof(r));
		rc = read_exact_until(report[0], &r, sizeof(r), deadline);
		int ok = req->spec ? rc == 0 && r.tag == 'R' : rc == -1;
		if (!ok)
			msg = failure(rc, &r, "the process died during setup");
	}
	close(report[0]);
	if (!msg && req->spec) {
		*start_fd = go[1];
		return pid;
	}
	close(go[1]);
	if (!msg)
		return pid;
	snprintf(err, errlen, "%s", msg);
	if (pid > 0) {
		kill(pid, SIGKILL);
		reap_within(pid, NULL, 0);
	}
	return -1;
}
