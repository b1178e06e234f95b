/*
 * ttrpc framing on one connection, answered as ttrpc-rust's server (which the
 * real kata-agent uses) answers: an oversized frame is skipped and answered
 * INVALID_ARGUMENT; an even stream id is refused; a data frame outside a
 * stream gets "Stream is no longer active"; other frame types are ignored.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "ttrpc.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A peer that stops reading gets this long to take a response before it is dropped. */
#define SEND_STALL_MS 10000

static unsigned g_next_gen = 1;

void conn_init(struct conn *c, int fd, int serial)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->serial = serial;
	c->gen = g_next_gen++;
}

void conn_reset(struct conn *c)
{
	free(c->payload);
	c->payload = NULL;
	c->hdr_got = c->got = 0;
	c->discard = 0;
	c->gen = g_next_gen++;
}

static int send_all(struct conn *c, const uint8_t *p, size_t n)
{
	uint64_t stalled_since = 0;
	while (n) {
		ssize_t w = c->serial ? write(c->fd, p, n) : send(c->fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			stalled_since = 0;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN)
			return -1;
		if (!stalled_since)
			stalled_since = now_ms();
		else if (now_ms() - stalled_since > SEND_STALL_MS)
			return -1;
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
		poll(&pfd, 1, 200);
	}
	return 0;
}

static void put_u32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

int conn_respond(struct conn *c, uint32_t stream, int code, const char *message, const uint8_t *payload, size_t len)
{
	Ttrpc__Status status = TTRPC__STATUS__INIT;
	Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
	status.code = code;
	status.message = (char *)(message ? message : "");
	resp.status = &status;
	resp.payload.data = (uint8_t *)payload;
	resp.payload.len = payload ? len : 0;
	size_t n = ttrpc__response__get_packed_size(&resp);
	if (n > TTRPC_MAX_MESSAGE) {
		/* As ttrpc-rust: a response over the limit becomes an error that fits. */
		char msg[128];
		snprintf(msg, sizeof(msg), "message length %zu exceed maximum message size of %u", n, TTRPC_MAX_MESSAGE);
		return conn_respond(c, stream, CODE_INVALID_ARGUMENT, msg, NULL, 0);
	}
	uint8_t *frame = malloc(TTRPC_HEADER_LEN + n);
	if (!frame)
		return -1;
	put_u32(frame, (uint32_t)n);
	put_u32(frame + 4, stream);
	frame[8] = TTRPC_TYPE_RESPONSE;
	frame[9] = 0;
	ttrpc__response__pack(&resp, frame + TTRPC_HEADER_LEN);
	int rc = send_all(c, frame, TTRPC_HEADER_LEN + n);
	free(frame);
	dbgmsg("stream %u: answered code %d %s", stream, code, message ? message : "");
	return rc;
}

static void frame_done(struct conn *c)
{
	uint32_t stream = c->stream;
	if (stream % 2 != 1)
		conn_respond(c, stream, CODE_INVALID_ARGUMENT, "stream id must be odd", NULL, 0);
	else if (c->type == TTRPC_TYPE_REQUEST)
		dispatch_request(c, stream, c->payload, c->len);
	else if (c->type == TTRPC_TYPE_DATA)
		conn_respond(c, stream, CODE_INVALID_ARGUMENT, "Stream is no longer active", NULL, 0);
	else
		logmsg("stream %u: ignoring a frame of unknown type %u", stream, c->type);
	free(c->payload);
	c->payload = NULL;
	c->hdr_got = c->got = 0;
}

/* A header is complete: check it, then expect its payload. <0 = close. */
static int header_done(struct conn *c)
{
	c->len = get_u32(c->hdr);
	c->stream = get_u32(c->hdr + 4);
	c->type = c->hdr[8];
	c->got = 0;
	if (c->len > TTRPC_MAX_MESSAGE) {
		char msg[128];
		snprintf(msg, sizeof(msg), "message length %u exceed maximum message size of %u", c->len, TTRPC_MAX_MESSAGE);
		c->discard = c->len;
		c->hdr_got = 0;
		/* ttrpc-rust answers once the body has been skipped; the status is the same. */
		return conn_respond(c, c->stream, CODE_INVALID_ARGUMENT, msg, NULL, 0);
	}
	c->payload = malloc(c->len ? c->len : 1);
	if (!c->payload)
		return -1;
	if (c->len == 0)
		frame_done(c);
	return 0;
}

/* Copies up to `want` bytes of the input into dst, advancing the input; returns how many. */
static size_t take(uint8_t *dst, size_t want, const uint8_t **p, size_t *n)
{
	size_t k = want < *n ? want : *n;
	memcpy(dst, *p, k);
	*p += k;
	*n -= k;
	return k;
}

int conn_feed(struct conn *c, const uint8_t *p, size_t n)
{
	unsigned gen = c->gen;
	while (n && c->gen == gen && !g_stop_signal && !g_destroyed) {
		if (c->discard) {
			size_t k = n < c->discard ? n : (size_t)c->discard;
			c->discard -= k;
			p += k;
			n -= k;
			continue;
		}
		if (c->hdr_got < TTRPC_HEADER_LEN) {
			c->hdr_got += take(c->hdr + c->hdr_got, TTRPC_HEADER_LEN - c->hdr_got, &p, &n);
			if (c->hdr_got == TTRPC_HEADER_LEN && header_done(c) < 0)
				return -1;
			continue;
		}
		c->got += take(c->payload + c->got, c->len - c->got, &p, &n);
		if (c->got == c->len)
			frame_done(c);
	}
	return 0;
}
