#!/usr/bin/env bash
# Tollgate HTTP benchmark.
#
# Builds the release binary and a bare axum server (bench/baseline), starts both on free
# 127.0.0.1 ports (Tollgate with a fresh SQLite database in a temporary directory), creates a user
# and an admin with the CLI, signs both in, then measures with wrk (all in one run):
#
#   GET  /healthz            of the bare axum server (no layers): the floor
#   GET  /healthz            of Tollgate: no auth, no database, every layer
#                            (the two alternate, twice each, so both see the same machine)
#   GET  /api/test/user      x-access-token of the user
#   GET  /api/authz/forward-auth   a proxy's check of GET /api/test/user for the user
#                            (the two alternate, twice each)
#   GET  /api/test/admin     x-access-token of the admin
#   GET  /health             the trivial route of the guide's Express API (docs/examples/express,
#                            the tutorial's own stack), directly and through Tollgate in gate
#                            mode (bench/rules.toml: signed in), alternating twice each
#   GET  /app/hello          the same with the bare axum server as the upstream: one that costs
#                            next to nothing, so the ratio is the gate's whole cost
#   POST /api/auth/signin    argon2id password check + token signing
#   GET  /api/test/user      again, while a second wrk floods POST /api/auth/signin
#   POST /api/auth/refreshtoken   mints BENCH_TOKENS distinct access tokens (refresh rotation)
#   GET  /api/test/user      with each of those tokens once (each one verified, then cached)
#
# and checks four targets:
#
#   req/s(Tollgate /healthz) / req/s(bare /healthz) >= 0.8 (the layers' per-request floor)
#   req/s(/api/test/user) / req/s(/healthz)   >= 0.8   (token checks are cheap)
#   req/s(forward-auth) / req/s(/api/test/user) >= 0.9 (a proxy's check costs no more than a route)
#   req/s(gate) / req/s(upstream direct)      >= 0.7   (an upstream's trivial route through the
#                                                       gate), for each of the two upstreams
#   p99 of /api/test/user under signin flood  <  5 ms  (hashing does not starve other requests)
#   peak RSS through all of it                <= 100 MiB (sign-in flood and BENCH_TOKENS tokens)
#
# The two gate ratios answer different questions. The Express API (Node serves it on one core)
# is a real app's trivial route: whether the gate keeps such an app's throughput, and it cannot
# show the gate getting slower while the gate has CPU to spare. The bare axum upstream shows the
# gate's whole cost, but through the gate every request is a second HTTP exchange on the two
# cores that wrk and the upstream share, while that upstream's whole answer costs about one
# exchange: on two cores it stays far below 0.7 (see the README).
#
# It also prints the server's memory (VmRSS and VmHWM from /proc): idle after start, peak, and a
# few seconds after the last run; and the minor page faults per sign-in.
#
# Every wrk run must also be clean: no non-2xx responses and no socket errors, otherwise its
# figures are meaningless (a 401 from a bad token is fast) and the run is flagged INVALID.
#
# Usage: bench/run.sh        (from anywhere; the repository is found from this file)
#
# Environment:
#   BENCH_SECONDS       duration of each wrk run, in seconds (default 10)
#   BENCH_THREADS       wrk threads (default 2)
#   BENCH_CONNECTIONS   wrk connections (default 32)
#   BENCH_TOKENS        distinct access tokens minted and presented (default 100000)
#   BENCH_SKIP_BUILD=1  use the existing binaries instead of running cargo build
#   BENCH_BIN           the tollgate binary to measure (default: the release build), e.g. an
#                       older build to compare with; the baseline is always the release build
#   BENCH_SERVER_ARGS   extra arguments for the server, e.g. "--hash-concurrency 1"
#   BENCH_RAW_DIR       if set, wrk's raw outputs and the server log are copied there
#
# Exit status: 0 all targets met, 1 a target missed, 2 a run was invalid or setup failed.

set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
target="${CARGO_TARGET_DIR:-$repo/target}"
bin="${BENCH_BIN:-$target/release/tollgate}"
baseline_bin="$target/release/tollgate-bench-baseline"

seconds=${BENCH_SECONDS:-10}
threads=${BENCH_THREADS:-2}
connections=${BENCH_CONNECTIONS:-32}
tokens_wanted=${BENCH_TOKENS:-100000}
# Generous, so a slow sign-in shows up as latency rather than as a wrk timeout.
wrk_timeout=10s

# Targets.
min_ratio=0.8
min_forward_ratio=0.9
min_gate_ratio=0.7
max_flood_p99_ms=5
max_peak_rss_mib=100
# Refresh chains that mint tokens: wrk threads x connections (each needs one sign-in).
mint_threads=2
mint_connections=8

die() {
    echo "error: $*" >&2
    exit 2
}

for value in "$seconds" "$threads" "$connections" "$tokens_wanted"; do
    [[ $value =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS, BENCH_THREADS, BENCH_CONNECTIONS and BENCH_TOKENS must be positive integers"
done

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------

command -v curl >/dev/null || die "curl is required"
if ! command -v wrk >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "wrk is missing: installing it with apt-get" >&2
        apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; } ||
            die "could not install wrk with apt-get"
    else
        die "wrk is not installed; install it first (e.g. 'sudo apt-get install -y wrk') and run again"
    fi
fi
command -v node >/dev/null || die "node is required for the Express upstream (e.g. 'sudo apt-get install -y nodejs npm')"
express_dir="$repo/docs/examples/express"
if [[ ! -d $express_dir/node_modules/express ]]; then
    echo "installing the Express example's packages: npm ci in $express_dir" >&2
    (cd "$express_dir" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null) || die "npm ci in $express_dir failed"
fi

# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    echo "building: cargo build --release -p tollgate -p tollgate-bench-baseline" >&2
    (cd "$repo" && cargo build --release -p tollgate -p tollgate-bench-baseline --quiet) ||
        die "cargo build failed"
fi
[[ -x $bin ]] || die "no binary at $bin (build it, or unset BENCH_SKIP_BUILD)"
[[ -x $baseline_bin ]] || die "no binary at $baseline_bin (build it, or unset BENCH_SKIP_BUILD)"

# ---------------------------------------------------------------------------------------------
# Scratch space and cleanup: the server and any background wrk are stopped on every exit.
# ---------------------------------------------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")
server_pid=
baseline_pid=
express_pid=
flood_pid=

stop() { # stop PID: SIGTERM, wait up to 5 s, then SIGKILL.
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    if [[ -n $flood_pid ]]; then stop "$flood_pid"; fi
    if [[ -n $server_pid ]]; then stop "$server_pid"; fi
    if [[ -n $baseline_pid ]]; then stop "$baseline_pid"; fi
    if [[ -n $express_pid ]]; then stop "$express_pid"; fi
    if [[ -n ${BENCH_RAW_DIR:-} ]]; then
        mkdir -p "$BENCH_RAW_DIR" && cp "$tmp"/*.txt "$tmp"/*.log "$tmp"/rules.toml "$BENCH_RAW_DIR"/ 2>/dev/null || true
    fi
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------------------------

db_url="sqlite://$tmp/bench.db"

# Every HTTP call goes straight to 127.0.0.1, never through a proxy from the environment.
http() { curl --silent --show-error --noproxy '*' --max-time 10 "$@"; }

port_is_free() { # Nothing answers a TCP connect on 127.0.0.1:PORT.
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_server PORT: starts the server; succeeds once /healthz answers, fails if it exits.
start_server() {
    local port=$1 i
    # The load comes from one client IP: per-IP rate limits would turn the sign-in runs into
    # 429s, so they are off here (the benchmark measures throughput, not the limiter).
    # shellcheck disable=SC2086 # BENCH_SERVER_ARGS is a list of words on purpose.
    "$bin" --database-url "$db_url" --bind "127.0.0.1:$port" --log info \
        --rate-limit-signin 0 --rate-limit-signup 0 --rate-limit-refresh 0 \
        --config "$tmp/rules.toml" --upstream "$baseline_base" ${BENCH_SERVER_ARGS:-} \
        >"$tmp/server.log" 2>&1 &
    server_pid=$!
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            wait "$server_pid" 2>/dev/null || true
            server_pid=
            return 1
        fi
        if [[ $(http -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" 2>/dev/null) == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    die "the server did not answer GET /healthz within 30 s; its log:"$'\n'"$(cat "$tmp/server.log")"
}

# start_beside NAME PATH PID_VAR BASE_VAR LAUNCHER: runs `LAUNCHER PORT` in the background
# (the launcher execs the server, so that the pid is the server's) on a free port, until GET
# PATH answers 200; sets PID_VAR (at once, so cleanup can stop it) and BASE_VAR. Its output goes
# to $tmp/NAME.log.
start_beside() {
    local name=$1 path=$2 pid_var=$3 base_var=$4 launcher=$5 attempt candidate pid i
    for ((attempt = 0; attempt < 20; attempt++)); do
        candidate=$((10000 + RANDOM % 20000))
        port_is_free "$candidate" || continue
        ("$launcher" "$candidate") >"$tmp/$name.log" 2>&1 &
        pid=$!
        printf -v "$pid_var" '%s' "$pid"
        for ((i = 0; i < 100; i++)); do
            [[ $(http -o /dev/null -w '%{http_code}' "http://127.0.0.1:$candidate$path" 2>/dev/null) == 200 ]] && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            printf -v "$base_var" '%s' "http://127.0.0.1:$candidate"
            echo "$name: pid $pid on http://127.0.0.1:$candidate" >&2
            return
        fi
        wait "$pid" 2>/dev/null || true
        printf -v "$pid_var" '%s' ""
    done
    die "could not start the $name server; its log:"$'\n'"$(cat "$tmp/$name.log")"
}

# The bare axum server.
launch_baseline() { exec "$baseline_bin" "127.0.0.1:$1"; }
start_beside baseline /healthz baseline_pid baseline_base launch_baseline

# The guide's Express API (it verifies tokens against this run's Tollgate on its protected
# route; its /health, measured here, does nothing).
launch_express() { cd "$express_dir" && PORT=$1 TOLLGATE_URL=http://127.0.0.1:1 exec node server.mjs; }
start_beside express /health express_pid express_base launch_express

# The benchmark's rules, and the Express API as the upstream of /health (the bare server is
# the upstream of everything else, through --upstream).
{
    cat "$bench_dir/rules.toml"
    printf '\n[[upstream]]\nprefix = "/health"\nurl = "%s"\n' "$express_base"
} >"$tmp/rules.toml"

# Pick a random port below the ephemeral range; retry if it turns out to be taken after all.
port=
for ((attempt = 0; attempt < 20; attempt++)); do
    candidate=$((10000 + RANDOM % 20000))
    port_is_free "$candidate" || continue
    if start_server "$candidate"; then
        port=$candidate
        break
    fi
    grep -q "cannot listen" "$tmp/server.log" ||
        die "the server failed to start; its log:"$'\n'"$(cat "$tmp/server.log")"
done
[[ -n $port ]] || die "could not find a free port on 127.0.0.1"
base="http://127.0.0.1:$port"
echo "server: pid $server_pid on $base, database $db_url" >&2

# proc_field PID FIELD: a line of /proc/PID/status (VmRSS, VmHWM) in MiB.
proc_field() {
    awk -v f="$2:" '$1 == f { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}
# minor_faults PID: the process's minor page faults so far (field 10 of /proc/PID/stat; the
# command name in field 2 holds no spaces here).
minor_faults() { awk '{ print $10 }' "/proc/$1/stat"; }
sleep 1
idle_rss=$(proc_field "$server_pid" VmRSS)


# ---------------------------------------------------------------------------------------------
# Users and tokens
# ---------------------------------------------------------------------------------------------

# Letters, digits and '-' only, so the password can go into JSON without escaping.
password="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

add_user() { # add_user NAME [--role ROLE...]: the CLI writes to the same SQLite file (WAL).
    local name=$1
    shift
    TOLLGATE_PASSWORD=$password "$bin" --database-url "$db_url" --log warn \
        user add "$name" --email "$name@example.com" "$@" >/dev/null ||
        die "tollgate user add $name failed"
}
add_user benchuser
add_user benchadmin --role admin --role user

signin() { # signin NAME: prints the access token.
    local body token
    body=$(http -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"$password\"}" "$base/api/auth/signin") ||
        die "POST /api/auth/signin for $1 failed"
    # A JWT holds no quotes or backslashes, so a plain match on the JSON is enough.
    token=$(sed -n 's/.*"accessToken":"\([^"]*\)".*/\1/p' <<<"$body")
    [[ -n $token ]] || die "signin of $1 returned no accessToken: $body"
    printf '%s' "$token"
}
user_token=$(signin benchuser)
admin_token=$(signin benchadmin)

# Preflight: each benchmarked request must give exactly 200 and the expected body, so that
# wrk (which only counts statuses >= 400 as errors) cannot be timing redirects or errors.
preflight() { # preflight EXPECTED_BODY_SUBSTRING CURL_ARGS...
    local want=$1 out code
    shift
    out=$(http -w '\n%{http_code}' "$@") || die "preflight request failed: $*"
    code=${out##*$'\n'}
    [[ $code == 200 && $out == *"$want"* ]] ||
        die "preflight: expected 200 with '$want' but got $code: ${out%$'\n'*}"
}
preflight ok "$base/healthz"
preflight ok "$baseline_base/healthz"
preflight "User Content." -H "x-access-token: $user_token" "$base/api/test/user"
preflight "Admin Content." -H "x-access-token: $admin_token" "$base/api/test/admin"
forward_auth=(-H "x-forwarded-method: GET" -H "x-forwarded-host: app.example.com"
    -H "x-forwarded-uri: /api/test/user" -H "x-access-token: $user_token")
preflight "" "${forward_auth[@]}" "$base/api/authz/forward-auth"
preflight ok -H "x-access-token: $user_token" "$baseline_base/app/hello"
preflight ok -H "x-access-token: $user_token" "$express_base/health"
preflight ok -H "x-access-token: $user_token" "$base/health"
preflight ok -H "x-access-token: $user_token" "$base/app/hello"
preflight accessToken -H 'Content-Type: application/json' \
    -d "{\"username\":\"benchuser\",\"password\":\"$password\"}" "$base/api/auth/signin"

export BENCH_SIGNIN_USER=benchuser BENCH_SIGNIN_PASSWORD=$password

# ---------------------------------------------------------------------------------------------
# wrk runs
# ---------------------------------------------------------------------------------------------

declare -A rps p50 p99 problems
order=()

# wrk_args DURATION_S EXTRA_ARGS...: sets the array `args` to the common wrk options plus extras.
wrk_args() {
    args=(--latency -t"$threads" -c"$connections" -d"$1s" --timeout "$wrk_timeout" "${@:2}")
}

# run_wrk NAME DURATION_S EXTRA_ARGS...: one run in the foreground, raw output to $tmp/NAME.txt.
# A failing wrk is not fatal here: `record` then flags the run as invalid.
run_wrk() {
    local name=$1
    shift
    wrk_args "$@"
    wrk "${args[@]}" >"$tmp/$name.txt" 2>&1 || true
}

# record NAME LABEL [NAME...]: parse the BENCH_RESULT line of finished runs into the tables.
# With several runs, requests and durations add up and the worst p50 and p99 are kept.
record() {
    local name=$1 label=$2 line lines="" requests=0 duration_us=0 p50_us=0 p99_us=0 non2xx=0
    local e_connect=0 e_read=0 e_write=0 e_timeout=0 r d a b n c rd w t
    order+=("$label")
    for name in "$name" "${@:3}"; do
        line=$(grep '^BENCH_RESULT ' "$tmp/$name.txt" || true)
        if [[ -z $line ]]; then
            rps[$label]=0 p50[$label]=- p99[$label]=-
            problems[$label]="no result from wrk: $(tr '\n' ' ' <"$tmp/$name.txt" | cut -c1-200)"
            return
        fi
        read -r r d a b n c rd w t < <(sed -E 's/^BENCH_RESULT //; s/[a-z0-9_]+=//g' <<<"$line")
        requests=$((requests + r)) duration_us=$((duration_us + d)) non2xx=$((non2xx + n))
        e_connect=$((e_connect + c)) e_read=$((e_read + rd)) e_write=$((e_write + w)) e_timeout=$((e_timeout + t))
        ((a > p50_us)) && p50_us=$a
        ((b > p99_us)) && p99_us=$b
    done
    rps[$label]=$(awk -v n="$requests" -v us="$duration_us" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
    p50[$label]=$(awk -v us="$p50_us" 'BEGIN { printf "%.3f", us / 1000 }')
    p99[$label]=$(awk -v us="$p99_us" 'BEGIN { printf "%.3f", us / 1000 }')
    local issues=()
    ((requests > 0)) || issues+=("no requests completed")
    ((non2xx == 0)) || issues+=("$non2xx non-2xx responses")
    ((e_connect + e_read + e_write + e_timeout == 0)) ||
        issues+=("socket errors: connect $e_connect, read $e_read, write $e_write, timeout $e_timeout")
    problems[$label]=$(IFS=';'; echo "${issues[*]:-}")
}

header=(-H "x-access-token: $user_token")
admin_header=(-H "x-access-token: $admin_token")
report=(-s "$bench_dir/report.lua")
signin_script=(-s "$bench_dir/signin.lua")

echo "running wrk: ${seconds}s per run, -t$threads -c$connections (about $((seconds * 19 + 5))s, then the tokens)" >&2

# Alternating, so that both servers see the same machine (others may be busy on it too).
for round in 1 2; do
    run_wrk "baseline$round" "$seconds" "${report[@]}" "$baseline_base/healthz"
    run_wrk "healthz$round" "$seconds" "${report[@]}" "$base/healthz"
done
record baseline1 "GET /healthz (bare axum, no layers)" baseline2
record healthz1 "GET /healthz" healthz2

for round in 1 2; do
    run_wrk user$round "$seconds" "${report[@]}" "${header[@]}" "$base/api/test/user"
    run_wrk forward_auth$round "$seconds" "${report[@]}" "${forward_auth[@]}" "$base/api/authz/forward-auth"
done
record user1 "GET /api/test/user" user2
record forward_auth1 "GET /api/authz/forward-auth" forward_auth2

run_wrk admin "$seconds" "${report[@]}" "${admin_header[@]}" "$base/api/test/admin"
record admin "GET /api/test/admin"

# Gate mode: an upstream's trivial route directly, and through Tollgate (rule: signed in),
# alternating as above; first the Express API, then the bare axum server.
for round in 1 2; do
    run_wrk express$round "$seconds" "${report[@]}" "${header[@]}" "$express_base/health"
    run_wrk express_gate$round "$seconds" "${report[@]}" "${header[@]}" "$base/health"
done
record express1 "GET /health (Express, direct)" express2
record express_gate1 "GET /health (Express, through the gate)" express_gate2
for round in 1 2; do
    run_wrk upstream$round "$seconds" "${report[@]}" "${header[@]}" "$baseline_base/app/hello"
    run_wrk gate$round "$seconds" "${report[@]}" "${header[@]}" "$base/app/hello"
done
record upstream1 "GET /app/hello (bare axum, direct)" upstream2
record gate1 "GET /app/hello (bare, through the gate)" gate2

faults_before=$(minor_faults "$server_pid")
run_wrk signin "$seconds" "${signin_script[@]}" "$base/api/auth/signin"
faults_after=$(minor_faults "$server_pid")
record signin "POST /api/auth/signin"
signins=$(awk '/^BENCH_RESULT / { for (i = 2; i <= NF; i++) if ($i ~ /^requests=/) { sub(/requests=/, "", $i); print $i } }' "$tmp/signin.txt")
faults_per_signin=$(awk -v f=$((faults_after - faults_before)) -v n="${signins:-0}" 'BEGIN { printf "%.0f", (n > 0 ? f / n : 0) }')

# The flood starts a second early and ends a second late, so that the whole measured window
# of /api/test/user sees a saturated hashing pool.
# (wrk is started directly, not through a function, so that $! is wrk itself and cleanup can stop it.)
wrk_args "$((seconds + 2))" "${signin_script[@]}" "$base/api/auth/signin"
wrk "${args[@]}" >"$tmp/flood.txt" 2>&1 &
flood_pid=$!
sleep 1
run_wrk user_flood "$seconds" "${report[@]}" "${header[@]}" "$base/api/test/user"
wait "$flood_pid" || true
flood_pid=
record user_flood "GET /api/test/user (signin flood)"
record flood "POST /api/auth/signin (the flood)"
after_flood_rss=$(proc_field "$server_pid" VmRSS)

# Distinct tokens: each chain starts from a sign-in's refresh token (the cookie's value), then
# rotates it; every rotation mints an access token. Then each token is presented once.
chains=$((mint_threads * mint_connections))
echo "minting $tokens_wanted access tokens over $chains refresh chains, then presenting each" >&2

# wrk_until_done NAME MARKER THREADS EXTRA_ARGS...: runs wrk until each of its THREADS threads
# has left MARKER.<thread>.done (or 10 minutes pass), then stops it with SIGINT, on which wrk
# prints its results as usual. (wrk itself would wait out its whole -d duration.)
wrk_until_done() {
    local name=$1 marker=$2 n=$3 i
    shift 3
    wrk --latency -t"$n" -d600s --timeout "$wrk_timeout" "$@" >"$tmp/$name.txt" 2>&1 &
    flood_pid=$!
    for ((i = 0; i < 6000; i++)); do
        (($(compgen -G "$marker.*.done" | wc -l) >= n)) && break
        kill -0 "$flood_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -INT "$flood_pid" 2>/dev/null || true
    wait "$flood_pid" || true
    flood_pid=
}

# One chain more than connections: see mint.lua.
: >"$tmp/refresh.lst"
for ((i = 0; i <= chains; i++)); do
    http -D - -o /dev/null -H 'Content-Type: application/json' \
        -d "{\"username\":\"benchuser\",\"password\":\"$password\"}" "$base/api/auth/signin" |
        sed -n 's/^[Ss]et-[Cc]ookie: tollgate_refresh=\([^;]*\);.*/\1/p' >>"$tmp/refresh.lst"
done
(($(grep -c . "$tmp/refresh.lst") == chains + 1)) || die "sign-ins for the refresh chains gave no refresh cookie"
mint_each=$(((tokens_wanted + mint_threads - 1) / mint_threads))
BENCH_REFRESH_FILE="$tmp/refresh.lst" BENCH_MINT_OUT="$tmp/minted" BENCH_MINT_EACH=$mint_each \
    BENCH_MINT_THREADS=$mint_threads wrk_until_done mint "$tmp/minted" "$mint_threads" \
    -c"$chains" -s "$bench_dir/mint.lua" "$base/api/auth/refreshtoken"
record mint "POST /api/auth/refreshtoken (minting)"
cat "$tmp"/minted.? 2>/dev/null | awk -v n="$tokens_wanted" 'NR <= n' >"$tmp/tokens.lst" || true
minted=$(grep -c . "$tmp/tokens.lst" || true)
distinct=$(sort -u "$tmp/tokens.lst" | grep -c . || true)
BENCH_TOKENS_FILE="$tmp/tokens.lst" BENCH_MINT_THREADS=$threads wrk_until_done present \
    "$tmp/tokens.lst" "$threads" -c"$connections" -s "$bench_dir/present.lua" "$base/api/test/user"
record present "GET /api/test/user (each token once)"
peak_rss=$(proc_field "$server_pid" VmHWM)
tokens_rss=$(proc_field "$server_pid" VmRSS)
sleep 5
settled_rss=$(proc_field "$server_pid" VmRSS)

kill -0 "$server_pid" 2>/dev/null || die "the server died during the benchmark; its log:"$'\n'"$(tail -n 50 "$tmp/server.log")"

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

echo
echo "Tollgate benchmark — $(git --no-optional-locks -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    git --no-optional-locks -C "$repo" diff --quiet HEAD -- 2>/dev/null || echo ' (+ uncommitted changes)')"
echo "$(nproc) CPUs, wrk -t$threads -c$connections, ${seconds}s per run, server on $base, SQLite"
echo
row() { printf '%-36s %10s %10s %10s  %s\n' "$@"; }
row endpoint req/s "p50 ms" "p99 ms" errors
row "------------------------------------" ---------- ---------- ---------- ------
invalid=0
for label in "${order[@]}"; do
    if [[ -n ${problems[$label]} ]]; then
        invalid=1
        row "$label" "${rps[$label]}" "${p50[$label]}" "${p99[$label]}" "INVALID: ${problems[$label]}"
    else
        row "$label" "${rps[$label]}" "${p50[$label]}" "${p99[$label]}" none
    fi
done
echo

# verdict MET(0/1) LABEL...: PASS or FAIL, or INVALID when a run the check relies on had errors.
verdict() {
    local met=$1 label
    shift
    for label in "$@"; do
        [[ -z ${problems[$label]} ]] || { echo "INVALID (see errors above)"; return; }
    done
    if [[ $met == 1 ]]; then echo PASS; else echo FAIL; fi
}
floor=$(awk -v a="${rps[GET /healthz]}" -v b="${rps[GET /healthz (bare axum, no layers)]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
floor_ok=$(awk -v r="$floor" -v min="$min_ratio" 'BEGIN { print (r >= min) ? 1 : 0 }')
ratio=$(awk -v a="${rps[GET /api/test/user]}" -v b="${rps[GET /healthz]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
ratio_ok=$(awk -v r="$ratio" -v min="$min_ratio" 'BEGIN { print (r >= min) ? 1 : 0 }')
forward=$(awk -v a="${rps[GET /api/authz/forward-auth]}" -v b="${rps[GET /api/test/user]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
forward_ok=$(awk -v r="$forward" -v min="$min_forward_ratio" 'BEGIN { print (r >= min) ? 1 : 0 }')
gated=$(awk -v a="${rps[GET /health (Express, through the gate)]}" -v b="${rps[GET /health (Express, direct)]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
gated_ok=$(awk -v r="$gated" -v min="$min_gate_ratio" 'BEGIN { print (r >= min) ? 1 : 0 }')
gated_bare=$(awk -v a="${rps[GET /app/hello (bare, through the gate)]}" -v b="${rps[GET /app/hello (bare axum, direct)]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
gated_bare_ok=$(awk -v r="$gated_bare" -v min="$min_gate_ratio" 'BEGIN { print (r >= min) ? 1 : 0 }')
tokens_ok=$(((minted == tokens_wanted && distinct == tokens_wanted) ? 1 : 0))
peak_ok=$(awk -v p="$peak_rss" -v max="$max_peak_rss_mib" -v t="$tokens_ok" 'BEGIN { print (t && p + 0 <= max) ? 1 : 0 }')
flood_p99=${p99[GET /api/test/user (signin flood)]}
flood_ok=$(awk -v p="$flood_p99" -v max="$max_flood_p99_ms" 'BEGIN { print (p != "-" && p + 0 < max) ? 1 : 0 }')

printf '%-58s %10s  %s\n' "req/s(/healthz) / req/s(bare axum /healthz) (target >= $min_ratio)" \
    "$floor" "$(verdict "$floor_ok" "GET /healthz" "GET /healthz (bare axum, no layers)")"
printf '%-58s %10s  %s\n' "req/s(/api/test/user) / req/s(/healthz)   (target >= $min_ratio)" \
    "$ratio" "$(verdict "$ratio_ok" "GET /api/test/user" "GET /healthz")"
printf '%-58s %10s  %s\n' "p99 /api/test/user under signin flood (target < $max_flood_p99_ms ms)" \
    "$flood_p99 ms" "$(verdict "$flood_ok" "GET /api/test/user (signin flood)" "POST /api/auth/signin (the flood)")"
printf '%-58s %10s  %s\n' "req/s(forward-auth) / req/s(/api/test/user) (target >= $min_forward_ratio)" \
    "$forward" "$(verdict "$forward_ok" "GET /api/authz/forward-auth" "GET /api/test/user")"
printf '%-58s %10s  %s\n' "req/s(Express via the gate) / req/s(direct) (target >= $min_gate_ratio)" \
    "$gated" "$(verdict "$gated_ok" "GET /health (Express, through the gate)" "GET /health (Express, direct)")"
printf '%-58s %10s  %s\n' "req/s(bare axum via the gate) / req/s(direct) (target >= $min_gate_ratio)" \
    "$gated_bare" "$(verdict "$gated_bare_ok" "GET /app/hello (bare, through the gate)" "GET /app/hello (bare axum, direct)")"

printf '%-58s %10s  %s\n' "peak RSS, sign-in flood + $tokens_wanted tokens (target <= $max_peak_rss_mib MiB)" \
    "$peak_rss MiB" "$(verdict "$peak_ok" "POST /api/auth/signin (the flood)" "GET /api/test/user (each token once)")"

echo
echo "memory (RSS of the server, MiB):"
printf '  %-54s %6s\n' "idle, after start" "$idle_rss" \
    "after the sign-in runs and the flood" "$after_flood_rss" \
    "after presenting $distinct distinct tokens (of $minted minted)" "$tokens_rss" \
    "5 s later" "$settled_rss" \
    "peak (VmHWM)" "$peak_rss"
echo "sign-in: ${rps[POST /api/auth/signin]}/s alone, ${rps[POST /api/auth/signin (the flood)]}/s in the flood; $faults_per_signin minor page faults per sign-in"

# Anything the server logged above INFO during the run is worth a look.
warnings=$(grep -cE '\b(WARN|ERROR)\b' "$tmp/server.log" || true)
echo
echo "server: ${warnings} WARN/ERROR log lines"
if ((warnings > 0)); then
    grep -E '\b(WARN|ERROR)\b' "$tmp/server.log" | sort | uniq -c | sort -rn | head -n 5
fi

if ((invalid)); then
    echo
    echo "INVALID: at least one wrk run had errors, so its figures do not measure the intended path."
    exit 2
fi
((floor_ok && ratio_ok && flood_ok && peak_ok && forward_ok && gated_ok && gated_bare_ok)) || exit 1
