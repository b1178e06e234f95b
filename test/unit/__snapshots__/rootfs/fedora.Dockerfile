# osbuilder rootfs builder: Fedora 40 (x86_64).
# It only carries the bootstrap tool; the rootfs is made by `run` with the
# output directory mounted at /rootfs.
FROM registry.fedoraproject.org/fedora:40
RUN dnf -y install --setopt=install_weak_deps=False kmod rpm tar \
 && dnf clean all
LABEL org.osbuilder.role="rootfs-builder" org.osbuilder.distro="fedora"
