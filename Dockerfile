# syntax=docker/dockerfile:1
#
# One file, two images: `docker build --target memory .` and
# `docker build --target orchestrator .` (the default, last stage).
# The build context is the repository root because the binaries are built
# in the go.work workspace (gen/ and services/kit/ are local modules).

# Must not be older than the `go` line of go.work: the golang image sets
# GOTOOLCHAIN=local, so an older toolchain fails instead of downloading one.
ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
# Static binaries: no libc in the runtime image, so no cgo.
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
COPY go.work* ./
COPY gen/ gen/
COPY services/ services/
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w" -o /out/ \
        ./services/memory/cmd/memory \
        ./services/orchestrator/cmd/orchestrator

# distroless/static: CA certificates and tzdata, no shell, no package manager.
# The numeric USER lets Kubernetes' runAsNonRoot verify the user without a
# runAsUser override.
FROM gcr.io/distroless/static-debian12:nonroot AS memory
COPY --from=build /out/memory /memory
USER 65532:65532
EXPOSE 9091 8081
# The binary is its own gRPC health client: no curl or shell needed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/memory", "health"]
ENTRYPOINT ["/memory"]
CMD ["serve"]

FROM gcr.io/distroless/static-debian12:nonroot AS orchestrator
COPY --from=build /out/orchestrator /orchestrator
USER 65532:65532
EXPOSE 9090 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/orchestrator", "health"]
ENTRYPOINT ["/orchestrator"]
CMD ["serve"]
