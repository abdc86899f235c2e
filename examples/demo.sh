#!/usr/bin/env bash
# Start a working tunnel on loopback from the shipped example configs:
#   local service 127.0.0.1:8000 (python http.server)  <-  frpc  ->  frps 127.0.0.1:7000  ->  public 127.0.0.1:6000
# then fetch a page through the tunnel and leave everything running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q .
RUN="$(mktemp -d)"
echo "hello through frptx" > "$RUN/index.html"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
(cd "$RUN" && exec python3 -m http.server 8000 --bind 127.0.0.1) >"$RUN/http.log" 2>&1 & pids+=($!)
# frp's own command line (the same services as `twistd -n frps --config examples/frps.yaml`)
"$VENV/bin/frps" -c examples/frps.toml >"$RUN/frps.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do grep -q "frps listening" "$RUN/frps.log" 2>/dev/null && break; sleep 0.2; done
"$VENV/bin/frpc" -c examples/frpc.toml >"$RUN/frpc.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do grep -q "proxy \[web\] started" "$RUN/frpc.log" 2>/dev/null && break; sleep 0.2; done
echo "--- GET http://127.0.0.1:6000/ through the tunnel:"
python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:6000/', timeout=5).read().decode(), end='')"
echo "--- logs: $RUN/{frps,frpc}.log ; tunnel is up, Ctrl-C to stop"
[ "${DEMO_EXIT:-0}" = 1 ] && exit 0
wait
