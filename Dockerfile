# The worker image: a static binary on distroless, running as a non-root
# user. MAIN picks the main package, so the same file builds your own worker
# (your tasks on runner.Main) once it sits in your module:
#
#   docker build -t registry.example.com/warren-worker:dev .
#   docker build --build-arg MAIN=./cmd/myworker -t registry.example.com/myworker:v1 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ... --push .

# Compile on the build machine's platform, for the target's (buildx sets
# TARGETOS and TARGETARCH); CGO_ENABLED=0 makes it static.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG MAIN=./cmd/worker
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/worker "$MAIN"

# No shell, no package manager; CA certificates and tzdata included.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /worker
# Numeric, so that Kubernetes' runAsNonRoot can check it (nonroot = 65532).
USER 65532:65532
# -metrics-addr: /metrics, /healthz, /readyz.
EXPOSE 9090
ENTRYPOINT ["/worker"]
