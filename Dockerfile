# The vnet-ipam image: the five binaries in /usr/local/bin (vnet-ipam-controller, vnet-ipam-agent,
# the CNI plugins vnet-ipam and vnet-transparent, azure-vnet-mock), the reference CNI plugins
# loopback and portmap in /usr/local/lib/cni (built from source at the release pinned in
# scripts/cni-plugins/go.mod, in a Go stage of their own), their shared libraries and the CA bundle.
# No shell.
#
#   docker build -t ghcr.io/vnet-ipam/vnet-ipam:0.1.0 .      (or podman build)
#
# Both this file and scripts/build-image.sh (the path without a container engine or a registry)
# make the image's files with scripts/image-rootfs.sh, so the two cannot drift apart: a binary,
# library or /etc file added there is in both images.
# The reference CNI plugins, built by the script build-image.sh and the tests use (module checksums
# pinned in go.sum); GOTOOLCHAIN=auto fetches a newer Go from the module proxy if go.mod asks.
FROM golang:1.24-bookworm AS cni-plugins
WORKDIR /src
COPY scripts/go-build-cache.sh scripts/build-cni-plugins.sh scripts/
COPY scripts/cni-plugins/ scripts/cni-plugins/
RUN VNETIPAM_CACHE=/cache scripts/build-cni-plugins.sh >/dev/null \
 && cp -a /cache/cni-plugins/v* /cni-plugins

FROM debian:12 AS build
WORKDIR /src
# The packages first, alone: this layer stays cached while the sources change.
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh
COPY . .
COPY --from=cni-plugins /cni-plugins /cni-plugins
ARG SOURCE_DATE_EPOCH=0
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DVNETIPAM_BUILD_TESTS=OFF -DVNETIPAM_BUILD_BENCHMARKS=OFF \
 && cmake --build /build --target vnet-ipam-controller vnet-ipam-agent vnet-ipam \
        vnet-transparent azure-vnet-mock \
 && SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} scripts/image-rootfs.sh /build /rootfs /cni-plugins

FROM scratch
COPY --from=build /rootfs /
WORKDIR /
# No USER and no ENTRYPOINT: the chart gives each container its command (/usr/local/bin/...) and
# its user (the controller 65532, the agent 0 to write the node's root-owned directories).
