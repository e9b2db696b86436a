# syntax=docker/dockerfile:1
#
# One image for every agentenv process: `agentenv operator`, `agentenv sidecar` (in each session Pod)
# and `agentenv emulator`. The entrypoint is the compiled CLI; the Pod's args pick the subcommand.
#
#   docker build -t ghcr.io/agentenv-io/agentenv:dev --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#
# Runtime: distroless Node 24 (no shell, no package manager), numeric non-root user 65532, nothing
# written outside the working directory's read-only copy, so it runs with readOnlyRootFilesystem.
# test/unit/dockerfile.test.ts keeps this file correct by construction (every COPY source exists,
# the entrypoint is what `npm run build` produces, and the runtime layout runs with production
# dependencies only); it is linted with BuildKit's build checks (scripts/tools.ts dockerfile-check).

ARG BUILD_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

# Compile TypeScript to dist/ and bundle the sidecar into dist/sidecar.cjs (esbuild). Install scripts
# are skipped: the `node` dev package's (a Node binary for machines without Node) is redundant on
# this base image, and esbuild's only verifies the platform binary it gets as an optional dependency.
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies only, installed from the same lockfile (no dev tooling in the image).
# Type declarations and source maps are never loaded at run time and are ~40 MB of the ~86 MB.
FROM ${BUILD_IMAGE} AS production-dependencies
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="agentenv" \
      org.opencontainers.image.description="Kubernetes operator for Anthropic Managed Agents environments (operator, session sidecar, API emulator)" \
      org.opencontainers.image.source="https://github.com/agentenv-io/agentenv" \
      org.opencontainers.image.url="https://github.com/agentenv-io/agentenv" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="agentenv" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV NODE_ENV=production
WORKDIR /app
# package.json carries "type": "module", which makes Node load dist/**/*.js as ES modules.
COPY package.json ./
COPY --from=production-dependencies /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# 65532 is distroless's "nonroot"; numeric so that runAsNonRoot can be verified by the kubelet.
USER 65532:65532
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/cli/main.js"]
CMD ["--help"]
