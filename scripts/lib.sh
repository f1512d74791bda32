# Shared by scripts/test.sh and scripts/run.sh: find PostgreSQL and Redis, start them from the
# system's installation when they are installed but stopped, or stop with one clear line.

say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# host and port of a URL such as scheme://user:pass@host:port/db
url_host() { local rest="${1#*://}"; rest="${rest##*@}"; rest="${rest%%/*}"; printf '%s' "${rest%%:*}"; }
url_port() { local rest="${1#*://}"; rest="${rest##*@}"; rest="${rest%%/*}"
  case "$rest" in *:*) printf '%s' "${rest##*:}" ;; *) printf '%s' "$2" ;; esac; }
redacted() { printf '%s' "$1" | sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#'; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
is_local() { case "$1" in 127.*|localhost|::1|\[::1\]) return 0 ;; *) return 1 ;; esac; }
wait_for() { # wait_for NAME HOST PORT [TRIES]
  for _ in $(seq 1 "${4:-50}"); do port_open "$2" "$3" && return 0; sleep 0.2; done
  die "$1 does not answer on $2:$3"
}

ensure_postgres() { # ensure_postgres URL
  local host port
  host=$(url_host "$1"); port=$(url_port "$1" 5432)
  port_open "$host" "$port" && return 0
  if is_local "$host" && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    say "PostgreSQL is not answering on $host:$port; starting the system's cluster"
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    wait_for PostgreSQL "$host" "$port"
  else
    die "PostgreSQL does not answer at $(redacted "$1") and is not installed here; install it (Debian: apt-get install postgresql) or set DATABASE_URL"
  fi
}

ensure_redis() { # ensure_redis URL
  local host port
  host=$(url_host "$1"); port=$(url_port "$1" 6379)
  port_open "$host" "$port" && return 0
  if is_local "$host" && command -v redis-server >/dev/null; then
    say "Redis is not answering on $host:$port; starting redis-server"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no >/dev/null
    wait_for Redis "$host" "$port"
  else
    die "Redis does not answer at $(redacted "$1") and is not installed here; install it (Debian: apt-get install redis-server) or set REDIS_URL"
  fi
}
free_port() { # a TCP port on 127.0.0.1 that nothing listens on now
  local port
  for _ in $(seq 1 100); do
    port=$(( 20000 + RANDOM % 20000 ))
    port_open 127.0.0.1 "$port" || { printf '%s' "$port"; return 0; }
  done
  die "no free port found"
}
# start_mosquitto DIR CREDENTIALS [BIND]: a Mosquitto on a free port (never the shared one),
# listening on BIND (default 127.0.0.1), that knows the gateway (user `gateway`, a random password) and every locker in
# CREDENTIALS (`device add-many`'s JSON lines); its files and log in DIR. Sets mosquitto_pid,
# mosquitto_port and mosquitto_password.
start_mosquitto() {
  local dir=$1 credentials=$2 bind=${3:-127.0.0.1}
  mosquitto_password=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  mosquitto_passwd -c -b "$dir/passwd" gateway "$mosquitto_password" 2>/dev/null
  sed -E 's/.*"device_id":"([^"]+)".*"mqtt_password":"([^"]+)".*/\1:\2/' "$credentials" > "$dir/passwd.plain"
  mosquitto_passwd -U "$dir/passwd.plain" 2>/dev/null
  cat "$dir/passwd.plain" >> "$dir/passwd"
  mosquitto_port=$(free_port)
  cat > "$dir/mosquitto.conf" <<CONF
listener $mosquitto_port $bind
allow_anonymous false
password_file $dir/passwd
persistence false
log_dest stderr
log_type error
max_queued_messages 10000
CONF
  mosquitto -c "$dir/mosquitto.conf" 2>"$dir/mosquitto.log" &
  mosquitto_pid=$!
  wait_for Mosquitto 127.0.0.1 "$mosquitto_port"
}

# ensure_package CHECK PACKAGE WHAT: when the test `CHECK` (a shell condition) fails, installs the
# Debian package PACKAGE (apt-get install -y, as root), or stops with one line saying what is
# missing and why (WHAT).
ensure_package() {
  eval "$1" && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing $2 ($3)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null 2>&1; } \
      || die "$2 is missing and could not be installed; $3 (Debian: apt-get install $2)"
    eval "$1" || die "$2 was installed but still not found; $3"
  else
    die "$2 is missing; $3 (Debian, as root: apt-get install $2)"
  fi
}

