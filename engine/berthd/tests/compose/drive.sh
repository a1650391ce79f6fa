#!/bin/bash
# Drives docker-compose (Debian's 1.29) through the life of ./docker-compose.yml against the daemon
# at DOCKER_HOST, printing one line per fact checked; tests/netns_compose.rs runs it against
# berthd and against dockerd and compares the lines. IMAGE and PORT come from the caller.
set -u
cd "$(dirname "$0")"
C="docker-compose -p bcompose"
say() { printf '%s\n' "$*"; }
quiet() { "$@" >/tmp/compose-step.$$ 2>&1 || { say "FAILED: $*"; cat /tmp/compose-step.$$; }; }
names() { docker ps -a --filter label=com.docker.compose.project=bcompose --format '{{.Names}}' | sort | tr '\n' ' '; }

quiet $C up -d
say "up: $(names)"
# web started only once db was healthy.
say "db health: $(docker inspect -f '{{.State.Health.Status}}' bcompose_db_1)"
db_healthy=$(docker inspect -f '{{range .State.Health.Log}}{{if eq .ExitCode 0}}{{.End}}{{"\n"}}{{end}}{{end}}' bcompose_db_1 | head -n 1)
web_started=$(docker inspect -f '{{.State.StartedAt}}' bcompose_web_1)
[[ "$web_started" > "$db_healthy" ]] && say "web started after db was healthy" || say "web started at $web_started, db healthy at $db_healthy"
say "ps: $($C ps --services | sort | tr '\n' ' ')"
say "web networks: $(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' bcompose_web_1)"
say "db aliases on back: $(docker inspect -f '{{range .NetworkSettings.Networks.bcompose_back.Aliases}}{{.}} {{end}}' bcompose_db_1 | tr ' ' '\n' | grep -v -e '^[0-9a-f]\{12\}$' -e '^$' | sort | tr '\n' ' ')"
for _ in $(seq 50); do body=$(wget -qO- "http://127.0.0.1:$PORT/" 2>/dev/null) && break; sleep 0.1; done
say "published: ${body:-none}"
say "client to web: $(docker exec bcompose_client_1 wget -qO- http://web/)"
say "web to database: $(docker exec bcompose_web_1 sh -c 'nslookup database >/dev/null 2>&1 && echo resolves || echo unresolved')"
say "client to database: $(docker exec bcompose_client_1 sh -c 'nslookup database >/dev/null 2>&1 && echo resolves || echo unresolved')"
say "second up: $($C up -d 2>&1 | sort | tr '\n' ' ')"
say "exec: $($C exec -T db cat /data/v)"
say "run: $($C run --rm -T client echo ran-ok 2>/dev/null)"
say "logs: $($C logs --no-color web 2>&1 | grep -c web-up)"
quiet $C up -d --scale client=2
say "scaled: $(names)"
quiet $C restart
say "after restart: $(docker ps --filter label=com.docker.compose.project=bcompose --format '{{.Names}}' | sort | tr '\n' ' ')"
quiet $C stop
say "stopped: $(docker ps -q --filter label=com.docker.compose.project=bcompose | wc -l)"
quiet $C start
say "started: $(docker ps -q --filter label=com.docker.compose.project=bcompose | wc -l)"
say "volume kept: $($C exec -T db cat /data/v)"
quiet $C down -v
say "down: containers $(docker ps -aq --filter label=com.docker.compose.project=bcompose | wc -l)" \
  "volumes $(docker volume ls -q | grep -c bcompose)" "networks $(docker network ls --format '{{.Name}}' | grep -c bcompose)"
rm -f /tmp/compose-step.$$
