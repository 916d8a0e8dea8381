# syntax=docker/dockerfile:1
# Multi-stage build: a static binary on a distroless base, running as non-root,
# with its state on a volume.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# VERSION names the build in --version, /status and crmsync_build_info
# (docker build --build-arg VERSION=v1.2.3 .).
ARG VERSION=""
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags="-s -w ${VERSION:+-X github.com/crmsync/crmsync/buildinfo.version=$VERSION}" \
      -o /out/crmsync . && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/crmsync /usr/local/bin/crmsync
COPY --from=build /src/config.example.yaml /etc/crmsync/config.yaml
COPY --from=build /src/examples/mappings /etc/crmsync/examples/mappings
# State (bbolt file) lives on a volume owned by the nonroot user (uid 65532).
COPY --from=build --chown=65532:65532 /out/state /var/lib/crmsync
VOLUME ["/var/lib/crmsync"]
ENV CRMSYNC_STATE=/var/lib/crmsync/crmsync.db
USER 65532:65532
# The admin endpoint (health, metrics, status) has no authentication, so by
# default it listens on the container's loopback only, where the
# HEALTHCHECK reaches it and nothing outside does. To scrape it from outside,
# say so and publish it on the host's loopback or a monitoring-only network:
#   docker run -p 127.0.0.1:9090:9090 IMAGE run --config /etc/crmsync/config.yaml --admin 0.0.0.0:9090
EXPOSE 9090
# The distroless image has no shell or curl: the binary asks itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/crmsync", "health", "--admin", "127.0.0.1:9090"]
ENTRYPOINT ["/usr/local/bin/crmsync"]
CMD ["run", "--config", "/etc/crmsync/config.yaml", "--admin", "127.0.0.1:9090"]
