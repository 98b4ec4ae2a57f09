# The upgradeguard image: a static binary on an empty base, run as a
# non-root UID. Nothing here builds it (no container engine on the project's
# machines); build it where one runs:
#   docker build -t <registry>/upgradeguard:<version> --build-arg VERSION=<version> .
#
# Base images are named without a registry host so that a mirror or a
# pull-through cache configured in the engine applies. Distroless has no
# such name (it is published only under a registry host), so the runtime stage is
# scratch plus the two files distroless/static would bring: the CA bundle
# (for AWS's HTTPS endpoints) and a passwd entry for the non-root user.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=${VERSION}" \
      -o /out/upgradeguard ./cmd/upgradeguard \
 && echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > /out/passwd \
 && echo 'nonroot:x:65532:' > /out/group

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/passwd /etc/passwd
COPY --from=build /out/group /etc/group
COPY --from=build /out/upgradeguard /upgradeguard
# Numeric, so that Kubernetes' runAsNonRoot can verify it (deploy/base runs
# the pod as 65532 too).
USER 65532:65532
EXPOSE 9741
ENTRYPOINT ["/upgradeguard"]
CMD ["exporter"]
