#!/usr/bin/env bash
# `make run`: the engine on the sandbox, two demo advocates logged in, one
# demo call placed and its route shown; then the engine keeps serving so a
# softphone on this machine can call sip:18883737888@127.0.0.1:5060.
set -euo pipefail
cd "$(dirname "$0")/../.."
hotline=.venv/bin/hotline

$hotline run &
engine=$!
trap 'kill $engine 2>/dev/null; wait $engine 2>/dev/null' EXIT INT TERM

for _ in $(seq 100); do
    curl -sf http://127.0.0.1:8080/healthz >/dev/null && break
    kill -0 $engine 2>/dev/null || { echo "the engine exited; see its log above" >&2; exit 1; }
    sleep 0.1
done

for who in ana luis; do
    # A refusal (say, still on a call from an earlier run) is shown, not fatal.
    $hotline advocate login $who --token sandbox-token-$who >/dev/null || echo "$who could not log in"
done
echo "demo advocates ana and luis are logged in"
echo "placing a demo call: English (1), reporting a tip (2)"
$hotline call --from +15555550123 --dtmf 12 || true

cat <<MSG

The hotline is running:
  call it from a softphone:   sip:18883737888@127.0.0.1:5060
  metrics:                    http://127.0.0.1:8080/metrics
  API description:            http://127.0.0.1:8080/openapi.json
  another simulated call:     .venv/bin/hotline call --from +15555550199 --dtmf 21
Ctrl-C stops the engine; 'make down' stops the sandbox.
MSG
wait $engine
