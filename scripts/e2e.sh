#!/bin/sh
# e2e.sh: the checks that need a real server process, kept out of `go test ./...`:
#   1. the browser test: headless Chromium loads the page, runs DDPM beside DDIM from one seed,
#      sees every DDIM step arrive, and saves docs/serve.png (e2e/browser.mjs); then, against a
#      small random unconditional model and a class-conditional one, the class picker and guidance
#      slider: hidden for the first, and for the second they reach the request (e2e/classes.mjs);
#      then the inpainting editor: strokes and a mask drawn with the mouse reach POST
#      /v1/samples/stream, and the completions keep the drawn pixels exactly (e2e/inpaint.mjs;
#      INPAINT_SHOT=path saves a screenshot); then a colour class-conditional 3x32x32 model, trained
#      here for 2 steps by `ddpm train --cond class` on a folder of colour PNGs in class folders
#      named "Food & Drink", "Smileys & Emotion" and 'Flags <i>&amp; "x"': class names shown as
#      text and picked by name, colour grids at a whole-number scale, the editor drawing in colour
#      and a colour inpainting keeping all three channels (e2e/colour.mjs; COLOUR_SHOT=path); then,
#      beside an ordinary model, a 4-step distilled student (a random model with a student's
#      metadata, loadtest -distilled 4): the picker names it "instant (4 steps)", picking it sets
#      both panels to DDIM over its grid and they finish as "ddim-4 eta=0 distilled" unwarned, 6
#      steps are warned, and the ordinary model gets its panel settings back (e2e/instant.mjs);
#   2. the load test: a request for every n up to max-n, then CLIENTS concurrent clients for
#      DURATION against a small random model (cmd/loadtest), which fails on any 5xx or dropped
#      connection, or if the server's RSS passes MAX_RSS_MIB (default 200; about 85 here);
#   3. a graceful stop: SIGTERM must end `ddpm serve` with exit status 0.
# Loopback only. Needs scripts/setup-browser.sh once (chromium + e2e/node_modules); set
# SKIP_BROWSER=1 or SKIP_LOAD=1 to run one part. MODEL=path serves that model in the browser test
# (default: the shipped MNIST model if the build has one, else the small random one). CLIENTS,
# DURATION and QUEUE shape the load test; SERVE_ARGS are extra `ddpm serve` flags for both servers
# (default --threads 1: on a busy 2-core machine oneDNN with 2 threads was ~8x slower for a small
# model, see docs/serve.md).
set -eu
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-32}
DURATION=${DURATION:-20s}
PORT=${PORT:-18090}
SHOT=${SHOT:-docs/serve.png}
work=$(mktemp -d)
server=""
cleanup() {
	if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

go build -o "$work/ddpm" ./cmd/ddpm
go build -o "$work/loadtest" ./cmd/loadtest
"$work/loadtest" -write-model "$work/tiny.safetensors"
"$work/loadtest" -write-model "$work/cond.safetensors" -classes zero,one,two
"$work/loadtest" -write-model "$work/fast.safetensors" -distilled 4

# try_server ARGS...: start ddpm serve on $PORT and wait until /healthz answers; status 1 if it
# exits first (e.g. no shipped model in this build).
try_server() {
	"$work/ddpm" serve --addr "127.0.0.1:$PORT" "$@" >"$work/serve.log" 2>&1 &
	server=$!
	i=0
	until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
		i=$((i + 1))
		if ! kill -0 "$server" 2>/dev/null; then
			wait "$server" || true
			server=""
			return 1
		fi
		if [ $i -gt 600 ]; then
			echo "e2e: server did not answer /healthz in 60 s" >&2
			exit 1
		fi
		sleep 0.1
	done
}

start_server() {
	if ! try_server "$@"; then
		echo "e2e: ddpm serve $* did not start:" >&2
		cat "$work/serve.log" >&2
		exit 1
	fi
}

# stop_server: SIGTERM, which must end the server cleanly (exit status 0).
stop_server() {
	kill -TERM "$server"
	status=0
	wait "$server" || status=$?
	server=""
	tail -n 2 "$work/serve.log"
	if [ "$status" -ne 0 ]; then
		echo "e2e: ddpm serve exited with status $status after SIGTERM" >&2
		exit 1
	fi
}

if [ "${SKIP_BROWSER:-0}" != 1 ]; then
	# shellcheck disable=SC2086
	if [ -n "${MODEL:-}" ]; then
		start_server --ckpt "$MODEL" --quiet ${SERVE_ARGS:---threads 1}
	elif ! try_server --quiet ${SERVE_ARGS:---threads 1}; then
		echo "e2e: no shipped model in this build ($(tail -n 1 "$work/serve.log")); the browser test uses a small random model"
		# shellcheck disable=SC2086
		start_server --ckpt "$work/tiny.safetensors" --quiet ${SERVE_ARGS:---threads 1}
	fi
	echo "== browser test ($(chromium --version 2>/dev/null | head -n 1))"
	t0=$(date +%s)
	node e2e/browser.mjs "http://127.0.0.1:$PORT" "$SHOT" "${DDIM_STEPS:-25}" "${DDPM_STEPS:-100}"
	echo "browser test: $(($(date +%s) - t0)) s"
	stop_server
	# shellcheck disable=SC2086
	start_server --ckpt "plain=$work/tiny.safetensors" --ckpt "cond=$work/cond.safetensors" --quiet ${SERVE_ARGS:---threads 1}
	echo "== browser test of the class controls"
	t0=$(date +%s)
	node e2e/classes.mjs "http://127.0.0.1:$PORT"
	echo "class controls test: $(($(date +%s) - t0)) s"
	echo "== browser test of the inpainting editor"
	t0=$(date +%s)
	node e2e/inpaint.mjs "http://127.0.0.1:$PORT" ${INPAINT_SHOT:-}
	echo "inpainting test: $(($(date +%s) - t0)) s"
	stop_server
	echo "== browser test of a colour class-conditional model"
	t0=$(date +%s)
	node e2e/colour.mjs --data "$work/colour-data"
	cat >"$work/rgb32.json" <<'EOF'
{"name": "tiny-rgb32", "image_size": 32, "in_channels": 3, "out_channels": 3, "base_channels": 8, "channel_mult": [1, 2],
 "res_blocks": 1, "attn_resolutions": [], "heads": 1, "time_embed_dim": 16, "sinusoidal_dim": 8, "groups": 4}
EOF
	"$work/ddpm" train --data "$work/colour-data" --model "$work/rgb32.json" --cond class --steps 2 --batch 4 --warmup 1 \
		--sample-n 0 --ckpt-every 0 --threads 1 --out "$work/colour-run" >"$work/train.log" 2>&1 || { cat "$work/train.log" >&2; exit 1; }
	# shellcheck disable=SC2086
	start_server --ckpt "emoji=$work/colour-run" --quiet ${SERVE_ARGS:---threads 1}
	node e2e/colour.mjs "http://127.0.0.1:$PORT" ${COLOUR_SHOT:-}
	echo "colour model test: $(($(date +%s) - t0)) s"
	stop_server
	# A server of its own: classes.mjs wants exactly plain and cond.
	# shellcheck disable=SC2086
	start_server --ckpt "plain=$work/tiny.safetensors" --ckpt "fast=$work/fast.safetensors" --quiet ${SERVE_ARGS:---threads 1}
	echo "== browser test of a distilled student"
	t0=$(date +%s)
	node e2e/instant.mjs "http://127.0.0.1:$PORT"
	echo "distilled student test: $(($(date +%s) - t0)) s"
	stop_server
fi

if [ "${SKIP_LOAD:-0}" != 1 ]; then
	# shellcheck disable=SC2086
	start_server --ckpt "$work/tiny.safetensors" --queue "${QUEUE:-16}" --quiet ${SERVE_ARGS:---threads 1}
	echo "== load test: $CLIENTS clients for $DURATION"
	"$work/loadtest" -url "http://127.0.0.1:$PORT" -clients "$CLIENTS" -duration "$DURATION" -pid "$server" -json "$work/load.json" -max-rss-mib "${MAX_RSS_MIB:-200}"
	stop_server
fi
echo "e2e: all passed"
