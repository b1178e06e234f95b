/*
 * osbuilder's minimal guest agent: speaks ttrpc (containerd/ttrpc framing,
 * protobuf messages) on vsock port 1024, the virtio-serial port
 * agent.channel.0, or a unix socket (host tests). Services: grpc.Health
 * (Check, Version, as Kata's health.proto) and osbuilder.Guest (Exec,
 * Shutdown: see ../proto/osbuilder-guest.proto).
 *
 * Single-threaded: one poll() loop; an Exec runs to completion before the
 * next request is read. SIGTERM/SIGINT (not as PID 1) stop the agent: at
 * once when idle; during an Exec, the command is killed, the Exec answered,
 * then the agent stops the same way.
 */
#define _GNU_SOURCE
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int g_pid1, g_debug, g_guest, g_stop_signal;

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

void logmsg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	char out[1100];
	int m = snprintf(out, sizeof(out), "kata-agent: %.*s", n, line);
	if (m > 0 && write(2, out, (size_t)m < sizeof(out) ? (size_t)m : sizeof(out) - 1) < 0) { }
}

void dbgmsg(const char *fmt, ...)
{
	if (!g_debug)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	logmsg("debug: %s", line);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- channel */

enum chan_kind { CHAN_AUTO, CHAN_UNIX, CHAN_VSOCK, CHAN_SERIAL };

struct options {
	enum chan_kind kind;
	char path[PATH_MAX];
	unsigned port;
	long hangup_timeout; /* seconds; <0 = default for the mode, 0 = never */
	int channel_wait;    /* seconds to wait for a guest channel to appear */
};

/* vsock works when a guest transport has a real CID (vhost-vsock device present). */
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
		if (e->d_name[0] == '.')
			continue;
		char p[PATH_MAX], name[128] = "";
		snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", e->d_name);
		FILE *f = fopen(p, "re");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f))
			name[strcspn(name, "\n")] = 0;
		fclose(f);
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

/* ---------------------------------------------------------------- ttrpc */

#define MAX_CONNS 16

struct conn {
	int fd;
	int serial;           /* a virtio-serial port: one stream, no accept */
	uint8_t hdr[TTRPC_HEADER_LEN];
	size_t hdr_got;
	uint32_t len, stream;
	uint8_t type;
	uint8_t *payload;
	size_t got;
	uint64_t discard;     /* bytes of an oversized frame still to skip */
};

static int g_sigfd = -1;

void read_signals(int sigfd)
{
	struct signalfd_siginfo si;
	while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
		/* As PID 1 these are ignored, as always: the VM ends by Shutdown or the hang-up timeout. */
		if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && !g_pid1 && !g_stop_signal)
			g_stop_signal = (int)si.ssi_signo;
	}
}

static void conn_reset(struct conn *c)
{
	free(c->payload);
	c->payload = NULL;
	c->hdr_got = c->got = 0;
	c->discard = 0;
}

static int write_all(struct conn *c, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = c->serial ? write(c->fd, p, n) : send(c->fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
				poll(&pfd, 1, 1000);
				continue;
			}
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_response(struct conn *c, uint32_t stream, int code, const char *message, const struct buf *payload)
{
	/* Response { google.rpc.Status status = 1; bytes payload = 2; } — status is always
	 * present (empty for OK), as ttrpc's Go server writes it. */
	struct buf status = { 0 }, resp = { 0 };
	pb_put_int(&status, 1, code);
	pb_put_str(&status, 2, message);
	pb_put_tag(&resp, 1, 2);
	pb_put_varint(&resp, status.len);
	buf_put(&resp, status.data, status.len);
	if (payload)
		pb_put_bytes(&resp, 2, payload->data, payload->len);
	int rc = -1;
	if (resp.failed || status.failed || resp.len > TTRPC_MAX_MESSAGE) {
		buf_free(&status);
		buf_free(&resp);
		return send_response(c, stream, CODE_RESOURCE_EXHAUSTED, "response too large", NULL);
	}
	uint8_t h[TTRPC_HEADER_LEN] = {
		(uint8_t)(resp.len >> 24), (uint8_t)(resp.len >> 16), (uint8_t)(resp.len >> 8), (uint8_t)resp.len,
		(uint8_t)(stream >> 24), (uint8_t)(stream >> 16), (uint8_t)(stream >> 8), (uint8_t)stream,
		TTRPC_TYPE_RESPONSE, 0,
	};
	if (write_all(c, h, sizeof(h)) == 0 && write_all(c, resp.data, resp.len) == 0)
		rc = 0;
	buf_free(&status);
	buf_free(&resp);
	dbgmsg("stream %u: response code %d (%s)", stream, code, message ? message : "");
	return rc;
}

static int str_eq(const uint8_t *p, size_t n, const char *s)
{
	return strlen(s) == n && !memcmp(p, s, n);
}

static char *dup_str(const uint8_t *p, size_t n)
{
	if (memchr(p, 0, n))
		return NULL; /* NUL inside a string: not something argv or env can carry */
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

static int push_str(char ***list, size_t *n, const uint8_t *p, size_t len)
{
	char **l = realloc(*list, (*n + 2) * sizeof(char *));
	if (!l)
		return -1;
	*list = l;
	if (!(l[*n] = dup_str(p, len)))
		return -1;
	l[++*n] = NULL;
	return 0;
}

static void free_list(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

static int do_exec(struct conn *c, uint32_t stream, const uint8_t *p, size_t n, uint64_t timeout_nano)
{
	/* ExecRequest { repeated string argv = 1; repeated string env = 2; string cwd = 3;
	 *               uint64 timeout_ms = 4; bytes stdin = 5; } */
	struct exec_req req = { 0 };
	struct pb r = { p, p + n };
	struct pb_field f;
	int rc, bad = 0;
	while (!bad && (rc = pb_next(&r, &f)) > 0) {
		if (f.field == 1 && f.wire == 2)
			bad = push_str(&req.argv, &req.argc, f.data, f.len) < 0;
		else if (f.field == 2 && f.wire == 2)
			bad = push_str(&req.env, &req.envc, f.data, f.len) < 0;
		else if (f.field == 3 && f.wire == 2) {
			free(req.cwd);
			bad = !(req.cwd = dup_str(f.data, f.len));
		} else if (f.field == 4 && f.wire == 0)
			req.timeout_ms = f.varint;
		else if (f.field == 5 && f.wire == 2) {
			req.stdin_data = f.data;
			req.stdin_len = f.len;
		} else if (f.field <= 5)
			bad = 1; /* known field, wrong wire type */
	}
	if (rc < 0)
		bad = 1;
	int ret;
	if (bad) {
		ret = send_response(c, stream, CODE_INVALID_ARGUMENT, "malformed osbuilder.ExecRequest", NULL);
	} else if (req.argc == 0) {
		ret = send_response(c, stream, CODE_INVALID_ARGUMENT, "ExecRequest.argv is empty", NULL);
	} else {
		if (timeout_nano) {
			uint64_t ms = timeout_nano / 1000000 ? timeout_nano / 1000000 : 1;
			if (!req.timeout_ms || ms < req.timeout_ms)
				req.timeout_ms = ms;
		}
		dbgmsg("exec %s (%zu args)", req.argv[0], req.argc);
		struct exec_res res;
		exec_run(&req, &res, g_sigfd);
		if (res.error[0]) {
			ret = send_response(c, stream, CODE_INTERNAL, res.error, NULL);
		} else {
			/* ExecResponse { int32 exit_code = 1; bytes stdout = 2; bytes stderr = 3;
			 *                bool timed_out = 4; int32 signal = 5; bool truncated = 6; } */
			struct buf out = { 0 };
			pb_put_int(&out, 1, res.exit_code);
			pb_put_bytes(&out, 2, res.out.data, res.out.len);
			pb_put_bytes(&out, 3, res.err.data, res.err.len);
			pb_put_bool(&out, 4, res.timed_out);
			pb_put_int(&out, 5, res.signal);
			pb_put_bool(&out, 6, res.truncated || res.out.failed || res.err.failed);
			ret = out.failed ? send_response(c, stream, CODE_RESOURCE_EXHAUSTED, "out of memory collecting output", NULL)
					 : send_response(c, stream, CODE_OK, NULL, &out);
			buf_free(&out);
		}
		buf_free(&res.out);
		buf_free(&res.err);
	}
	free_list(req.argv, req.argc);
	free_list(req.env, req.envc);
	free(req.cwd);
	return ret;
}

/* Handles one complete request frame; returns <0 when the connection must close. */
static int handle_request(struct conn *c, uint32_t stream, const uint8_t *p, size_t n)
{
	/* Request { string service = 1; string method = 2; bytes payload = 3;
	 *           int64 timeout_nano = 4; repeated KeyValue metadata = 5; } */
	struct pb r = { p, p + n };
	struct pb_field f;
	const uint8_t *svc = NULL, *meth = NULL, *payload = (const uint8_t *)"";
	size_t svc_len = 0, meth_len = 0, payload_len = 0;
	uint64_t timeout_nano = 0;
	int rc;
	while ((rc = pb_next(&r, &f)) > 0) {
		if (f.field == 1 && f.wire == 2) { svc = f.data; svc_len = f.len; }
		else if (f.field == 2 && f.wire == 2) { meth = f.data; meth_len = f.len; }
		else if (f.field == 3 && f.wire == 2) { payload = f.data; payload_len = f.len; }
		else if (f.field == 4 && f.wire == 0) timeout_nano = f.varint;
		else if (f.field == 5 && f.wire == 2) { }
		else if (f.field <= 5) { rc = -1; break; }
	}
	if (rc < 0 || !svc || !meth)
		return send_response(c, stream, CODE_INVALID_ARGUMENT, rc < 0 ? "malformed ttrpc request" : "request names no service or method", NULL);
	dbgmsg("stream %u: %.*s/%.*s", stream, (int)svc_len, svc, (int)meth_len, meth);

	if (str_eq(svc, svc_len, "grpc.Health")) {
		/* health.proto: CheckRequest { string service = 1; string option_val = 2; } */
		struct pb pr = { payload, payload + payload_len };
		while ((rc = pb_next(&pr, &f)) > 0) { }
		if (rc < 0)
			return send_response(c, stream, CODE_INVALID_ARGUMENT, "malformed grpc.CheckRequest", NULL);
		struct buf out = { 0 };
		if (str_eq(meth, meth_len, "Check")) {
			pb_put_uint(&out, 1, 1); /* HealthCheckResponse.status = SERVING */
		} else if (str_eq(meth, meth_len, "Version")) {
			pb_put_str(&out, 1, AGENT_API_VERSION); /* VersionCheckResponse.grpc_version */
			pb_put_str(&out, 2, AGENT_VERSION);     /* VersionCheckResponse.agent_version */
		} else {
			return send_response(c, stream, CODE_UNIMPLEMENTED, "method not implemented", NULL);
		}
		rc = send_response(c, stream, CODE_OK, NULL, &out);
		buf_free(&out);
		return rc;
	}
	if (str_eq(svc, svc_len, "osbuilder.Guest")) {
		if (str_eq(meth, meth_len, "Exec"))
			return do_exec(c, stream, payload, payload_len, timeout_nano);
		if (str_eq(meth, meth_len, "Shutdown")) {
			send_response(c, stream, CODE_OK, NULL, NULL);
			power_off();
		}
		return send_response(c, stream, CODE_UNIMPLEMENTED, "method not implemented", NULL);
	}
	return send_response(c, stream, CODE_UNIMPLEMENTED, "service not implemented", NULL);
}

static int frame_done(struct conn *c)
{
	uint32_t stream = c->stream;
	int rc;
	if (c->type != TTRPC_TYPE_REQUEST)
		rc = send_response(c, stream, CODE_INVALID_ARGUMENT, "unexpected message type: only requests (1) are accepted", NULL);
	else if (stream % 2 != 1)
		rc = send_response(c, stream, CODE_INVALID_ARGUMENT, "StreamID must be odd for client initiated streams", NULL);
	else
		rc = handle_request(c, stream, c->payload, c->len);
	free(c->payload);
	c->payload = NULL;
	c->hdr_got = c->got = 0;
	return rc;
}

/* Feeds received bytes through the frame parser; <0 = close the connection. */
static int conn_feed(struct conn *c, const uint8_t *p, size_t n)
{
	while (n) {
		/* Stopping (a signal came during an Exec): answer nothing more, the agent exits. */
		if (g_stop_signal)
			return 0;
		if (c->discard) {
			size_t k = n < c->discard ? n : (size_t)c->discard;
			c->discard -= k;
			p += k;
			n -= k;
			continue;
		}
		if (c->hdr_got < TTRPC_HEADER_LEN) {
			size_t k = TTRPC_HEADER_LEN - c->hdr_got;
			if (k > n)
				k = n;
			memcpy(c->hdr + c->hdr_got, p, k);
			c->hdr_got += k;
			p += k;
			n -= k;
			if (c->hdr_got < TTRPC_HEADER_LEN)
				return 0;
			c->len = (uint32_t)c->hdr[0] << 24 | (uint32_t)c->hdr[1] << 16 | (uint32_t)c->hdr[2] << 8 | c->hdr[3];
			c->stream = (uint32_t)c->hdr[4] << 24 | (uint32_t)c->hdr[5] << 16 | (uint32_t)c->hdr[6] << 8 | c->hdr[7];
			c->type = c->hdr[8];
			c->got = 0;
			if (c->len > TTRPC_MAX_MESSAGE) {
				/* As ttrpc: skip the payload, answer the stream with RESOURCE_EXHAUSTED. */
				char msg[128];
				snprintf(msg, sizeof(msg), "message length %u exceed maximum message size of %u", c->len, TTRPC_MAX_MESSAGE);
				c->discard = c->len;
				c->hdr_got = 0;
				if (send_response(c, c->stream, CODE_RESOURCE_EXHAUSTED, msg, NULL) < 0)
					return -1;
				continue;
			}
			c->payload = malloc(c->len ? c->len : 1);
			if (!c->payload)
				return -1;
			if (c->len == 0 && frame_done(c) < 0)
				return -1;
			continue;
		}
		size_t k = c->len - c->got;
		if (k > n)
			k = n;
		memcpy(c->payload + c->got, p, k);
		c->got += k;
		p += k;
		n -= k;
		if (c->got == c->len && frame_done(c) < 0)
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- main loop */

static void usage(void)
{
	fprintf(stderr,
		"usage: kata-agent [--listen auto|unix:PATH|vsock:PORT|serial:PATH] [--hangup-timeout S] [--debug]\n"
		"       kata-agent --connect vsock:CID:PORT   (host side: relay stdin/stdout to a guest agent)\n"
		"       kata-agent --version\n");
}

static int parse_listen(const char *v, struct options *o)
{
	if (!strcmp(v, "auto")) {
		o->kind = CHAN_AUTO;
	} else if (!strncmp(v, "unix:", 5) && v[5]) {
		o->kind = CHAN_UNIX;
		snprintf(o->path, sizeof(o->path), "%s", v + 5);
	} else if (!strncmp(v, "vsock:", 6)) {
		o->kind = CHAN_VSOCK;
		o->port = (unsigned)strtoul(v + 6, NULL, 10);
		if (!o->port)
			return -1;
	} else if (!strncmp(v, "serial:", 7) && v[7]) {
		o->kind = CHAN_SERIAL;
		snprintf(o->path, sizeof(o->path), "%s", v + 7);
	} else {
		return -1;
	}
	return 0;
}

/* Kata-style kernel parameters: agent.log=debug, agent.hangup_timeout=S, agent.channel_wait=S. */
static void parse_cmdline(struct options *o)
{
	char buf[4096];
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (char *save = NULL, *tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		if (!strcmp(tok, "agent.log=debug") || !strcmp(tok, "agent.debug"))
			g_debug = 1;
		else if (!strncmp(tok, "agent.hangup_timeout=", 21))
			o->hangup_timeout = strtol(tok + 21, NULL, 10);
		else if (!strncmp(tok, "agent.channel_wait=", 19))
			o->channel_wait = (int)strtol(tok + 19, NULL, 10);
	}
}

/* Host side of vsock for runtimes without AF_VSOCK (Node): relay stdio <-> CID:PORT. */
static int relay_vsock(const char *spec)
{
	unsigned cid = 0, port = 0;
	if (sscanf(spec, "%u:%u", &cid, &port) != 2) {
		usage();
		return 2;
	}
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		logmsg("connect vsock %u:%u: %s", cid, port, strerror(errno));
		return 1;
	}
	struct pollfd p[2] = { { .fd = 0, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
	uint8_t b[65536];
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		for (int i = 0; i < 2; i++) {
			if (!p[i].revents)
				continue;
			ssize_t n = read(p[i].fd, b, sizeof(b));
			if (n <= 0)
				return 0;
			int to = i ? 1 : fd;
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(to, b + off, (size_t)(n - off));
				if (w < 0) {
					if (errno == EINTR)
						continue;
					return 1;
				}
				off += w;
			}
		}
	}
}

/* The end of a stop by SIGTERM/SIGINT, whether it came while idle or during an Exec. */
static int stopped(const struct options *o)
{
	logmsg("stopped by signal %d", g_stop_signal);
	if (o->kind == CHAN_UNIX)
		unlink(o->path);
	return 0;
}

static void fatal_channel(const char *what)
{
	logmsg("%s: %s", what, strerror(errno));
	if (g_pid1)
		power_off();
	_exit(1);
}

int main(int argc, char **argv)
{
	struct options o = { .kind = CHAN_AUTO, .port = VSOCK_PORT, .hangup_timeout = -1, .channel_wait = 30 };
	g_pid1 = getpid() == 1;
	if (g_pid1) {
		pid1_setup();
		logmsg("%s starting as init", AGENT_VERSION);
	} else
		ensure_stdio();

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--version")) {
			printf("kata-agent (osbuilder) %s\n", AGENT_VERSION);
			return 0;
		} else if (!strcmp(a, "--help")) {
			usage();
			return 0;
		} else if (!strcmp(a, "--debug")) {
			g_debug = 1;
		} else if (!strcmp(a, "--listen") && v) {
			if (parse_listen(v, &o) < 0) {
				usage();
				return 2;
			}
			i++;
		} else if (!strcmp(a, "--hangup-timeout") && v) {
			o.hangup_timeout = strtol(v, NULL, 10);
			i++;
		} else if (!strcmp(a, "--connect") && v && !strncmp(v, "vsock:", 6)) {
			return relay_vsock(v + 6);
		} else if (!g_pid1) {
			usage();
			return 2;
		}
		/* As PID 1, the kernel passes unknown boot parameters as arguments: ignore them. */
	}
	if (o.kind != CHAN_UNIX)
		parse_cmdline(&o);
	g_guest = o.kind != CHAN_UNIX;
	if (o.hangup_timeout < 0)
		o.hangup_timeout = o.kind == CHAN_UNIX ? 0 : 30;

	/* SIGCHLD (reaping), SIGTERM/SIGINT (service stop) through a signalfd. */
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	g_sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (g_sigfd < 0)
		fatal_channel("signalfd");

	/* Pick the channel. */
	int listen_fd = -1, serial_fd = -1;
	char where[PATH_MAX + 16];
	if (o.kind == CHAN_AUTO) {
		uint64_t until = now_ms() + (uint64_t)o.channel_wait * 1000;
		for (;;) {
			if (vsock_usable() && (listen_fd = listen_vsock(VSOCK_PORT)) >= 0) {
				o.kind = CHAN_VSOCK;
				o.port = VSOCK_PORT;
				break;
			}
			if (find_serial(o.path, sizeof(o.path))) {
				o.kind = CHAN_SERIAL;
				break;
			}
			if (now_ms() >= until) {
				errno = ENODEV;
				fatal_channel("no agent channel: neither a vsock transport nor the virtio-serial port " SERIAL_NAME);
			}
			/* The port's name arrives from the host asynchronously after probe. */
			usleep(20000);
		}
	}
	if (o.kind == CHAN_UNIX) {
		if ((listen_fd = listen_unix(o.path)) < 0)
			fatal_channel(o.path);
		snprintf(where, sizeof(where), "unix:%s", o.path);
	} else if (o.kind == CHAN_VSOCK) {
		if (listen_fd < 0 && (listen_fd = listen_vsock(o.port)) < 0)
			fatal_channel("vsock listen");
		snprintf(where, sizeof(where), "vsock:%u", o.port);
	} else {
		if ((serial_fd = open(o.path, O_RDWR | O_CLOEXEC | O_NOCTTY)) < 0)
			fatal_channel(o.path);
		snprintf(where, sizeof(where), "serial:%s", o.path);
	}
	logmsg("%s listening on %s%s", AGENT_VERSION, where, g_pid1 ? " (init)" : "");

	struct conn conns[MAX_CONNS];
	int nconns = 0;
	/* The serial port is "connected" while the host end is open (no POLLHUP). An
	 * edge-triggered epoll wakes us on the connect without spinning on POLLHUP. */
	int serial_up = 0, epfd = -1;
	if (serial_fd >= 0) {
		epfd = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET };
		if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, serial_fd, &ev) < 0)
			fatal_channel("epoll");
		memset(&conns[0], 0, sizeof(conns[0]));
		conns[0].fd = serial_fd;
		conns[0].serial = 1;
	}
	int had_session = 0;
	uint64_t idle_since = now_ms();

	for (;;) {
		if (g_stop_signal)
			return stopped(&o); /* recorded during an Exec, which has been answered */
		if (serial_fd >= 0 && !serial_up) {
			struct pollfd sp = { .fd = serial_fd, .events = POLLIN };
			if (poll(&sp, 1, 0) >= 0 && !(sp.revents & POLLHUP)) {
				serial_up = had_session = 1;
				dbgmsg("host connected to %s", where);
			}
		}
		int active = serial_fd >= 0 ? serial_up : nconns;
		struct pollfd p[MAX_CONNS + 3];
		int np = 0;
		p[np++] = (struct pollfd){ .fd = g_sigfd, .events = POLLIN };
		int ilisten = -1, iep = -1, iconn = np;
		if (serial_fd >= 0) {
			if (serial_up)
				p[np++] = (struct pollfd){ .fd = serial_fd, .events = POLLIN };
			else
				p[iep = np++] = (struct pollfd){ .fd = epfd, .events = POLLIN };
		} else {
			for (int i = 0; i < nconns; i++)
				p[np++] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
			if (nconns < MAX_CONNS)
				p[ilisten = np++] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
		}
		int timeout = -1;
		if (o.hangup_timeout > 0 && had_session && !active) {
			uint64_t end = idle_since + (uint64_t)o.hangup_timeout * 1000, now = now_ms();
			if (now >= end) {
				logmsg("host closed the channel and did not come back within %lds", o.hangup_timeout);
				power_off();
			}
			timeout = (int)(end - now);
		}
		int r = poll(p, np, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fatal_channel("poll");
		}
		if (p[0].revents) {
			read_signals(g_sigfd);
			if (g_stop_signal)
				return stopped(&o);
			reap_children();
		}
		if (iep >= 0 && p[iep].revents) {
			struct epoll_event ev;
			while (epoll_wait(epfd, &ev, 1, 0) > 0) { }
		}
		if (ilisten >= 0 && p[ilisten].revents) {
			int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				memset(&conns[nconns], 0, sizeof(conns[nconns]));
				conns[nconns++].fd = fd;
				had_session = 1;
				dbgmsg("connection on %s (%d open)", where, nconns);
			} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED && errno != EMFILE && errno != ENFILE) {
				fatal_channel("accept");
			}
		}
		for (int i = iconn; i < np && !g_stop_signal; i++) {
			if (i == ilisten || i == iep || !p[i].revents)
				continue;
			struct conn *c = serial_fd >= 0 ? &conns[0] : &conns[i - iconn];
			uint8_t b[65536];
			ssize_t n = read(c->fd, b, sizeof(b));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			int drop = n <= 0;
			if (n < 0 && c->serial && errno != EPIPE)
				fatal_channel(where); /* the port is gone: the channel is closed for good */
			if (!drop && conn_feed(c, b, (size_t)n) < 0)
				drop = 1;
			if (!drop)
				continue;
			conn_reset(c);
			if (c->serial) {
				serial_up = 0;
				dbgmsg("host disconnected from %s", where);
				/* Re-arm the edge-triggered wait for the next connect. */
				struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET };
				epoll_ctl(epfd, EPOLL_CTL_MOD, serial_fd, &ev);
			} else {
				close(c->fd);
				c->fd = -1;
			}
			idle_since = now_ms();
		}
		if (serial_fd < 0) {
			int k = 0;
			for (int i = 0; i < nconns; i++)
				if (conns[i].fd >= 0)
					conns[k++] = conns[i];
			if (k < nconns)
				dbgmsg("%d connection(s) open", k);
			nconns = k;
		}
	}
}
