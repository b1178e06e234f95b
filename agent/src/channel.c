/*
 * The agent's channel, as Kata's: vsock port 1024 when the guest has a vsock
 * transport with a CID (QEMU's vhost-vsock-pci), else the virtio-serial port
 * agent.channel.0 (found in sysfs: no udev needed); a unix socket for tests
 * on the host. Also the host-side vsock relay for runtimes without AF_VSOCK.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "channel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* <linux/vm_sockets.h>, spelled out so the agent builds against libc headers only (musl). */
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define VMADDR_CID_ANY 0xffffffffu
#define VMADDR_CID_HOST 2u
#define IOCTL_VM_SOCKETS_GET_LOCAL_CID _IO(7, 0xb9)
struct sockaddr_vm {
	unsigned short svm_family;
	unsigned short svm_reserved1;
	unsigned int svm_port;
	unsigned int svm_cid;
	unsigned char svm_flags;
	unsigned char svm_zero[3];
};

static int vsock_usable(void)
{
	int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	unsigned int cid = VMADDR_CID_ANY;
	int ok = ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) == 0 && cid != VMADDR_CID_ANY && cid > VMADDR_CID_HOST;
	close(fd);
	return ok;
}

/* /dev/virtio-ports/<name> is a udev link; without udev, find the port in sysfs. */
static int find_serial(char *out, size_t len)
{
	struct stat st;
	if (stat("/dev/virtio-ports/" SERIAL_NAME, &st) == 0) {
		snprintf(out, len, "/dev/virtio-ports/%s", SERIAL_NAME);
		return 1;
	}
	DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return 0;
	struct dirent *e;
	int found = 0;
	while (!found && (e = readdir(d))) {
		char p[PATH_MAX], name[128] = "";
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", e->d_name);
		if (read_file(p, name, sizeof(name)) <= 0)
			continue;
		name[strcspn(name, "\n")] = 0;
		if (!strcmp(name, SERIAL_NAME)) {
			snprintf(out, len, "/dev/%s", e->d_name);
			found = stat(out, &st) == 0;
		}
	}
	closedir(d);
	return found;
}

static int listen_unix(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		return -1;
	strcpy(sa.sun_path, path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int listen_vsock(unsigned port)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int channel_parse(const char *v, struct channel *ch)
{
	if (!strcmp(v, "auto")) {
		ch->kind = CHAN_AUTO;
	} else if (!strncmp(v, "unix:", 5) && v[5]) {
		ch->kind = CHAN_UNIX;
		snprintf(ch->path, sizeof(ch->path), "%s", v + 5);
	} else if (!strncmp(v, "vsock:", 6)) {
		ch->kind = CHAN_VSOCK;
		ch->port = (unsigned)strtoul(v + 6, NULL, 10);
		if (!ch->port)
			return -1;
	} else if (!strncmp(v, "serial:", 7) && v[7]) {
		ch->kind = CHAN_SERIAL;
		snprintf(ch->path, sizeof(ch->path), "%s", v + 7);
	} else {
		return -1;
	}
	return 0;
}

/* Auto: vsock or the serial port, whichever appears first within wait_s seconds. */
static int channel_pick(struct channel *ch, int wait_s)
{
	uint64_t until = now_ms() + (uint64_t)wait_s * 1000;
	for (;;) {
		if (vsock_usable() && (ch->listen_fd = listen_vsock(VSOCK_PORT)) >= 0) {
			ch->kind = CHAN_VSOCK;
			ch->port = VSOCK_PORT;
			return 0;
		}
		if (find_serial(ch->path, sizeof(ch->path))) {
			ch->kind = CHAN_SERIAL;
			return 0;
		}
		if (now_ms() >= until) {
			errno = ENODEV;
			return -1;
		}
		usleep(20000); /* the port's name arrives from the host after the device probes */
	}
}

const char *channel_open(struct channel *ch, int wait_s)
{
	ch->listen_fd = ch->serial_fd = -1;
	if (ch->kind == CHAN_AUTO && channel_pick(ch, wait_s) < 0)
		return "no agent channel: neither a vsock transport nor the virtio-serial port " SERIAL_NAME;
	if (ch->kind == CHAN_UNIX) {
		snprintf(ch->where, sizeof(ch->where), "unix:%s", ch->path);
		ch->listen_fd = listen_unix(ch->path);
	} else if (ch->kind == CHAN_VSOCK) {
		snprintf(ch->where, sizeof(ch->where), "vsock:%u", ch->port);
		if (ch->listen_fd < 0)
			ch->listen_fd = listen_vsock(ch->port);
	} else {
		snprintf(ch->where, sizeof(ch->where), "serial:%s", ch->path);
		ch->serial_fd = open(ch->path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	}
	return ch->listen_fd < 0 && ch->serial_fd < 0 ? ch->where : NULL;
}

static int copy_once(int from, int to)
{
	uint8_t b[65536];
	ssize_t n = read(from, b, sizeof(b));
	if (n <= 0)
		return n < 0 && errno == EINTR ? 0 : -1;
	return write_all_fd(to, b, (size_t)n);
}

int relay_vsock(const char *spec)
{
	unsigned cid = 0, port = 0;
	if (sscanf(spec, "%u:%u", &cid, &port) != 2)
		return 2;
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		logmsg("connect vsock %u:%u: %s", cid, port, strerror(errno));
		return 1;
	}
	struct pollfd p[2] = { { .fd = 0, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if ((p[0].revents && copy_once(0, fd) < 0) || (p[1].revents && copy_once(fd, 1) < 0))
			return 0;
	}
}
