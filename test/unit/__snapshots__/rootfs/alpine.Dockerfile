# osbuilder rootfs builder: Alpine Linux 3.20 (x86_64).
# It only carries the bootstrap tool; the rootfs is made by `run` with the
# output directory mounted at /rootfs.
FROM docker.io/library/alpine:3.20
ARG MIRROR=
ARG BRANCH=v3.20
# With --mirror, the builder's apk uses it too.
RUN if [ -n "$MIRROR" ]; then \
        printf '%s/%s/main\n%s/%s/community\n' "$MIRROR" "$BRANCH" "$MIRROR" "$BRANCH" > /etc/apk/repositories; \
    fi
RUN apk add --no-cache apk-tools ca-certificates kmod tar
LABEL org.osbuilder.role="rootfs-builder" org.osbuilder.distro="alpine"
