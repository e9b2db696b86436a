# Scenario 5 of scripts/acceptance.sh (sourced by it: its helpers k, state, jqn, until_eq, fail, say
# and NS, API are in scope): the warm pool's "done when" (issue 13).
say "5. warm pool"
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Secret
metadata: { name: warm-environment-key }
stringData: { environment-key: placeholder }
---
apiVersion: agentenv.io/v1alpha1
kind: AgentEnvironment
metadata: { name: warm }
spec:
  name: Warm pool of two
  selfHosted:
    environmentKeySecretRef: { name: warm-environment-key, key: environment-key }
    maxSessions: 8
    leaseTTLSeconds: 20
    stopGracePeriodSeconds: 5
    warmPool: { size: 2 }
YAML
until_eq 30 True k -n "$NS" get aenv warm -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
warm_id=$(k -n "$NS" get aenv warm -o 'jsonpath={.status.environmentId}')
warm_key=$(curl -sf -X POST "$API/emulator/v1/environments/$warm_id/keys" | jqn 's.key')
k -n "$NS" create secret generic warm-environment-key --from-literal=environment-key="$warm_key" --dry-run=client -o yaml | k apply -f - >/dev/null
until_eq 90 True k -n "$NS" get aenv warm -o 'jsonpath={.status.conditions[?(@.type=="Dispatching")].status}'

# Unbound warm Pods that are Ready (the pool), by name.
POOL='agentenv.io/component=warm-pool,agentenv.io/warm-pool=warm'
ready_pool() { k -n "$NS" get pods -l "$POOL" -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.metadata.deletionTimestamp}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | awk '$NF == "True" && NF == 2 { print $1 }' | sort; }
pool_size() { ready_pool | wc -l | tr -d ' '; }
started=$SECONDS
until_eq 120 2 pool_size
first_pool=$(ready_pool | tr '\n' ' ')
echo "two ready warm Pods before any session ($((SECONDS - started))s after dispatch started): $first_pool"
k -n "$NS" get pods -l agentenv.io/warm-pool=warm -L agentenv.io/component
[ -z "$(k -n "$NS" get asess -l agentenv.io/environment=warm -o name)" ] || fail "warm Pods counted as sessions"

# A session scripted with one bash call; prints its id.
warm_session() {
  local sid
  sid=$(curl -sf -X POST "$API/emulator/v1/environments/$warm_id/sessions" -H 'content-type: application/json' -d '{}' | jqn 's.session_id')
  curl -sf -X POST "$API/emulator/v1/sessions/$sid/events" -H 'content-type: application/json' \
    -d "{\"events\":[{\"type\":\"session.status_running\"},{\"type\":\"agent.tool_use\",\"name\":\"bash\",\"input\":{\"command\":\"echo $1 from \$(hostname)\"}}]}" >/dev/null
  echo "$sid"
}
# The text of a session's first tool result, empty until it has one.
result_of() { curl -sf "$API/emulator/v1/sessions/$1/events" | jqn "s.data.filter((e) => e.type === 'user.tool_result').map((e) => (e.content || []).map((b) => b.text || '').join('').trim())[0] || ''"; }
answered_all() { local n=0 sid; for sid in "$@"; do [ -n "$(result_of "$sid")" ] && n=$((n + 1)); done; echo "$n"; }
bound_pods() { k -n "$NS" get asess -l agentenv.io/environment=warm -o jsonpath='{range .items[*]}{.spec.warmPod.name}{"\n"}{end}' | sed '/^$/d' | sort | tr '\n' ' '; }

enqueued=$SECONDS
s1=$(warm_session warm-1); s2=$(warm_session warm-2)
until_eq 60 2 answered_all "$s1" "$s2"
echo "both bash results back $((SECONDS - enqueued))s after enqueueing: '$(result_of "$s1")', '$(result_of "$s2")'"
[ "$(bound_pods)" = "$first_pool" ] || fail "the sessions are bound to '$(bound_pods)', not to the warm Pods '$first_pool'"
k -n "$NS" get asess -l agentenv.io/environment=warm -o custom-columns='NAME:.metadata.name,PHASE:.status.phase,WARM POD:.spec.warmPod.name'
until_eq 120 2 pool_size
for p in $(ready_pool); do [[ " $first_pool " != *" $p "* ]] || fail "warm Pod $p served and came back to the pool"; done
echo "the pool refilled to two new Pods: $(ready_pool | tr '\n' ' ')"

# Backpressure: a quota with room for exactly one more Pod. A session binds a warm Pod, the pool's
# refill takes the last Pod the quota allows, and dispatch stops before claiming more.
k -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ResourceQuota
metadata: { name: pods }
spec: { hard: { pods: "1000" } }
YAML
until_eq 30 ok bash -c "kubectl --kubeconfig .k8s/kubeconfig -n $NS get resourcequota pods -o jsonpath='{.status.used.pods}' | grep -q . && echo ok"
used=$(k -n "$NS" get resourcequota pods -o jsonpath='{.status.used.pods}')
k -n "$NS" patch resourcequota pods --type merge -p "{\"spec\":{\"hard\":{\"pods\":\"$((used + 1))\"}}}" >/dev/null
echo "ResourceQuota pods: $used Pods in the namespace, hard $((used + 1))"
s3=$(warm_session warm-3)
until_eq 60 1 answered_all "$s3"
dispatching() { k -n "$NS" get aenv warm -o 'jsonpath={range .status.conditions[?(@.type=="Dispatching")]}{.status}{end}'; }
until_eq 90 False dispatching
k -n "$NS" get aenv warm -o 'jsonpath={range .status.conditions[?(@.type=="Dispatching")]}Dispatching={.status} reason={.reason}{"\n"}  {.message}{"\n"}{end}'
k -n "$NS" get resourcequota pods
held=$SECONDS
s4=$(warm_session warm-4); s5=$(warm_session warm-5)
queued() { state | jqn "s.work.filter((w) => w.environment_id === '$warm_id' && w.state === 'queued').length"; }
failed() { k -n "$NS" get asess -l agentenv.io/environment=warm -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c Failed || true; }
sleep 15
[ "$(queued)" = 2 ] || fail "expected the 2 sessions enqueued under the full quota to stay queued; $(queued) queued"
[ "$(failed)" = 0 ] || fail "$(failed) warm sessions failed under the full quota"
[ "$(dispatching)" = False ] || fail "dispatch resumed under the full quota"
echo "15s under the full quota: 2 sessions still queued, none failed, no AgentSession for them ($(k -n "$NS" get asess -l agentenv.io/environment=warm -o name | wc -l | tr -d ' ') records)"

resumed=$SECONDS
k -n "$NS" patch resourcequota pods --type merge -p "{\"spec\":{\"hard\":{\"pods\":\"$((used + 20))\"}}}" >/dev/null
until_eq 60 True dispatching
until_eq 90 2 answered_all "$s4" "$s5"
echo "quota raised: dispatch resumed and both queued sessions answered $((SECONDS - resumed))s later ('$(result_of "$s4")', '$(result_of "$s5")'), after $((resumed - held))s held"
until_eq 120 2 pool_size
k -n "$NS" get pods -l agentenv.io/warm-pool=warm -L agentenv.io/component
for sid in "$s1" "$s2" "$s3" "$s4" "$s5"; do
  curl -sf -X POST "$API/emulator/v1/sessions/$sid/events" -H 'content-type: application/json' -d '{"events":[{"type":"session.status_terminated"}]}' >/dev/null
done
until_eq 120 5 bash -c "kubectl --kubeconfig .k8s/kubeconfig -n $NS get asess -l agentenv.io/environment=warm -o jsonpath='{range .items[*]}{.status.phase}{\"\n\"}{end}' | grep -c Succeeded"
k -n "$NS" delete resourcequota pods >/dev/null
echo "all five warm-pool sessions Succeeded after they terminated"
