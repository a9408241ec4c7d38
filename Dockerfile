# syntax=docker/dockerfile:1
# Atelier: every binary of the stack in one image; docker-compose.yml picks the
# service with `command`, deploy/k8s/ with `args` (both run through the
# entrypoint, deploy/docker/entrypoint.sh). See deploy/README.md.
#   docker build -t atelier:0.1.0 .

# ---- builder ----------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
# The build packages of scripts/lib/common.sh (BUILD_PACKAGES): FFmpeg for the
# video, protoc for the protobuf messages, cmake + nasm for libjpeg-turbo (SIMD).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libssl-dev build-essential pkg-config clang libclang-dev cmake nasm protobuf-compiler ffmpeg \
      libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavfilter-dev \
      libavdevice-dev libswresample-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Release binaries without debug line tables or symbols (the workspace profile
# keeps line tables for local profiling: 470 MB of binaries, 91 MB stripped),
# and with the S3 blob store (`s3://bucket/prefix`) compiled in.
ENV CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --features atelier-storage/s3 \
      -p atelier-storage -p atelier-gateway -p atelier-worker -p atelier-status -p atelier-cli \
 && mkdir -p /out \
 && for bin in atelier atelier-video atelier-gateway atelier-status atelier-analysis \
               atelier-generation atelier-upscaling atelier-postprocess; do \
      install -m 0755 "target/release/$bin" /out/; \
    done

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libavcodec59 libavformat59 libavutil57 libswscale6 libssl3 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 atelier \
 && useradd --system --uid 10001 --gid atelier --home-dir /var/lib/atelier --shell /usr/sbin/nologin atelier \
 && mkdir -p /var/lib/atelier/blobs /etc/atelier \
 && chown -R atelier:atelier /var/lib/atelier
COPY --from=builder /out/atelier /usr/local/bin/atelier
# The video encoder helper of `atelier process` / `atelier serve` (links FFmpeg).
COPY --from=builder /out/atelier-video /usr/local/bin/atelier-video
COPY --from=builder /out/atelier-gateway /usr/local/bin/atelier-gateway
COPY --from=builder /out/atelier-status /usr/local/bin/atelier-status
COPY --from=builder /out/atelier-analysis /usr/local/bin/atelier-analysis
COPY --from=builder /out/atelier-generation /usr/local/bin/atelier-generation
COPY --from=builder /out/atelier-upscaling /usr/local/bin/atelier-upscaling
COPY --from=builder /out/atelier-postprocess /usr/local/bin/atelier-postprocess
COPY config/ /etc/atelier/
COPY deploy/docker/entrypoint.sh /usr/local/bin/atelier-entrypoint
ENV ATELIER_CONFIG_DIR=/etc/atelier \
    ATELIER__BLOBS__URL=file:///var/lib/atelier/blobs \
    ATELIER__GATEWAY__BIND=0.0.0.0:8080 \
    ATELIER__STATUS__BIND=0.0.0.0:50051
# Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/atelier
EXPOSE 8080 50051
ENTRYPOINT ["/usr/local/bin/atelier-entrypoint"]
CMD ["atelier-gateway"]
