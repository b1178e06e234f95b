/*
 * osbuilder's guest agent: Kata's agent protocol (ttrpc carrying grpc.Health
 * and grpc.AgentService, agent/proto) on vsock port 1024, the virtio-serial
 * port agent.channel.0, or a unix socket (tests on the host).
 *
 * Single-threaded: one poll() loop over the channel, the signalfd and the
 * pipes of requests that wait (pending.c). As PID 1 it is the initrd's init
 * (Kata's AGENT_INIT=yes); under systemd it is kata-agent.service. After
 * DestroySandbox it stops and the VM powers off, as Kata's agent does.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "channel.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 16
#define MAX_POLL (MAX_CONNS + 4 + 256)

struct options {
	struct channel ch;
	long hangup_timeout; /* seconds; <0 = default for the mode, 0 = never */
	int channel_wait;    /* seconds to wait for a guest channel to appear */
};

static int g_sigfd = -1;

static void usage(void)
{
	fprintf(stderr,
		"usage: kata-agent [--listen auto|unix:PATH|vsock:PORT|serial:PATH] [--hangup-timeout S] [--debug]\n"
		"       kata-agent --connect vsock:CID:PORT   (host side: relay stdin/stdout to a guest agent)\n"
		"       kata-agent --version\n");
}

/* Kata-style kernel parameters: agent.log=debug, agent.hangup_timeout=S, agent.channel_wait=S. */
static void parse_cmdline(struct options *o)
{
	char buf[4096];
	if (read_file("/proc/cmdline", buf, sizeof(buf)) <= 0)
		return;
	for (char *save = NULL, *tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		if (!strcmp(tok, "agent.log=debug") || !strcmp(tok, "agent.debug"))
			g_debug = 1;
		else if (!strncmp(tok, "agent.hangup_timeout=", 21))
			o->hangup_timeout = strtol(tok + 21, NULL, 10);
		else if (!strncmp(tok, "agent.channel_wait=", 19))
			o->channel_wait = (int)strtol(tok + 19, NULL, 10);
	}
}

/* 0 = serve, 1 = exit 0 (--version, --help), 2 = usage error, 3 = relay done (status in *rc). */
static int parse_args(int argc, char **argv, struct options *o, int *rc)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--version")) {
			printf("kata-agent (osbuilder) %s\n", AGENT_VERSION);
			return 1;
		} else if (!strcmp(a, "--help")) {
			usage();
			return 1;
		} else if (!strcmp(a, "--debug")) {
			g_debug = 1;
		} else if (!strcmp(a, "--listen") && v) {
			if (channel_parse(v, &o->ch) < 0)
				return 2;
			i++;
		} else if (!strcmp(a, "--hangup-timeout") && v) {
			o->hangup_timeout = strtol(v, NULL, 10);
			i++;
		} else if (!strcmp(a, "--connect") && v && !strncmp(v, "vsock:", 6)) {
			*rc = relay_vsock(v + 6);
			return 3;
		} else if (!g_pid1) {
			return 2;
		}
		/* As PID 1, the kernel passes unknown boot parameters as arguments: ignore them. */
	}
	return 0;
}

static void read_signals(void)
{
	struct signalfd_siginfo si;
	while (read(g_sigfd, &si, sizeof(si)) == sizeof(si)) {
		/* As PID 1 these are ignored: the VM ends by DestroySandbox or the hang-up timeout. */
		if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && !g_pid1 && !g_stop_signal)
			g_stop_signal = (int)si.ssi_signo;
	}
	reap_children();
}

static void fatal(const char *what)
{
	logmsg("%s: %s", what, strerror(errno));
	if (g_pid1)
		power_off();
	_exit(1);
}

static void setup_signals(void)
{
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	g_sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (g_sigfd < 0)
		fatal("signalfd");
	/* Container processes outlive the process that forked them: they must come back to us. */
	if (!g_pid1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		/* e.g. under qemu-user: the protocol still works, containers cannot (checked per request). */
		g_no_reaper = errno;
		logmsg("cannot become a child subreaper (%s): containers will be refused", strerror(errno));
	}
}

/* ---------------------------------------------------------------- the loop */

struct loop {
	struct options *o;
	/* Fixed slots (fd -1 = free): pending requests point at their connection's slot. */
	struct conn conns[MAX_CONNS];
	int epfd;        /* serial: edge-triggered wait for the host to connect */
	int serial_up, had_session;
	uint64_t idle_since;
};

/* Reads one connection; returns 0 to keep it, -1 when it is gone. */
static int serve_conn(struct loop *l, struct conn *c)
{
	uint8_t b[65536];
	ssize_t n = read(c->fd, b, sizeof(b));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n < 0 && c->serial && errno != EPIPE)
		fatal(l->o->ch.where); /* the port is gone for good */
	if (n > 0 && conn_feed(c, b, (size_t)n) == 0)
		return 0;
	pending_drop_conn(c);
	conn_reset(c);
	l->idle_since = now_ms();
	if (c->serial) {
		l->serial_up = 0;
		dbgmsg("host disconnected from %s", l->o->ch.where);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET };
		epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev); /* re-arm for the next connect */
	} else {
		close(c->fd);
		c->fd = -1;
	}
	return -1;
}

static int open_conns(const struct loop *l)
{
	int n = 0;
	for (int i = 0; i < MAX_CONNS; i++)
		n += l->conns[i].fd >= 0;
	return n;
}

static void accept_conn(struct loop *l)
{
	int slot = 0;
	while (slot < MAX_CONNS && l->conns[slot].fd >= 0)
		slot++;
	int fd = slot < MAX_CONNS ? accept4(l->o->ch.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK) : -1;
	if (fd >= 0) {
		conn_init(&l->conns[slot], fd, 0);
		l->had_session = 1;
		dbgmsg("connection on %s (%d open)", l->o->ch.where, open_conns(l));
	} else if (slot < MAX_CONNS && (errno == EMFILE || errno == ENFILE)) {
		logmsg("accept: %s; retrying in 100 ms", strerror(errno));
		poll(NULL, 0, 100); /* the listener stays readable: do not spin */
	} else if (slot < MAX_CONNS && errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
		fatal("accept");
	}
}

/* The poll timeout: the nearest pending deadline, or the hang-up deadline. */
static int loop_timeout(struct loop *l, int active)
{
	int t = pending_timeout();
	if (l->o->hangup_timeout > 0 && l->had_session && !active) {
		uint64_t end = l->idle_since + (uint64_t)l->o->hangup_timeout * 1000, now = now_ms();
		if (now >= end) {
			logmsg("host closed the channel and did not come back within %lds", l->o->hangup_timeout);
			power_off();
		}
		if (t < 0 || (uint64_t)t > end - now)
			t = (int)(end - now);
	}
	return t;
}

/* One turn: poll, then signals, connections, pending requests. */
static void loop_turn(struct loop *l)
{
	struct channel *ch = &l->o->ch;
	if (ch->serial_fd >= 0 && !l->serial_up) {
		struct pollfd sp = { .fd = ch->serial_fd, .events = POLLIN };
		if (poll(&sp, 1, 0) >= 0 && !(sp.revents & POLLHUP))
			l->serial_up = l->had_session = 1; /* the host end is open */
	}
	int nconns = open_conns(l);
	int active = ch->serial_fd >= 0 ? l->serial_up : nconns;
	struct pollfd p[MAX_POLL];
	struct conn *pc[MAX_POLL] = { 0 };
	int np = 0, ilisten = -1, iep = -1;
	p[np++] = (struct pollfd){ .fd = g_sigfd, .events = POLLIN };
	if (ch->serial_fd >= 0 && l->serial_up) {
		pc[np] = &l->conns[0];
		p[np++] = (struct pollfd){ .fd = ch->serial_fd, .events = POLLIN };
	}
	for (int i = 0; ch->serial_fd < 0 && i < MAX_CONNS; i++) {
		if (l->conns[i].fd < 0)
			continue;
		pc[np] = &l->conns[i];
		p[np++] = (struct pollfd){ .fd = l->conns[i].fd, .events = POLLIN };
	}
	if (ch->serial_fd >= 0 && !l->serial_up)
		p[iep = np++] = (struct pollfd){ .fd = l->epfd, .events = POLLIN };
	if (ch->serial_fd < 0 && nconns < MAX_CONNS)
		p[ilisten = np++] = (struct pollfd){ .fd = ch->listen_fd, .events = POLLIN };
	np += pending_pollfds(p + np, MAX_POLL - np);
	if (poll(p, np, loop_timeout(l, active)) < 0 && errno != EINTR)
		fatal("poll");
	if (p[0].revents)
		read_signals();
	if (g_stop_signal)
		return;
	if (iep >= 0 && p[iep].revents) {
		struct epoll_event ev;
		while (epoll_wait(l->epfd, &ev, 1, 0) > 0) { }
	}
	for (int i = 1; i < np && !g_destroyed; i++)
		if (pc[i] && p[i].revents)
			serve_conn(l, pc[i]);
	if (ilisten >= 0 && p[ilisten].revents && !g_destroyed)
		accept_conn(l);
	pending_run();
	process_gc();
	container_gc();
}

static void serve(struct options *o)
{
	struct loop l = { .o = o, .epfd = -1, .idle_since = now_ms() };
	for (int i = 0; i < MAX_CONNS; i++)
		l.conns[i].fd = -1;
	if (o->ch.serial_fd >= 0) {
		/* The port is "connected" while the host end is open; edge-triggered epoll wakes us on
		 * the connect without spinning on POLLHUP. */
		l.epfd = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET };
		if (l.epfd < 0 || epoll_ctl(l.epfd, EPOLL_CTL_ADD, o->ch.serial_fd, &ev) < 0)
			fatal("epoll");
		conn_init(&l.conns[0], o->ch.serial_fd, 1);
	}
	while (!g_stop_signal && !g_destroyed)
		loop_turn(&l);
}

int main(int argc, char **argv)
{
	struct options o = { .ch = { .kind = CHAN_AUTO }, .hangup_timeout = -1, .channel_wait = 30 };
	int rc = 0;
	g_pid1 = getpid() == 1;
	if (g_pid1) {
		pid1_setup();
		logmsg("%s starting as init", AGENT_VERSION);
	} else {
		ensure_stdio();
	}
	switch (parse_args(argc, argv, &o, &rc)) {
	case 1: return 0;
	case 2: usage(); return 2;
	case 3: return rc;
	}
	if (o.ch.kind != CHAN_UNIX)
		parse_cmdline(&o);
	g_guest = o.ch.kind != CHAN_UNIX;
	if (o.hangup_timeout < 0)
		o.hangup_timeout = g_guest ? 30 : 0;
	setup_signals();
	dispatch_init();
	const char *bad = channel_open(&o.ch, o.channel_wait);
	if (bad)
		fatal(bad);
	logmsg("%s listening on %s%s", AGENT_VERSION, o.ch.where, g_pid1 ? " (init)" : "");
	serve(&o);
	if (g_stop_signal) {
		logmsg("stopped by signal %d", g_stop_signal);
		sandbox_teardown();
	}
	if (o.ch.kind == CHAN_UNIX)
		unlink(o.ch.path);
	/* PID 1 must never return: that is a kernel panic. */
	if ((g_destroyed && g_guest) || g_pid1)
		power_off();
	return 0;
}
