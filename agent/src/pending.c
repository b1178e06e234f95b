/*
 * Requests answered later: WaitProcess until the process exits, ReadStdout
 * until there is output, WriteStdin until the pipe took everything,
 * RemoveContainer until the processes are gone. Each kind says how to make
 * progress; the main loop polls their fds and calls pending_run() after
 * every event. A ttrpc deadline (timeout_nano) answers DEADLINE_EXCEEDED
 * "timeout", as ttrpc-rust does.
 */
#define _GNU_SOURCE
#include "agent.h"

#include <stdlib.h>

static struct pending *g_pending;

/* Appends: the oldest entries are polled first and make progress first. */
void pending_add(struct pending *p)
{
	struct pending **pp = &g_pending;
	while (*pp)
		pp = &(*pp)->next;
	p->next = NULL;
	*pp = p;
}

const struct pending *pending_first(int (*match)(const struct pending *p, const void *arg), const void *arg)
{
	for (const struct pending *p = g_pending; p; p = p->next)
		if (match(p, arg))
			return p;
	return NULL;
}

void pending_discard(struct pending *p)
{
	if (p->release)
		p->release(p);
	free(p);
}

int pending_pollfds(struct pollfd *pfd, int max)
{
	int n = 0;
	for (struct pending *p = g_pending; p && n < max; p = p->next) {
		short events = 0;
		int fd = p->pollfd ? p->pollfd(p, &events) : -1;
		if (fd >= 0)
			pfd[n++] = (struct pollfd){ .fd = fd, .events = events };
	}
	return n;
}

int pending_timeout(void)
{
	uint64_t next = 0;
	for (struct pending *p = g_pending; p; p = p->next) {
		uint64_t t[2] = { p->call.deadline, p->wake_at };
		for (int i = 0; i < 2; i++)
			if (t[i] && (!next || t[i] < next))
				next = t[i];
	}
	if (!next)
		return -1;
	uint64_t now = now_ms();
	return next <= now ? 0 : (int)(next - now);
}

/* Runs every entry once; an answer may create or finish others, so loop until quiet. */
void pending_run(void)
{
	int again = 1;
	for (int rounds = 0; again && rounds < 8; rounds++) {
		again = 0;
		for (struct pending **pp = &g_pending; *pp;) {
			struct pending *p = *pp;
			int done = !call_alive(&p->call);
			if (!done && p->call.deadline && now_ms() >= p->call.deadline) {
				reply_err(&p->call, CODE_DEADLINE_EXCEEDED, "timeout");
				done = 1;
			}
			if (!done)
				done = p->progress(p);
			if (done) {
				*pp = p->next;
				pending_discard(p);
				again = 1;
			} else {
				pp = &p->next;
			}
		}
	}
}

void pending_drop_conn(const struct conn *c)
{
	for (struct pending **pp = &g_pending; *pp;) {
		struct pending *p = *pp;
		if (p->call.conn == c) {
			*pp = p->next;
			pending_discard(p);
		} else {
			pp = &p->next;
		}
	}
}
