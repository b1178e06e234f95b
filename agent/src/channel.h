/* The agent channel (channel.c). */
#ifndef OSB_CHANNEL_H
#define OSB_CHANNEL_H

#include <limits.h>

enum chan_kind { CHAN_AUTO, CHAN_UNIX, CHAN_VSOCK, CHAN_SERIAL };

struct channel {
	enum chan_kind kind;
	char path[PATH_MAX];
	unsigned port;
	int listen_fd;  /* unix, vsock */
	int serial_fd;  /* virtio-serial */
	char where[PATH_MAX + 16];
};

/* --listen auto|unix:PATH|vsock:PORT|serial:PATH */
int channel_parse(const char *v, struct channel *ch);
/* Resolves auto and opens the channel; NULL, or what could not be opened (errno set). */
const char *channel_open(struct channel *ch, int wait_s);
/* Host side: relays stdin/stdout to CID:PORT; the exit status. */
int relay_vsock(const char *spec);

#endif
