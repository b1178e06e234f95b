/* PID-1 duties (Kata's AGENT_INIT=yes): early mounts, a console, power off. */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct early_mount {
	const char *source, *target, *type;
	unsigned long flags;
	const char *data;
	mode_t mode;
};

/* As Kata's agent init: proc, sys, dev (devtmpfs), devpts, /run, /tmp, /dev/shm, and the
 * unified cgroup hierarchy, where containers' cgroups go. */
static const struct early_mount mounts[] = {
	{ "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555 },
	{ "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555 },
	{ "dev", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", 0755 },
	{ "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666", 0755 },
	{ "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777 },
	{ "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", 0755 },
	{ "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777 },
	{ "cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME, NULL, 0555 },
};

static int fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* The kernel starts init with /dev/console as 0/1/2 only when the rootfs has it:
 * make sure 0, 1 and 2 are taken, so no socket ever lands on them. */
void ensure_stdio(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fd_open(fd))
			continue;
		int n = open("/dev/console", O_RDWR | O_NOCTTY);
		if (n < 0)
			n = open("/dev/null", O_RDWR);
		if (n < 0)
			return;
		if (n != fd) {
			dup2(n, fd);
			close(n);
		}
	}
}

void pid1_setup(void)
{
	umask(022);
	for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
		const struct early_mount *m = &mounts[i];
		mkdir(m->target, m->mode);
		if (mount(m->source, m->target, m->type, m->flags, m->data) < 0 && errno != EBUSY)
			logmsg("mount %s on %s: %s", m->type, m->target, strerror(errno));
	}
	/* devtmpfs has no fd links; shells and here-documents want them. */
	const char *links[][2] = {
		{ "/proc/self/fd", "/dev/fd" }, { "/proc/self/fd/0", "/dev/stdin" },
		{ "/proc/self/fd/1", "/dev/stdout" }, { "/proc/self/fd/2", "/dev/stderr" },
	};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST) { /* optional */ }
	/* The console: stdio may have been closed if the initrd had no /dev/console. */
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd >= 0) {
		for (int i = 0; i < 3; i++)
			if (!fd_open(i))
				dup2(fd, i);
		if (fd > 2)
			close(fd);
	}
	ensure_stdio();
	sethostname("kata", 4);
}

/* Stops everything and powers the VM off; as a plain process it just exits. */
void power_off(void)
{
	if (!g_pid1 && !g_guest) {
		logmsg("shutting down");
		_exit(0);
	}
	if (!g_pid1) {
		/* A service under systemd: ask it for a clean power-off. */
		logmsg("asking systemd to power off");
		pid_t pid = fork();
		if (pid == 0) {
			execlp("systemctl", "systemctl", "--no-block", "poweroff", (char *)NULL);
			_exit(127);
		}
		int status = 0;
		if (pid > 0 && reap_within(pid, &status, 10000) == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
			_exit(0);
		sync();
		reboot(RB_POWER_OFF);
		_exit(1);
	}
	logmsg("powering off");
	sync();
	kill(-1, SIGTERM);
	/* Give processes a moment to exit; reap whatever has. */
	for (int i = 0; i < 20; i++) {
		while (waitpid(-1, NULL, WNOHANG) > 0) { }
		if (kill(-1, 0) < 0 && errno == ESRCH)
			break;
		usleep(50000);
	}
	kill(-1, SIGKILL);
	sync();
	/* The root needs no remount: an initrd is a ramfs, an image root is mounted ro (kernel "ro"). */
	reboot(RB_POWER_OFF);
	/* No ACPI power-off: halt; with reboot=k and QEMU's -no-reboot a restart ends the VM too. */
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}
