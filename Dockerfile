# syntax=docker/dockerfile:1
#
# Two images from one build:
# - the default target, ghcr.io/agentenv-io/agentenv: every agentenv process — `agentenv operator`,
#   `agentenv sidecar` (in each session Pod) and `agentenv emulator`. The entrypoint is the compiled
#   CLI; the Pod's args pick the subcommand.
# - `--target runner`, ghcr.io/agentenv-io/agentenv-runner: the default runner of session Pods
#   (`agentenv runner`: the official SDK's handleItem and agent toolset), on a Debian base with what
#   the agent's tools run (bash, tar, unzip, ripgrep, git, CA certificates).
#
#   docker build -t ghcr.io/agentenv-io/agentenv:dev --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#   docker build --target runner -t ghcr.io/agentenv-io/agentenv-runner:dev --build-arg VERSION=0.1.0 .
#
# One Dockerfile with two targets rather than two Dockerfiles: both images then carry the very same
# dist/ and production node_modules (the stages below are built once and shared), and one file
# keeps the test that reproduces the layout (test/unit/dockerfile.test.ts) and the lint in one place.
# The project image stays the last stage, so a plain `docker build` still builds it.
#
# Runtime: distroless Node 24 (no shell, no package manager), numeric non-root user 65532, nothing
# written outside the working directory's read-only copy, so it runs with readOnlyRootFilesystem.
# test/unit/dockerfile.test.ts keeps this file correct by construction (every COPY source exists,
# the entrypoint is what `npm run build` produces, and the runtime layout runs with production
# dependencies only); it is linted with BuildKit's build checks (scripts/tools.ts dockerfile-check).

ARG BUILD_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

# Compile TypeScript to dist/ and bundle the sidecar into dist/sidecar.cjs and its startup probe into
# dist/wait-started.cjs (esbuild). Install scripts are skipped: the `node` dev package's (a Node
# binary for machines without Node) is redundant on this base image, and esbuild's only verifies the
# platform binary it gets as an optional dependency.
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

# The default runner. Not distroless: the agent's bash tool needs a shell and the usual tools, and
# grep/glob use ripgrep when present. Same numeric non-root user as the project image (the session
# Pod's default UID); /workspace is writable by it (the default template mounts an emptyDir there).
# `agentenv` is on PATH (bin/agentenv.js, which loads dist/cli/main.js) because the default
# template's command is `agentenv runner`.
FROM ${BUILD_IMAGE} AS runner
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="agentenv-runner" \
      org.opencontainers.image.description="The default runner of agentenv session Pods: the official Anthropic SDK's per-item runner with its agent toolset" \
      org.opencontainers.image.source="https://github.com/agentenv-io/agentenv" \
      org.opencontainers.image.url="https://github.com/agentenv-io/agentenv" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="agentenv" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
RUN apt-get update \
 && apt-get install -y --no-install-recommends bash ca-certificates git ripgrep tar unzip \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /workspace \
 && chown 65532:65532 /workspace \
 && ln -s /app/bin/agentenv.js /usr/local/bin/agentenv
ENV NODE_ENV=production \
    HOME=/workspace
WORKDIR /app
COPY package.json ./
COPY bin/agentenv.js ./bin/agentenv.js
COPY --from=production-dependencies /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
WORKDIR /workspace
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/agentenv"]
CMD ["runner"]

FROM ${RUNTIME_IMAGE} AS agentenv
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
