#!/usr/bin/env bash
# Runs a real Apache Kafka 4.x cluster (KRaft, combined broker+controller
# nodes) on loopback, without Docker and without a release tarball: the jars
# come from Maven Central through scripts/kafka/pom.xml. Meant for integration
# tests and CI. See scripts/kafka/README.md.
#
#   scripts/kafka.sh install                      resolve the jars (cached)
#   scripts/kafka.sh start [--brokers N] [--sasl-ssl] [--proxied SETS]
#   scripts/kafka.sh stop | status | env
#   scripts/kafka.sh kill N | restart N           SIGKILL / restart node N
#   scripts/kafka.sh pause N | resume N           SIGSTOP / SIGCONT node N (a hung broker)
#   scripts/kafka.sh create-topic NAME PARTITIONS RF
#   scripts/kafka.sh produce TOPIC [--sasl-ssl]   stdin lines: key<TAB>value
#   scripts/kafka.sh consume TOPIC [--max N] [--timeout-ms MS] [--sasl-ssl]
#
# Environment: KAFKA_CACHE (jars, default <repo>/.cache/kafka), KAFKA_STATE
# (cluster state, default <repo>/.cache/kafka-state), KAFKA_VERSION (override
# the pom's kafka.version), KAFKA_READY_TIMEOUT (seconds, default 90),
# KAFKA_HEAP_OPTS (default "-Xms256m -Xmx512m").
#
# --proxied SETS gives every node SETS more listeners, each advertising a port
# of its own where a test's fault proxy is to listen and pass connections on:
# KAFKA_TEST_PROXY_SETS lists them, listen>advertised per node, a set each
# (see internal/kafkatest). A client bootstrapped at a set's advertised ports
# reaches every broker through that set's proxies alone.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
CONF_DIR="$SCRIPT_DIR/kafka"
POM="$CONF_DIR/pom.xml"
CACHE_DIR="${KAFKA_CACHE:-$REPO_ROOT/.cache/kafka}"
STATE_DIR="${KAFKA_STATE:-$REPO_ROOT/.cache/kafka-state}"
LIB_DIR="$CACHE_DIR/lib"
STAMP="$CACHE_DIR/lib.stamp"
READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-90}"
STOP_TIMEOUT=20
read -r -a HEAP_OPTS <<<"${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
SASL_USER=ingest
SASL_PASSWORD=ingest-secret
TAB="$(printf '\t')"

# ---------------------------------------------------------------- helpers

PROG=kafka.sh
USAGE_FILE="${BASH_SOURCE[0]}"
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

now_ms() {
	local t="${EPOCHREALTIME/./}"
	echo $((t / 1000))
}

# elapsed START_MS -> "12.3s"
elapsed() {
	local d=$(($(now_ms) - $1))
	printf '%d.%ds' $((d / 1000)) $(((d % 1000) / 100))
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# Java for the short-lived CLI tools: small heap, fast startup, quiet logs.
tool() {
	java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
		-Dlog4j2.configurationFile="$CONF_DIR/log4j2-tools.properties" \
		-cp "$LIB_DIR/*" "$@"
}

# free_ports N: prints N distinct free loopback TCP ports, space separated.
free_ports() {
	if command -v python3 >/dev/null 2>&1; then
		python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
		return
	fi
	# Fallback: random ports below the usual ephemeral range that refuse a connect.
	local out=() p tries=0
	while ((${#out[@]} < $1)); do
		((tries++ < 1000)) || die "could not find free ports"
		p=$((20000 + RANDOM % 12000))
		[[ " ${out[*]} " == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then out+=("$p"); fi
	done
	echo "${out[*]}"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- install

pom_hash() {
	{
		sha256sum <"$POM"
		echo "kafka.version=${KAFKA_VERSION:-}"
	} | sha256sum | cut -d' ' -f1
}

lib_complete() {
	[[ -f "$STAMP" && -d "$LIB_DIR" ]] || return 1
	[[ "$(head -n1 "$STAMP")" == "$(pom_hash)" ]] || return 1
	# The rest of the stamp lists the jars that mvn copied.
	[[ "$(tail -n +2 "$STAMP")" == "$(ls -1 "$LIB_DIR")" ]] || return 1
}

cmd_install() {
	local t0
	t0="$(now_ms)"
	need java "install a JDK 17+, e.g. apt-get install -y openjdk-17-jre-headless"
	if lib_complete; then
		log "install: jars already in $LIB_DIR ($(elapsed "$t0"))"
		return 0
	fi
	need mvn "install Maven, e.g. apt-get install -y maven"
	log "install: resolving Kafka jars with Maven into $LIB_DIR ..."
	mkdir -p "$CACHE_DIR"
	local tmp="$LIB_DIR.tmp.$$"
	rm -rf "$tmp"
	local args=(-q -B -f "$POM" dependency:copy-dependencies
		"-DoutputDirectory=$tmp" -DincludeScope=runtime)
	if [[ -n "${KAFKA_VERSION:-}" ]]; then args+=("-Dkafka.version=$KAFKA_VERSION"); fi
	if ! mvn "${args[@]}" >"$CACHE_DIR/mvn.log" 2>&1; then
		cat "$CACHE_DIR/mvn.log" >&2
		rm -rf "$tmp"
		die "mvn could not resolve the Kafka jars (output above and in $CACHE_DIR/mvn.log; is Maven Central reachable?)"
	fi
	compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || die "mvn finished but no kafka_2.13 jar in $tmp"
	rm -rf "$LIB_DIR"
	mv "$tmp" "$LIB_DIR"
	{
		pom_hash
		ls -1 "$LIB_DIR"
	} >"$STAMP"
	local ver
	ver="$(cd "$LIB_DIR" && ls kafka_2.13-*.jar)"
	ver="${ver#kafka_2.13-}"
	local jars=("$LIB_DIR"/*.jar)
	log "install: ${#jars[@]} jars, Kafka ${ver%.jar}, in $(elapsed "$t0")"
}

ensure_installed() {
	if ! lib_complete; then cmd_install; fi
}

# ---------------------------------------------------------------- state

# cluster.conf in the state dir is sourced to learn the layout:
#   NODES=3 SASL_SSL=0 PLAINTEXT_PORTS=(..) CONTROLLER_PORTS=(..) SASL_PORTS=(..)
#   PROXIED=2 PROXY_LISTEN_PORTS=(..) PROXY_ADV_PORTS=(..)
load_cluster() {
	[[ -f "$STATE_DIR/cluster.conf" ]] || die "no cluster state in $STATE_DIR (run: scripts/kafka.sh start)"
	NODES=0 SASL_SSL=0 PLAINTEXT_PORTS=() CONTROLLER_PORTS=() SASL_PORTS=()
	PROXIED=0 PROXY_LISTEN_PORTS=() PROXY_ADV_PORTS=()
	# shellcheck source=/dev/null
	source "$STATE_DIR/cluster.conf"
}

node_dir() { echo "$STATE_DIR/node$1"; }

# node_pid N: prints the PID of node N if that process is alive and really is
# this node's broker (guards against a recycled PID).
node_pid() {
	local dir pid
	dir="$(node_dir "$1")"
	[[ -f "$dir/pid" ]] || return 1
	pid="$(<"$dir/pid")"
	is_uint "$pid" || return 1
	[[ -r "/proc/$pid/cmdline" ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/server.properties" || return 1
	echo "$pid"
}

any_running() {
	[[ -d "$STATE_DIR" ]] || return 1
	local d n
	for d in "$STATE_DIR"/node*; do
		[[ -d "$d" ]] || continue
		n="${d##*/node}"
		if node_pid "$n" >/dev/null; then return 0; fi
	done
	return 1
}

bootstrap_plaintext() {
	local i out=()
	for ((i = 0; i < NODES; i++)); do out+=("127.0.0.1:${PLAINTEXT_PORTS[i]}"); done
	local IFS=,
	echo "${out[*]}"
}

bootstrap_sasl() {
	local i out=()
	for ((i = 0; i < NODES; i++)); do out+=("127.0.0.1:${SASL_PORTS[i]}"); done
	local IFS=,
	echo "${out[*]}"
}

# ---------------------------------------------------------------- TLS

gen_tls() {
	need openssl "needed for --sasl-ssl, e.g. apt-get install -y openssl"
	local dir="$STATE_DIR/tls"
	mkdir -p "$dir"
	cat >"$dir/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = ingestion-service local test CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
	cat >"$dir/server.ext" <<'EOF'
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EOF
	(
		cd "$dir"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem \
			-days 3650 -config ca.cnf
		openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
			-subj "/CN=localhost"
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
			-out server.crt -days 825 -extfile server.ext
		# Kafka's PEM key store: unencrypted PKCS#8 key, then the chain.
		cat server.key server.crt ca.pem >server.pem
		chmod 600 ca.key server.key server.pem
	) >"$dir/openssl.log" 2>&1 || {
		cat "$dir/openssl.log" >&2
		die "openssl failed to generate the test certificates"
	}
}

# ---------------------------------------------------------------- nodes

write_server_properties() {
	local n="$1" i=$(($1 - 1)) dir
	dir="$(node_dir "$n")"
	local bootstrap_ctl=() k
	for ((k = 0; k < NODES; k++)); do bootstrap_ctl+=("127.0.0.1:${CONTROLLER_PORTS[k]}"); done
	local min_isr=1
	((NODES >= 3)) && min_isr=2
	local txn_isr=$((NODES < 2 ? NODES : 2))
	local listeners="PLAINTEXT://127.0.0.1:${PLAINTEXT_PORTS[i]},CONTROLLER://127.0.0.1:${CONTROLLER_PORTS[i]}"
	local advertised="$listeners"
	local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL"
	if ((SASL_SSL)); then
		listeners+=",SASL_SSL://127.0.0.1:${SASL_PORTS[i]}"
		advertised+=",SASL_SSL://127.0.0.1:${SASL_PORTS[i]}"
	fi
	# Each proxied set is a listener that advertises another port, where a
	# test's fault proxy listens and passes connections on to it: a client
	# bootstrapped there is sent to the set's proxies for every broker.
	local s
	for ((s = 0; s < PROXIED; s++)); do
		listeners+=",PROXIED$s://127.0.0.1:${PROXY_LISTEN_PORTS[s * NODES + i]}"
		advertised+=",PROXIED$s://127.0.0.1:${PROXY_ADV_PORTS[s * NODES + i]}"
		protocols+=",PROXIED$s:PLAINTEXT"
	done
	{
		echo "# Written by scripts/kafka.sh start; node $n of $NODES."
		echo "process.roles=broker,controller"
		echo "node.id=$n"
		echo "controller.quorum.bootstrap.servers=$(
			IFS=,
			echo "${bootstrap_ctl[*]}"
		)"
		echo "listeners=$listeners"
		echo "advertised.listeners=$advertised"
		echo "controller.listener.names=CONTROLLER"
		echo "inter.broker.listener.name=PLAINTEXT"
		echo "listener.security.protocol.map=$protocols"
		echo "log.dirs=$dir/data"
		echo "auto.create.topics.enable=false"
		echo "num.partitions=1"
		echo "default.replication.factor=$NODES"
		echo "min.insync.replicas=$min_isr"
		echo "offsets.topic.replication.factor=$NODES"
		echo "transaction.state.log.replication.factor=$NODES"
		echo "transaction.state.log.min.isr=$txn_isr"
		echo "share.coordinator.state.topic.replication.factor=$NODES"
		echo "share.coordinator.state.topic.min.isr=$txn_isr"
		echo "group.initial.rebalance.delay.ms=0"
		# Fewer internal partitions than the defaults (50) keeps the first
		# consumer group / transaction fast on a small test machine.
		echo "offsets.topic.num.partitions=5"
		echo "transaction.state.log.num.partitions=5"
		if ((SASL_SSL)); then
			echo "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
			echo "listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${SASL_USER}=\"${SASL_PASSWORD}\";"
			echo "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
			echo "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
			echo "listener.name.sasl_ssl.ssl.keystore.type=PEM"
			echo "listener.name.sasl_ssl.ssl.keystore.location=$STATE_DIR/tls/server.pem"
			echo "listener.name.sasl_ssl.ssl.client.auth=none"
		fi
	} >"$dir/server.properties"
}

# start_node N: launches node N in the background and records its PID and the
# size its server.log had, so readiness only looks at lines of this run.
start_node() {
	local n="$1" dir
	dir="$(node_dir "$n")"
	mkdir -p "$dir/logs"
	local size=0
	[[ -f "$dir/logs/server.log" ]] && size="$(stat -c %s "$dir/logs/server.log")"
	echo "$size" >"$dir/log.offset"
	echo "=== start $(date -u +%FT%TZ)" >>"$dir/stdout.log"
	nohup java "${HEAP_OPTS[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
		-Dkafka.logs.dir="$dir/logs" \
		-Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties" \
		-cp "$LIB_DIR/*" kafka.Kafka "$dir/server.properties" \
		>>"$dir/stdout.log" 2>&1 </dev/null &
	local pid=$! i
	echo "$pid" >"$dir/pid"
	# Until the child executes java it is a copy of this script, whose
	# command line node_pid does not recognise: a node_pid in that window
	# took a starting node for one that had exited.
	for ((i = 0; i < 100; i++)); do
		node_pid "$n" >/dev/null && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
}

node_ready() {
	local n="$1" dir off
	dir="$(node_dir "$n")"
	off="$(<"$dir/log.offset")"
	[[ -f "$dir/logs/server.log" ]] || return 1
	tail -c +"$((off + 1))" "$dir/logs/server.log" | grep -q 'Kafka Server started' || return 1
	port_open "${PLAINTEXT_PORTS[n - 1]}"
}

node_failed() {
	local n="$1" dir
	dir="$(node_dir "$n")"
	printf '\n--- node %s stdout/stderr (%s/stdout.log, last 30 lines):\n' "$n" "$dir" >&2
	tail -n 30 "$dir/stdout.log" >&2 || true
	printf -- '--- node %s server.log (last 30 lines):\n' "$n" >&2
	tail -n 30 "$dir/logs/server.log" >&2 2>/dev/null || true
}

# wait_ready N...: waits until each node logged "Kafka Server started" and
# accepts TCP connections on its PLAINTEXT port.
wait_ready() {
	local deadline=$(($(now_ms) + READY_TIMEOUT * 1000)) pending=("$@") next n
	while ((${#pending[@]})); do
		next=()
		for n in "${pending[@]}"; do
			if node_ready "$n"; then
				continue
			fi
			if ! node_pid "$n" >/dev/null; then
				node_failed "$n"
				die "node $n exited during startup"
			fi
			next+=("$n")
		done
		pending=("${next[@]+"${next[@]}"}")
		((${#pending[@]})) || break
		if (($(now_ms) > deadline)); then
			for n in "${pending[@]}"; do node_failed "$n"; done
			die "node(s) ${pending[*]} not ready after ${READY_TIMEOUT}s (logs under $STATE_DIR)"
		fi
		sleep 0.2
	done
}

write_env() {
	{
		echo "export KAFKA_TEST_BROKERS=$(bootstrap_plaintext)"
		if ((SASL_SSL)); then
			echo "export KAFKA_TEST_SASL_SSL_BROKER=127.0.0.1:${SASL_PORTS[0]}"
			echo "export KAFKA_TEST_CA_FILE=$STATE_DIR/tls/ca.pem"
			echo "export KAFKA_TEST_SASL_USER=$SASL_USER"
			echo "export KAFKA_TEST_SASL_PASSWORD=$SASL_PASSWORD"
		fi
		if ((PROXIED)); then
			# Sets separated by spaces; in each, listen>advertised per node.
			local sets=() set s i
			for ((s = 0; s < PROXIED; s++)); do
				set=()
				for ((i = 0; i < NODES; i++)); do set+=("${PROXY_LISTEN_PORTS[s * NODES + i]}>${PROXY_ADV_PORTS[s * NODES + i]}"); done
				sets+=("$(
					IFS=,
					echo "${set[*]}"
				)")
			done
			echo "export KAFKA_TEST_PROXY_SETS='${sets[*]}'"
		fi
	} >"$STATE_DIR/env"
}

write_client_properties() {
	local mech
	for mech in PLAIN SCRAM-SHA-256 SCRAM-SHA-512; do
		local module=org.apache.kafka.common.security.scram.ScramLoginModule
		[[ "$mech" == PLAIN ]] && module=org.apache.kafka.common.security.plain.PlainLoginModule
		{
			echo "# Client settings for the SASL_SSL listener (scripts/kafka.sh)."
			echo "security.protocol=SASL_SSL"
			echo "sasl.mechanism=$mech"
			echo "sasl.jaas.config=$module required username=\"$SASL_USER\" password=\"$SASL_PASSWORD\";"
			echo "ssl.truststore.type=PEM"
			echo "ssl.truststore.location=$STATE_DIR/tls/ca.pem"
		} >"$STATE_DIR/client-${mech,,}.properties"
	done
}

# ---------------------------------------------------------------- commands

cmd_start() {
	local nodes=1 sasl=0 proxied=0
	while (($#)); do
		case "$1" in
		--proxied)
			(($# >= 2)) || die "--proxied needs a number"
			proxied="$2"
			shift 2
			;;
		--brokers)
			(($# >= 2)) || die "--brokers needs a number"
			nodes="$2"
			shift 2
			;;
		--brokers=*)
			nodes="${1#--brokers=}"
			shift
			;;
		--sasl-ssl)
			sasl=1
			shift
			;;
		*) die "start: unknown argument '$1' (usage: start [--brokers 1|3] [--sasl-ssl] [--proxied N])" ;;
		esac
	done
	if ! { is_uint "$nodes" && ((nodes >= 1 && nodes <= 5)); }; then
		die "--brokers must be 1..5 (1 or 3 are the tested sizes)"
	fi
	if ! { is_uint "$proxied" && ((proxied <= 5)); }; then
		die "--proxied must be 0..5"
	fi

	local t0
	t0="$(now_ms)"
	ensure_installed
	if any_running; then
		log "start: a cluster is already running in $STATE_DIR; stopping it first"
		cmd_stop
	fi
	rm -rf "$STATE_DIR"
	mkdir -p "$STATE_DIR"

	NODES="$nodes"
	SASL_SSL="$sasl"
	PROXIED="$proxied"
	local per=2
	((SASL_SSL)) && per=3
	local ports
	read -r -a ports <<<"$(free_ports $((NODES * per + 2 * NODES * PROXIED)))"
	((${#ports[@]} == NODES * per + 2 * NODES * PROXIED)) || die "could not allocate free ports"
	PLAINTEXT_PORTS=() CONTROLLER_PORTS=() SASL_PORTS=()
	local i
	for ((i = 0; i < NODES; i++)); do
		PLAINTEXT_PORTS+=("${ports[i * per]}")
		CONTROLLER_PORTS+=("${ports[i * per + 1]}")
		if ((SASL_SSL)); then SASL_PORTS+=("${ports[i * per + 2]}"); fi
	done
	PROXY_LISTEN_PORTS=() PROXY_ADV_PORTS=()
	for ((i = 0; i < NODES * PROXIED; i++)); do
		PROXY_LISTEN_PORTS+=("${ports[NODES * per + 2 * i]}")
		PROXY_ADV_PORTS+=("${ports[NODES * per + 2 * i + 1]}")
	done
	{
		echo "NODES=$NODES"
		echo "SASL_SSL=$SASL_SSL"
		echo "PLAINTEXT_PORTS=(${PLAINTEXT_PORTS[*]})"
		echo "CONTROLLER_PORTS=(${CONTROLLER_PORTS[*]})"
		echo "SASL_PORTS=(${SASL_PORTS[*]+"${SASL_PORTS[*]}"})"
		echo "PROXIED=$PROXIED"
		echo "PROXY_LISTEN_PORTS=(${PROXY_LISTEN_PORTS[*]+"${PROXY_LISTEN_PORTS[*]}"})"
		echo "PROXY_ADV_PORTS=(${PROXY_ADV_PORTS[*]+"${PROXY_ADV_PORTS[*]}"})"
	} >"$STATE_DIR/cluster.conf"

	if ((SASL_SSL)); then
		gen_tls
		write_client_properties
	fi

	# KRaft storage: one cluster id; a dynamic controller quorum
	# (controller.quorum.bootstrap.servers). One node: --standalone. Several:
	# --initial-controllers id@host:port:directory-id, the same list for all.
	# The JVMs run in parallel: each short-lived tool costs ~0.5-1 s of CPU.
	local uuid_jobs=() n
	for ((n = 0; n <= NODES; n++)); do
		tool kafka.tools.StorageTool random-uuid >"$STATE_DIR/uuid.$n" 2>&1 &
		uuid_jobs+=("$!")
	done
	for n in "${!uuid_jobs[@]}"; do
		wait "${uuid_jobs[n]}" || {
			cat "$STATE_DIR/uuid.$n" >&2
			die "StorageTool random-uuid failed"
		}
	done
	local cluster_id
	cluster_id="$(<"$STATE_DIR/uuid.0")"
	echo "$cluster_id" >"$STATE_DIR/cluster.id"
	local quorum_args=(--standalone)
	if ((NODES > 1)); then
		local voters=()
		for ((i = 0; i < NODES; i++)); do
			voters+=("$((i + 1))@127.0.0.1:${CONTROLLER_PORTS[i]}:$(<"$STATE_DIR/uuid.$((i + 1))")")
		done
		quorum_args=(--initial-controllers "$(
			IFS=,
			echo "${voters[*]}"
		)")
	fi
	rm -f "$STATE_DIR"/uuid.*
	local scram_args=()
	if ((SASL_SSL)); then
		scram_args=(--add-scram "SCRAM-SHA-256=[name=$SASL_USER,password=$SASL_PASSWORD]"
			--add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]")
	fi
	local dir format_jobs=()
	for ((n = 1; n <= NODES; n++)); do
		dir="$(node_dir "$n")"
		mkdir -p "$dir/data" "$dir/logs"
		write_server_properties "$n"
		tool kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
			"${quorum_args[@]}" "${scram_args[@]+"${scram_args[@]}"}" >"$dir/format.log" 2>&1 &
		format_jobs+=("$!")
	done
	for ((n = 1; n <= NODES; n++)); do
		wait "${format_jobs[n - 1]}" || {
			cat "$(node_dir "$n")/format.log" >&2
			die "formatting storage of node $n failed"
		}
	done
	local t_fmt
	t_fmt="$(elapsed "$t0")"

	local all=()
	for ((n = 1; n <= NODES; n++)); do
		start_node "$n"
		all+=("$n")
	done
	log "start: $NODES node(s) launched (storage formatted after $t_fmt), waiting up to ${READY_TIMEOUT}s ..."
	if ! (wait_ready "${all[@]}"); then
		cmd_stop >/dev/null 2>&1 || true
		exit 1
	fi
	write_env
	log "start: $NODES node(s) ready in $(elapsed "$t0") (state: $STATE_DIR)"
	cat "$STATE_DIR/env"
}

cmd_stop() {
	if [[ ! -d "$STATE_DIR" ]]; then
		log "stop: nothing to stop"
		return 0
	fi
	local d n pid pids=() names=()
	for d in "$STATE_DIR"/node*; do
		[[ -d "$d" ]] || continue
		n="${d##*/node}"
		if pid="$(node_pid "$n")"; then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
			names+=("$n")
		fi
		rm -f "$d/pid"
	done
	if ((${#pids[@]} == 0)); then
		log "stop: nothing running"
		return 0
	fi
	local t0 deadline alive
	t0="$(now_ms)"
	deadline=$((t0 + STOP_TIMEOUT * 1000))
	while :; do
		alive=()
		for pid in "${pids[@]}"; do
			if kill -0 "$pid" 2>/dev/null; then alive+=("$pid"); fi
		done
		((${#alive[@]})) || break
		if (($(now_ms) > deadline)); then
			log "stop: still running after ${STOP_TIMEOUT}s, sending SIGKILL to ${alive[*]}"
			kill -KILL "${alive[@]}" 2>/dev/null || true
			sleep 0.5
			break
		fi
		sleep 0.2
	done
	log "stop: stopped node(s) ${names[*]} in $(elapsed "$t0")"
}

cmd_status() {
	load_cluster
	local n pid up=0
	for ((n = 1; n <= NODES; n++)); do
		if pid="$(node_pid "$n")"; then
			echo "node $n: running (pid $pid, PLAINTEXT 127.0.0.1:${PLAINTEXT_PORTS[n - 1]})"
			up=$((up + 1))
		else
			echo "node $n: not running"
		fi
	done
	((up == NODES))
}

node_arg() {
	load_cluster
	[[ -n "${1:-}" ]] || die "missing node number (1..$NODES)"
	if ! { is_uint "$1" && (($1 >= 1 && $1 <= NODES)); }; then
		die "node must be 1..$NODES, got '$1'"
	fi
}

kill_node() {
	local n="$1" pid
	if ! pid="$(node_pid "$n")"; then
		log "kill: node $n is not running"
		return 0
	fi
	kill -KILL "$pid" 2>/dev/null || true
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$(node_dir "$n")/pid"
	log "kill: node $n (pid $pid) killed with SIGKILL"
}

cmd_kill() {
	node_arg "${1:-}"
	kill_node "$1"
}

# cmd_signal SIG N: send SIGSTOP or SIGCONT to node N (a hung broker).
cmd_signal() {
	local sig="$1"
	shift
	node_arg "${1:-}"
	local pid
	pid="$(node_pid "$1")" || die "node $1 is not running"
	kill "-$sig" "$pid"
	log "$sig sent to node $1 (pid $pid)"
}

cmd_restart() {
	node_arg "${1:-}"
	ensure_installed
	local t0
	t0="$(now_ms)"
	kill_node "$1"
	start_node "$1"
	wait_ready "$1"
	log "restart: node $1 ready in $(elapsed "$t0")"
}

cmd_env() {
	load_cluster
	any_running || die "no node is running (run: scripts/kafka.sh start)"
	cat "$STATE_DIR/env"
}

# client_args [--sasl-ssl]: bootstrap servers (and client config) for the tools.
client_args() {
	if [[ "${1:-}" == sasl ]]; then
		((SASL_SSL)) || die "the cluster was not started with --sasl-ssl"
		CLIENT_ARGS=(--bootstrap-server "$(bootstrap_sasl)"
			--command-config "$STATE_DIR/client-scram-sha-512.properties")
	else
		CLIENT_ARGS=(--bootstrap-server "$(bootstrap_plaintext)")
	fi
}

cmd_create_topic() {
	(($# == 3)) || die "usage: create-topic NAME PARTITIONS RF"
	if ! { is_uint "$2" && is_uint "$3"; }; then die "PARTITIONS and RF must be numbers"; fi
	load_cluster
	any_running || die "no node is running"
	tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap_plaintext)" \
		--create --if-not-exists --topic "$1" --partitions "$2" --replication-factor "$3"
}

cmd_produce() {
	[[ -n "${1:-}" ]] || die "usage: produce TOPIC [--sasl-ssl] < lines of key<TAB>value"
	local topic="$1" mode=plain
	shift
	while (($#)); do
		case "$1" in
		--sasl-ssl) mode=sasl ;;
		*) die "produce: unknown argument '$1'" ;;
		esac
		shift
	done
	load_cluster
	any_running || die "no node is running"
	client_args "$mode"
	# ConsoleProducer exits 0 even when a send fails; its stderr tells.
	local errf rc=0
	errf="$(mktemp)"
	tool org.apache.kafka.tools.ConsoleProducer "${CLIENT_ARGS[@]}" --topic "$topic" \
		--reader-property parse.key=true --reader-property "key.separator=$TAB" \
		--request-required-acks all --request-timeout-ms 30000 2>"$errf" || rc=$?
	cat "$errf" >&2
	if ((rc == 0)) && grep -qE 'ERROR Error when sending message|ERROR Error processing message' "$errf"; then
		rc=1
	fi
	rm -f "$errf"
	((rc == 0)) || die "produce to '$topic' failed"
}

cmd_consume() {
	[[ -n "${1:-}" ]] || die "usage: consume TOPIC [--max N] [--timeout-ms MS] [--sasl-ssl]"
	local topic="$1" max="" timeout=10000 mode=plain
	shift
	while (($#)); do
		case "$1" in
		--max)
			if ! { (($# >= 2)) && is_uint "$2"; }; then die "--max needs a number"; fi
			max="$2"
			shift
			;;
		--timeout-ms)
			if ! { (($# >= 2)) && is_uint "$2"; }; then die "--timeout-ms needs a number"; fi
			timeout="$2"
			shift
			;;
		--sasl-ssl) mode=sasl ;;
		*) die "consume: unknown argument '$1'" ;;
		esac
		shift
	done
	load_cluster
	any_running || die "no node is running"
	client_args "$mode"
	local args=("${CLIENT_ARGS[@]}" --topic "$topic" --from-beginning --timeout-ms "$timeout"
		--formatter-property print.key=true --formatter-property "key.separator=$TAB")
	if [[ -n "$max" ]]; then args+=(--max-messages "$max"); fi
	# ConsoleConsumer exits 0 on any error; reaching --timeout-ms is the normal
	# end here (it shows as a TimeoutException), anything else is a failure.
	local errf rc=0
	errf="$(mktemp)"
	tool org.apache.kafka.tools.consumer.ConsoleConsumer "${args[@]}" 2>"$errf" || rc=$?
	grep -vE 'KIP-848|ERROR Error processing message, terminating consumer process|^org\.apache\.kafka\.common\.errors\.TimeoutException$' "$errf" >&2 || true
	if ((rc == 0)) && grep -q 'ERROR Error processing message' "$errf" &&
		! grep -qx 'org.apache.kafka.common.errors.TimeoutException' "$errf"; then
		rc=1
	fi
	rm -f "$errf"
	((rc == 0)) || die "consume from '$topic' failed"
}

main() {
	(($#)) || usage
	local cmd="$1"
	shift
	case "$cmd" in
	install) cmd_install "$@" ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	status) cmd_status "$@" ;;
	kill) cmd_kill "$@" ;;
	pause) cmd_signal STOP "$@" ;;
	resume) cmd_signal CONT "$@" ;;
	restart) cmd_restart "$@" ;;
	env) cmd_env "$@" ;;
	create-topic) cmd_create_topic "$@" ;;
	produce) cmd_produce "$@" ;;
	consume) cmd_consume "$@" ;;
	-h | --help | help) usage ;;
	*)
		log "unknown command '$cmd'"
		usage
		;;
	esac
}

main "$@"
