# osbuilder rootfs builder: EulerOS 2.2 (x86_64).
# It only carries the bootstrap tool; the rootfs is made by `run` with the
# output directory mounted at /rootfs.
FROM docker.io/euleros:2.2
RUN yum -y install kmod rpm tar \
 && yum clean all
LABEL org.osbuilder.role="rootfs-builder" org.osbuilder.distro="euleros"
