#!/usr/bin/env bash
# deploy/local/run.sh -- try neptun-api on this machine (Debian 12): installs what is
# missing, builds the release preset, starts Redis and PostgreSQL on loopback under .local/
# (data kept between runs), migrates, seeds a demo user, session and project, prints a curl
# line that updates the project, and serves in the foreground. Ctrl-C stops everything.
#
# Ports and places (environment):
#   NEPTUN_LOCAL_DIR          where the stores keep their data   (default: <repo>/.local;
#                             PostgreSQL's cluster goes to /var/lib/neptun-local/<id>/pg
#                             when the postgres user cannot enter it, as in /root)
#   NEPTUN_LOCAL_REDIS_PORT   Redis on 127.0.0.1                 (default: 6390)
#   NEPTUN_LOCAL_PG_PORT      PostgreSQL on 127.0.0.1            (default: 5442)
#   NEPTUN_LOCAL_API_PORT     the API on 127.0.0.1               (default: 8080)
#   NEPTUN_LOCAL_ADMIN_PORT   /livez /readyz /metrics            (default: 9090)
# Any other NEPTUN_* setting is passed to the server as it is (see neptun-api --help).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/deploy/local/lib.sh"

DIR=${NEPTUN_LOCAL_DIR:-$ROOT/.local}
REDIS_PORT=${NEPTUN_LOCAL_REDIS_PORT:-6390}
PG_PORT=${NEPTUN_LOCAL_PG_PORT:-5442}
API_PORT=${NEPTUN_LOCAL_API_PORT:-8080}
ADMIN_PORT=${NEPTUN_LOCAL_ADMIN_PORT:-9090}

ensure_packages "${NEPTUN_BUILD_PACKAGES[@]}" "${NEPTUN_STORE_PACKAGES[@]}" redis-tools curl
log_step "building the release preset"
build_preset release neptun-api
BIN=$ROOT/build/release/neptun-api

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
PG_DIR=$DIR/pg
# PostgreSQL runs as the postgres user, who cannot enter a clone in root's home folder
# (mode 700): then its cluster lives under /var/lib/neptun-local, one folder per clone.
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$DIR"; then
  PG_DIR=/var/lib/neptun-local/$(printf '%s' "$DIR" | sha256sum | cut -c1-12)/pg
  mkdir -p "$(dirname "$PG_DIR")"
  chmod 755 /var/lib/neptun-local "$(dirname "$PG_DIR")"
  log_step "the postgres user cannot enter $DIR: PostgreSQL's cluster is kept in $PG_DIR"
fi

stop_all() {
  trap - EXIT INT TERM
  set +e
  log_step "stopping Redis and PostgreSQL (data stays in $DIR and $PG_DIR)"
  stop_redis "$DIR/redis"
  stop_postgres "$PG_DIR"
}
trap stop_all EXIT
# Ctrl-C reaches the server too (same process group): it drains and exits, then we clean up.
trap 'exit 130' INT TERM

log_step "starting Redis on 127.0.0.1:$REDIS_PORT (in $DIR/redis) and PostgreSQL on 127.0.0.1:$PG_PORT (in $PG_DIR)"
stop_redis "$DIR/redis"
start_redis "$DIR/redis" "$REDIS_PORT"
start_postgres "$PG_DIR" "$PG_PORT"

export NEPTUN_DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/neptun"
export NEPTUN_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export NEPTUN_LISTEN="127.0.0.1:$API_PORT"
export NEPTUN_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT"
"$BIN" migrate

log_step "seeding the demo user, project and session"
ids=$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d neptun -tAq -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO neptun_user (primary_email) VALUES ('demo@neptun.local') ON CONFLICT (primary_email) DO NOTHING;
INSERT INTO neptun_user_project (name, description, type, main_language, neptun_user_id)
  SELECT 'Demo project', 'Seeded by deploy/local/run.sh', 'web-app', 'typescript', u.id
    FROM neptun_user u
   WHERE u.primary_email = 'demo@neptun.local'
     AND NOT EXISTS (SELECT 1 FROM neptun_user_project p WHERE p.neptun_user_id = u.id);
SELECT u.id || ' ' || min(p.id) FROM neptun_user u JOIN neptun_user_project p ON p.neptun_user_id = u.id
 WHERE u.primary_email = 'demo@neptun.local' GROUP BY u.id;
SQL
)
read -r USER_ID PROJECT_ID <<<"$ids"
TOKEN=demo-session-token
redis-cli -p "$REDIS_PORT" SET "neptun:session:$TOKEN" \
  "{\"user\":{\"id\":$USER_ID,\"primary_email\":\"demo@neptun.local\"},\"loggedInAt\":\"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)\"}" \
  EX 86400 >/dev/null

cat <<MSG

neptun-api serves http://127.0.0.1:$API_PORT (admin: http://127.0.0.1:$ADMIN_PORT/readyz).
Update the demo project:

  curl -s -X PATCH http://127.0.0.1:$API_PORT/api/users/$USER_ID/projects/$PROJECT_ID \\
       -H 'Cookie: neptun-session=$TOKEN' -H 'Content-Type: application/json' \\
       -d '{"name":"Updated Project Name","programming_language":"go"}'

Read it back:

  curl -s http://127.0.0.1:$API_PORT/api/users/$USER_ID/projects/$PROJECT_ID -H 'Cookie: neptun-session=$TOKEN'

Ctrl-C stops the server, Redis and PostgreSQL.

MSG
"$BIN" serve || true
