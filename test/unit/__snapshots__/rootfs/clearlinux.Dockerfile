# osbuilder rootfs builder: Clear Linux OS latest (x86_64).
# The base image already has swupd; the rootfs is made by `run` with the
# output directory mounted at /rootfs.
FROM docker.io/library/clearlinux:latest
ARG MIRROR=
# With --mirror, the builder's own swupd uses it too.
RUN if [ -n "$MIRROR" ]; then swupd mirror --set "$MIRROR/update"; fi
LABEL org.osbuilder.role="rootfs-builder" org.osbuilder.distro="clearlinux"
