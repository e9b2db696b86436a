#!/usr/bin/env bash
# End-to-end on kind: create a kind cluster, build the image and load it, run the Environments API
# emulator in the cluster (the same image, `agentenv emulator`), install the Helm chart, apply a
# cloud and a self-hosted AgentEnvironment, wait for both to be Ready, enqueue a session through the
# emulator's admin API and follow it to Succeeded.
#
# NOT RUN IN THIS REPOSITORY'S CI: it needs a Docker engine and kind, which the machines this
# project is developed on do not have. It has never been run there; treat a first run as the test
# of this script. Everything it needs is in the repository (deploy/kind/, the chart, the Dockerfile).
#
# Requirements: docker, kind (>= 0.24), kubectl, curl, Node 24 + Go (helm comes from
# `node scripts/tools.ts helm`, unless HELM points at one).
#
# Environment:
#   KIND_CLUSTER     cluster name (default agentenv-e2e)
#   KIND_NODE_IMAGE  node image, Kubernetes >= 1.33 for native sidecars (default kindest/node:v1.33.1)
#   KEEP=1           keep the cluster afterwards (default: delete it, also on failure)
#   SKIP_BUILD=1     reuse an image ghcr.io/agentenv-io/agentenv:e2e already in the local Docker
set -euo pipefail

cd "$(dirname "$0")/.."
CLUSTER="${KIND_CLUSTER:-agentenv-e2e}"
NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.33.1}"
IMAGE="ghcr.io/agentenv-io/agentenv:e2e"
SYSTEM_NS="agentenv-system"
E2E_NS="agentenv-e2e"
# The emulator accepts this key; nothing real is ever used or needed.
FAKE_API_KEY="sk-ant-api03-e2e-emulator-only"
PORT_FORWARD_PID=""

step() { printf '\n::: %s\n' "$*"; }
fail() {
  printf 'e2e failed: %s\n' "$*" >&2
  diagnostics
  exit 1
}
diagnostics() {
  kubectl get pods,agentenvironments,agentsessions -A -o wide 2>/dev/null || true
  kubectl -n "$SYSTEM_NS" logs deployment/agentenv --tail=100 2>/dev/null || true
  kubectl -n "$E2E_NS" get events --sort-by=.lastTimestamp 2>/dev/null | tail -30 || true
}
cleanup() {
  if [ -n "$PORT_FORWARD_PID" ]; then kill "$PORT_FORWARD_PID" 2>/dev/null || true; fi
  if [ "${KEEP:-0}" != "1" ]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

for tool in docker kind kubectl curl node; do
  command -v "$tool" >/dev/null || fail "$tool is required"
done
HELM="${HELM:-$(node scripts/tools.ts helm | sed -E 's/^helm: (.*) \(.*\)$/\1/')}"
[ -x "$HELM" ] || fail "helm not found (node scripts/tools.ts helm)"

step "kind cluster $CLUSTER ($NODE_IMAGE)"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --config deploy/kind/cluster.yaml --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

if [ "${SKIP_BUILD:-0}" != "1" ]; then
  step "docker build $IMAGE"
  docker build -t "$IMAGE" --build-arg VERSION=e2e --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" .
fi
step "image size: $(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.1f MB", $1/1e6}')"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "API key Secret and the in-cluster emulator"
kubectl create namespace "$SYSTEM_NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$SYSTEM_NS" create secret generic agentenv-api-key --from-literal=api-key="$FAKE_API_KEY" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f deploy/kind/emulator.yaml
kubectl -n "$SYSTEM_NS" rollout status deployment/agentenv-emulator --timeout=120s || fail "emulator did not start"

step "helm install agentenv"
"$HELM" upgrade --install agentenv deploy/helm/agentenv --namespace "$SYSTEM_NS" \
  --values deploy/kind/values-e2e.yaml --wait --timeout 5m || fail "helm install"
kubectl -n "$SYSTEM_NS" rollout status deployment/agentenv --timeout=120s || fail "operator rollout"
holder=""
for _ in $(seq 60); do
  holder="$(kubectl -n "$SYSTEM_NS" get lease agentenv-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)"
  [ -n "$holder" ] && break
  sleep 2
done
[ -n "$holder" ] || fail "no replica took the leader Lease"
echo "leader: $holder"

if [ -d samples ]; then
  step "samples/ against the real CRDs (server-side dry run)"
  kubectl apply --dry-run=server -R -f samples/ || fail "samples rejected by the apiserver"
fi

step "AgentEnvironments (cloud and self-hosted) become Ready"
kubectl apply -f deploy/kind/environments.yaml
kubectl -n "$E2E_NS" wait --for=condition=Ready agentenvironment/e2e-cloud agentenvironment/e2e-self-hosted --timeout=180s ||
  fail "AgentEnvironments not Ready"
env_id="$(kubectl -n "$E2E_NS" get agentenvironment e2e-self-hosted -o jsonpath='{.status.environmentId}')"
[ -n "$env_id" ] || fail "self-hosted environment has no status.environmentId"

step "a session through the emulator's admin API"
kubectl -n "$SYSTEM_NS" port-forward service/agentenv-emulator 18080:18080 >/dev/null 2>&1 &
PORT_FORWARD_PID=$!
for _ in $(seq 30); do curl -fsS http://127.0.0.1:18080/emulator/v1/state >/dev/null 2>&1 && break; sleep 1; done
session="$(curl -fsS -X POST -H 'content-type: application/json' -d '{}' \
  "http://127.0.0.1:18080/emulator/v1/environments/$env_id/sessions")" || fail "could not enqueue a session"
echo "enqueued: $session"

step "the session runs in a Pod with its sidecar and succeeds"
selector="agentenv.io/environment=e2e-self-hosted"
for _ in $(seq 60); do
  [ -n "$(kubectl -n "$E2E_NS" get agentsessions -l "$selector" -o name 2>/dev/null)" ] && break
  sleep 2
done
kubectl -n "$E2E_NS" get agentsessions -l "$selector" -o name | grep -q . || fail "no AgentSession was recorded"
kubectl -n "$E2E_NS" wait --for=jsonpath='{.status.phase}'=Running agentsessions -l "$selector" --timeout=180s ||
  fail "the session never ran"
kubectl -n "$E2E_NS" wait --for=jsonpath='{.status.phase}'=Succeeded agentsessions -l "$selector" --timeout=180s ||
  fail "the session did not succeed"

step "deleting the environments applies their deletion policy"
kubectl -n "$E2E_NS" delete agentenvironment --all --timeout=120s || fail "AgentEnvironments were not deleted"

step "e2e passed"
kubectl get agentsessions -A 2>/dev/null || true
