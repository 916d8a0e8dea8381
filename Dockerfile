# syntax=docker/dockerfile:1
# Multi-stage build: a static binary on a distroless base, running as non-root,
# with its state on a volume.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/crmsync . && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/crmsync /usr/local/bin/crmsync
COPY --from=build /src/config.example.yaml /etc/crmsync/config.yaml
COPY --from=build /src/examples/mappings /etc/crmsync/examples/mappings
# State (bbolt file) lives on a volume owned by the nonroot user (uid 65532).
COPY --from=build --chown=65532:65532 /out/state /var/lib/crmsync
VOLUME ["/var/lib/crmsync"]
ENV CRMSYNC_STATE=/var/lib/crmsync/crmsync.db
USER 65532:65532
# The admin endpoint (health, metrics, status) has no authentication. It
# listens on all interfaces inside the container so that a port mapping can
# reach it: publish it on the host's loopback only (docker run -p
# 127.0.0.1:9090:9090) or on a network only monitoring reaches.
EXPOSE 9090
# The distroless image has no shell or curl: the binary asks itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/crmsync", "health", "--admin", "127.0.0.1:9090"]
ENTRYPOINT ["/usr/local/bin/crmsync"]
CMD ["run", "--config", "/etc/crmsync/config.yaml", "--admin", "0.0.0.0:9090"]
