# syntax=docker/dockerfile:1.7
ARG GO_VERSION=1.22
ARG REGISTRY
FROM --platform=$BUILDPLATFORM ${REGISTRY:+$REGISTRY/}golang:${GO_VERSION} AS deps
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    # download modules once
    go mod download

from deps as Build
ARG TARGETOS TARGETARCH
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /out/app ./cmd/app
RUN <<EOF
set -e
FROM not-a-stage
echo "built"
EOF

FROM gcr.io/distroless/static AS runtime
COPY --from=build /out/app /app
COPY <<-"CONF" /etc/app.conf
	listen = ":8080"
	CONF
USER nonroot
ENTRYPOINT ["/app"]
