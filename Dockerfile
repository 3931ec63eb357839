# syntax=docker/dockerfile:1
#
# Switchyard's container image: a static binary on an empty (scratch) base.
#
#   docker build -t switchyard \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) .
#
# Two stages: `build` compiles /out/switchyard and gathers what the image needs from the
# official Go image; `final` assembles the image from /out alone. CI replaces the `build`
# stage with a directory of the same layout built on the host (scripts/build-image.sh:
# `podman build --target final --build-context build=DIR`), so the final stage below is the
# one users get, unchanged. Keep the contract: /out/switchyard, /out/ca-certificates.crt and
# an empty /out/state/ directory.
#
# No HEALTHCHECK on purpose: probes belong to the orchestrator (Kubernetes liveness and
# readiness probes on the admin port's /healthz and /readyz), and Docker's HEALTHCHECK
# would need a shell or a client binary in the image.

# The builder is pinned by version: the toolchain that made a release is part of it.
FROM --platform=$BUILDPLATFORM docker.io/library/golang:1.26.8-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
ENV GOTOOLCHAIN=local
WORKDIR /src
# Dependencies first, so a source change reuses them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=
ARG CREATED=
# Empty REVISION or CREATED leave main.commit / main.date empty: `switchyard version` then
# says "unknown" (there is no .git in the build context to read them from).
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${REVISION} -X main.date=${CREATED}" \
      -o /out/switchyard ./cmd/switchyard
RUN cp /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt && \
    mkdir /out/state && chown 65532:65532 /out/state

FROM scratch AS final
ARG VERSION=dev
ARG REVISION=
ARG CREATED=
# The repository states no licence yet: NOASSERTION (SPDX for "not stated") until it does.
LABEL org.opencontainers.image.title="switchyard" \
      org.opencontainers.image.description="Switchyard: an HTTP reverse proxy and API gateway whose upstream pools follow etcd, Consul or ZooKeeper" \
      org.opencontainers.image.source="https://github.com/switchyard/switchyard" \
      org.opencontainers.image.licenses="NOASSERTION" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# Go reads this bundle for TLS to registries and https upstreams.
COPY --from=build /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY deploy/image/passwd deploy/image/group /etc/
# The embedded etcd keeps its data in $XDG_STATE_HOME/switchyard/etcd, so in
# /var/lib/switchyard, the one directory the non-root user owns. With a read-only root
# filesystem mount a volume there (an emptyDir in Kubernetes).
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/switchyard/
ENV XDG_STATE_HOME=/var/lib
COPY deploy/image/routes.yaml /etc/switchyard/routes.yaml
COPY --from=build /out/switchyard /switchyard
USER 65532:65532
# 8080: public listener; 9901: admin (loopback unless SWITCHYARD_ADMIN says otherwise, see
# /etc/switchyard/routes.yaml).
EXPOSE 8080 9901
ENTRYPOINT ["/switchyard"]
CMD ["-config", "/etc/switchyard/routes.yaml"]
