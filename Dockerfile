# syntax=docker/dockerfile:1
#
# mcpd: one static binary on distroless, running as the nonroot user.
#
#   docker build -t mcpd .
#   docker run -d --name mcpd -p 127.0.0.1:8080:8080 -v mcpd-data:/data \
#     --read-only --cap-drop ALL mcpd
#   docker logs mcpd      # the first start prints the admin password once
#
# Inside the container mcpd listens on 0.0.0.0:8080 (MCPD_LISTEN). The issuer
# (MCPD_ISSUER) is the URL the clients use, so it must name the PUBLISHED
# address, not the container's: the default derived from the listen address
# would be http://0.0.0.0:8080, which no client can reach. For
# `-p 127.0.0.1:8080:8080` that is http://127.0.0.1:8080 (set below); for
# another port or a host name, pass e.g. `-e MCPD_ISSUER=http://127.0.0.1:9000`
# together with `-p 127.0.0.1:9000:8080`. Tokens are bound to ISSUER/mcp.

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# Dependencies first, so that this layer stays cached until go.mod changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mcpd ./cmd/mcpd
# The data directory, owned by distroless's nonroot user (uid/gid 65532), so
# that a fresh named volume mounted on /data inherits a writable owner.
RUN mkdir -p /rootfs/data && chown 65532:65532 /rootfs/data && chmod 0700 /rootfs/data

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="mcpd" \
      org.opencontainers.image.description="MCP server with its own OAuth 2.1 authorization server" \
      org.opencontainers.image.source="https://github.com/mcpd/mcpd" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/mcpd /mcpd
# Copying the parent keeps the directory's own mode (0700), not just its contents.
COPY --from=build --chown=65532:65532 /rootfs/ /
USER 65532:65532
ENV MCPD_LISTEN=0.0.0.0:8080 \
    MCPD_ISSUER=http://127.0.0.1:8080 \
    MCPD_DATA=/data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/mcpd", "healthcheck"]
ENTRYPOINT ["/mcpd"]
CMD ["serve"]
