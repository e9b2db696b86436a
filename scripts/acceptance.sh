#!/usr/bin/env bash
# The issues' "done when" scenarios, by hand, as a user would run them: a local cluster
# (npm run k8s:up), `agentenv emulator` and `agentenv operator` as separate processes, and kubectl.
#
#   scripts/acceptance.sh                # all scenarios; SESSIONS=20, SERVED=10 by default
#   SCENARIOS="1 5" scripts/acceptance.sh  # only these (1, the cluster, always runs: the rest need it)
#   KEEP=1 scripts/acceptance.sh         # leave the cluster, emulator and operator running afterwards
#
# 1. cluster:      kubectl get nodes shows the process kubelet's node Ready.
# 2. environments: kubectl apply -f crds/ and the cloud + self-hosted samples give Ready resources whose
#                  remote environments match their specs; a spec edit reaches the emulator; deletion
#                  applies the policy. (The invalid-spec table through kubectl is part of npm test.)
# 3. sessions:     a self-hosted environment (environment key in a Secret, maxSessions 20, a local/shell
#                  template) and 20 sessions enqueued through the emulator's admin API give 20
#                  AgentSessions and 20 Pods whose sidecars hold the leases (20 active items in the
#                  emulator); stopping them through the API ends every one and leaves no running Pod.
# 4. served:       a self-hosted environment with no template (the default runner, `agentenv runner`)
#                  and SERVED sessions (10) each scripted through the emulator's admin route with three
#                  bash calls: every call gets its result from the session's Pod, and once each session
#                  is terminated all end Succeeded with no running Pod and no active work item (issue 17).
# 5. warm pool:    a self-hosted environment with `warmPool.size: 2` shows two ready warm Pods before any
#                  session; two sessions (a bash call each) bind to them and their results come back; the
#                  pool refills to two new Pods; a ResourceQuota that allows exactly one more Pod in the
#                  namespace stops dispatch with `Dispatching=False` (printed) while the sessions enqueued
#                  since stay queued, none failed; raising the quota resumes dispatch and serves them
#                  (issue 13). The operator serves the warm Pods' assignment endpoint on the host's
#                  loopback (--assignment-url/-port/-tls-dir, with a throwaway certificate made here).
# Needs the tools npm ci installs (Node 24) and Go for the first control-plane build.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PWD/.k8s/bin:$PATH"
SESSIONS=${SESSIONS:-20}
SERVED=${SERVED:-10}
SCENARIOS=${SCENARIOS:-1 2 3 4 5}
ASSIGNMENT_PORT=${ASSIGNMENT_PORT:-18443}
PORT=${EMULATOR_PORT:-18181}
API="http://127.0.0.1:$PORT"
KEY=sk-ant-api03-acceptance
NS=acceptance
WORK=$(mktemp -d)
pids=()

say() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
cleanup() {
  local status=$?
  if [ "${KEEP:-}" = 1 ]; then echo "kept running: emulator $API, operator (log $WORK/operator.log), cluster (npm run k8s:down)"; exit $status; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  npm run -s k8s:down >/dev/null 2>&1 || true
  [ $status = 0 ] || { echo "--- operator log tail"; tail -n 30 "$WORK/operator.log" 2>/dev/null; }
  exit $status
}
trap cleanup EXIT

# Poll `cmd` until it prints `want` (or, with want='', until it succeeds), for up to `secs` seconds.
until_eq() {
  local secs=$1 want=$2; shift 2
  local deadline=$((SECONDS + secs)) got=''
  while [ $SECONDS -lt $deadline ]; do
    got=$("$@" 2>/dev/null || true)
    [ "$got" = "$want" ] && return 0
    sleep 0.5
  done
  fail "waited ${secs}s for [$*] to print '$want'; last: '$got'"
}
k() { kubectl --kubeconfig .k8s/kubeconfig "$@"; }
state() { curl -sf "$API/emulator/v1/state"; }
api() { curl -sf -H "x-api-key: $KEY" -H 'anthropic-version: 2023-06-01' -H 'anthropic-beta: managed-agents-2026-04-01' "$@"; }
jqn() { node -e "const s=JSON.parse(require('fs').readFileSync(0,'utf8'));console.log(($1))"; }
wanted() { [[ " $SCENARIOS " == *" $1 "* ]]; }
deleting=()

say "1. cluster"
started=$SECONDS
npm run -s k8s:up
echo "k8s:up returned after $((SECONDS - started))s"
until_eq 60 True k get node agentenv-local -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
k get nodes

say "emulator and operator"
node src/cli/main.ts emulator --port "$PORT" --api-key "$KEY" >"$WORK/emulator.log" 2>&1 &
pids+=($!)
until_eq 30 ok bash -c "curl -sf $API/emulator/v1/state >/dev/null && echo ok"
# --session-proxy-address pod-ip: the process kubelet has no per-Pod network namespace, so each
# session Pod's sidecar proxy listens on the Pod's own loopback IP instead of a shared 127.0.0.1:8096.
# --assignment-*: where warm Pods' sidecars ask for their assignment (the process kubelet's Pods
# reach the host's loopback), with a throwaway CA and serving certificate for 127.0.0.1.
node -e "import('./src/localcluster/serving-cert.ts').then((m) => m.writeServingCertificate('$WORK/assignment-tls'))"
ANTHROPIC_BASE_URL=$API ANTHROPIC_API_KEY=$KEY node src/cli/main.ts operator --kubeconfig .k8s/operator.kubeconfig \
  --session-proxy-address pod-ip --namespaces "$NS" --leader-election-namespace "$NS" --metrics-port 0 --health-port 0 --log-level debug \
  --assignment-url "https://127.0.0.1:$ASSIGNMENT_PORT" --assignment-port "$ASSIGNMENT_PORT" --assignment-tls-dir "$WORK/assignment-tls" >"$WORK/operator.log" 2>&1 &
pids+=($!)
k apply --server-side -f crds/ >/dev/null
k create namespace "$NS" >/dev/null

if wanted 2; then
say "2. environments"
k -n "$NS" apply -f deploy/samples/cloud.yaml -f deploy/samples/self-hosted.yaml >/dev/null
for name in data-analysis build-agents; do
  until_eq 30 True k -n "$NS" get aenv "$name" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
done
k -n "$NS" get aenv
cloud_id=$(k -n "$NS" get aenv data-analysis -o 'jsonpath={.status.environmentId}')
remote=$(api "$API/v1/environments/$cloud_id")
echo "$remote" | jqn "s.name + ' | ' + s.config.networking.type + ' ' + s.config.networking.allowed_hosts.join(',') + ' | pip ' + s.config.packages.pip.join(',')"
[ "$(echo "$remote" | jqn 's.name')" = "$(k -n "$NS" get aenv data-analysis -o 'jsonpath={.spec.name}')" ] || fail "remote name differs from the spec"
edited=$SECONDS
k -n "$NS" patch aenv data-analysis --type merge -p '{"spec":{"description":"edited by acceptance.sh"}}' >/dev/null
until_eq 15 'edited by acceptance.sh' bash -c "curl -sf -H 'x-api-key: $KEY' -H 'anthropic-version: 2023-06-01' -H 'anthropic-beta: managed-agents-2026-04-01' $API/v1/environments/$cloud_id | node -e \"console.log(JSON.parse(require('fs').readFileSync(0,'utf8')).description)\""
echo "spec edit reached the emulator within $((SECONDS - edited))s"

deleting+=(data-analysis build-agents)
fi

# The invalid-spec table through kubectl apply is an integration test (test/integration/invalid-specs.test.ts,
# "kubectl apply refuses every case too"), run by npm test.

if wanted 3; then
wanted 2 || fail "scenario 3 uses scenario 2's self-hosted environment: SCENARIOS=\"2 3\""
say "3. sessions"
sh_id=$(k -n "$NS" get aenv build-agents -o 'jsonpath={.status.environmentId}')
env_key=$(curl -sf -X POST "$API/emulator/v1/environments/$sh_id/keys" | jqn 's.key')
k -n "$NS" create secret generic build-agents-environment-key --from-literal=environment-key="$env_key" --dry-run=client -o yaml | k apply -f - >/dev/null
# The template below ignores the runner protocol (a shell loop): a stop reaches it as the enforced
# stop, the Pod deleted stopGracePeriodSeconds after the sidecar turned not ready, then SIGTERM.
k -n "$NS" patch aenv build-agents --type merge -p "{\"spec\":{\"selfHosted\":{\"maxSessions\":$SESSIONS,\"maxPollers\":4,\"leaseTTLSeconds\":20,\"stopGracePeriodSeconds\":5,\"sessionTemplate\":{\"spec\":{\"containers\":[{\"name\":\"session\",\"image\":\"local/shell\",\"command\":[\"/bin/sh\",\"-c\"],\"args\":[\"trap 'exit 0' TERM; while :; do sleep 1; done\"]}]}}}}}" >/dev/null
until_eq 90 True k -n "$NS" get aenv build-agents -o 'jsonpath={.status.conditions[?(@.type=="Dispatching")].status}'
enqueued=$SECONDS
for _ in $(seq "$SESSIONS"); do curl -sf -X POST "$API/emulator/v1/environments/$sh_id/sessions" -H 'content-type: application/json' -d '{}' >/dev/null; done
active() { state | jqn "s.work.filter((w) => w.environment_id === '$sh_id' && w.state === 'active').length"; }
until_eq 180 "$SESSIONS" active
echo "$SESSIONS items active (leases held by the sidecars) $((SECONDS - enqueued))s after enqueueing"
until_eq 60 "$SESSIONS" bash -c "kubectl --kubeconfig .k8s/kubeconfig -n $NS get asess -o name | wc -l | tr -d ' '"
until_eq 60 "$SESSIONS" bash -c "kubectl --kubeconfig .k8s/kubeconfig -n $NS get pods -l agentenv.io/environment=build-agents --field-selector=status.phase=Running -o name | wc -l | tr -d ' '"
k -n "$NS" get asess | sed -n 1,5p

stopping=$SECONDS
for w in $(state | jqn "s.work.filter((w) => w.environment_id === '$sh_id' && w.state === 'active').map((w) => w.id).join(' ')"); do
  api -X POST "$API/v1/environments/$sh_id/work/$w/stop" -H 'content-type: application/json' -d '{}' >/dev/null
done
until_eq 120 0 bash -c "kubectl --kubeconfig .k8s/kubeconfig -n $NS get pods -l agentenv.io/environment=build-agents --field-selector=status.phase=Running -o name | wc -l | tr -d ' '"
until_eq 60 "$SESSIONS" bash -c "kubectl --kubeconfig .k8s/kubeconfig -n $NS get asess -o jsonpath='{range .items[*]}{.status.phase}{\"\n\"}{end}' | grep -c Succeeded"
until_eq 30 0 active
echo "all $SESSIONS sessions stopped cleanly (Succeeded, no running Pod) $((SECONDS - stopping))s after the stop requests"
fi

if wanted 4; then
say "4. served"
# The default runner: no sessionTemplate. Each session's agent is scripted through the emulator's
# admin route with three bash calls at enqueue time; the runner reads them from the history.
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Secret
metadata: { name: served-environment-key }
stringData: { environment-key: placeholder }
---
apiVersion: agentenv.io/v1alpha1
kind: AgentEnvironment
metadata: { name: served }
spec:
  name: Served by the default runner
  selfHosted:
    environmentKeySecretRef: { name: served-environment-key, key: environment-key }
    maxSessions: $SERVED
    maxPollers: 4
    leaseTTLSeconds: 20
    stopGracePeriodSeconds: 5
YAML
until_eq 30 True k -n "$NS" get aenv served -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
served_id=$(k -n "$NS" get aenv served -o 'jsonpath={.status.environmentId}')
served_key=$(curl -sf -X POST "$API/emulator/v1/environments/$served_id/keys" | jqn 's.key')
k -n "$NS" create secret generic served-environment-key --from-literal=environment-key="$served_key" --dry-run=client -o yaml | k apply -f - >/dev/null
until_eq 90 True k -n "$NS" get aenv served -o 'jsonpath={.status.conditions[?(@.type=="Dispatching")].status}'
enqueued=$SECONDS
served_sessions=()
for i in $(seq "$SERVED"); do
  sid=$(curl -sf -X POST "$API/emulator/v1/environments/$served_id/sessions" -H 'content-type: application/json' -d '{}' | jqn 's.session_id')
  served_sessions+=("$sid")
  curl -sf -X POST "$API/emulator/v1/sessions/$sid/events" -H 'content-type: application/json' -d "{\"events\":[
    {\"type\":\"session.status_running\"},
    {\"type\":\"agent.tool_use\",\"name\":\"bash\",\"input\":{\"command\":\"echo served-$i\"}},
    {\"type\":\"agent.tool_use\",\"name\":\"bash\",\"input\":{\"command\":\"echo one > notes.txt && echo two >> notes.txt && wc -l < notes.txt\"}},
    {\"type\":\"agent.tool_use\",\"name\":\"bash\",\"input\":{\"command\":\"pwd\"}}]}" >/dev/null
done
# A session is answered when each of its three tool uses has a user.tool_result that is not an error.
answered() {
  local n=0 sid
  for sid in "${served_sessions[@]}"; do
    curl -sf "$API/emulator/v1/sessions/$sid/events" | jqn "(() => { const uses = s.data.filter((e) => e.type === 'agent.tool_use').map((e) => e.id); const ok = s.data.filter((e) => e.type === 'user.tool_result' && !e.is_error).map((e) => e.tool_use_id); return uses.length === 3 && uses.every((u) => ok.includes(u)) ? 1 : 0; })()" | grep -q 1 && n=$((n + 1))
  done
  echo "$n"
}
until_eq 180 "$SERVED" answered
echo "all $((SERVED * 3)) tool calls of $SERVED sessions answered from their Pods $((SECONDS - enqueued))s after enqueueing"
i=0
for sid in "${served_sessions[@]}"; do
  i=$((i + 1))
  results=$(curl -sf "$API/emulator/v1/sessions/$sid/events" | jqn "s.data.filter((e) => e.type === 'user.tool_result').map((e) => (e.content || []).map((b) => b.text || '').join('').trim()).join('|')")
  [ "$results" = "served-$i|2|/workspace" ] || fail "session $sid: results '$results', expected 'served-$i|2|/workspace'"
done
echo "every result is the command's output, run in the Pod's /workspace"
ending=$SECONDS
for sid in "${served_sessions[@]}"; do
  curl -sf -X POST "$API/emulator/v1/sessions/$sid/events" -H 'content-type: application/json' -d '{"events":[{"type":"session.status_terminated"}]}' >/dev/null
done
until_eq 120 "$SERVED" bash -c "kubectl --kubeconfig .k8s/kubeconfig -n $NS get asess -l agentenv.io/environment=served -o jsonpath='{range .items[*]}{.status.phase}{\"\n\"}{end}' | grep -c Succeeded"
until_eq 60 0 bash -c "kubectl --kubeconfig .k8s/kubeconfig -n $NS get pods -l agentenv.io/environment=served --field-selector=status.phase=Running -o name | wc -l | tr -d ' '"
until_eq 30 0 bash -c "curl -sf $API/emulator/v1/state | node -e \"const s=JSON.parse(require('fs').readFileSync(0,'utf8'));console.log(s.work.filter((w) => w.environment_id === '$served_id' && w.state !== 'stopped').length)\""
k -n "$NS" get asess -l agentenv.io/environment=served | sed -n 1,4p
echo "all $SERVED served sessions Succeeded, no running Pod, no work item left unstopped, $((SECONDS - ending))s after the sessions terminated"
deleting+=(served)
fi

if wanted 5; then
. scripts/acceptance-warm.sh
deleting+=(warm)
fi

[ ${#deleting[@]} -gt 0 ] || { say "acceptance scenarios $SCENARIOS passed"; exit 0; }
say "deletion policies"
ids=()
for name in "${deleting[@]}"; do ids+=("$(k -n "$NS" get aenv "$name" -o 'jsonpath={.status.environmentId}')"); done
k -n "$NS" delete aenv "${deleting[@]}" --wait=true --timeout=90s >/dev/null
for id in "${ids[@]}"; do
  archived=$(api "$API/v1/environments/$id" | jqn 's.archived_at ? "archived" : "live"')
  [ "$archived" = archived ] || fail "environment $id is $archived after deleting its resource (deletionPolicy Archive)"
done
echo "all ${#ids[@]} remote environments archived (deletionPolicy: Archive); finalizers released"
say "acceptance scenarios $SCENARIOS passed"
