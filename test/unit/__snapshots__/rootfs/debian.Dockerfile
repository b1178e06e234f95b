# osbuilder rootfs builder: Debian bookworm (x86_64).
# It only carries the bootstrap tool; the rootfs is made by `run` with the
# output directory mounted at /rootfs.
FROM osbuilder/debian-base:bookworm-x86_64
ARG MIRROR=
ARG SUITE=bookworm
ENV DEBIAN_FRONTEND=noninteractive
# With --mirror, apt in the builder uses it too (the base may list another).
RUN if [ -n "$MIRROR" ]; then \
        rm -f /etc/apt/sources.list.d/debian.sources && \
        printf 'deb %s %s main\n' "$MIRROR" "$SUITE" > /etc/apt/sources.list; \
    fi
# Install only what the base lacks (a base made by --bootstrap-base has it all).
RUN missing=""; \
    for p in ca-certificates kmod mmdebstrap; do \
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
        apt-get update && apt-get install -y --no-install-recommends $missing \
        && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi
LABEL org.osbuilder.role="rootfs-builder" org.osbuilder.distro="debian"
