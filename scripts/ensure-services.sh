#!/usr/bin/env bash
# Make sure the servers the integration tests need are up on this machine:
# NATS with JetStream on 127.0.0.1:4222 and MariaDB on 127.0.0.1:3306 (root, no password,
# database `test`). Installs the Debian packages when they are missing. SecantusDB (the
# MongoDB-wire test server) is started by the tests themselves from the dev dependencies.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  echo "ensure-services: $name did not open port $port" >&2
  return 1
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! port_open 4222; then
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || apt_install nats-server
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 nats-server
fi

if ! port_open 3306; then
  [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_port 3306 mariadb
fi

# Database `test` for the root user with an empty password over TCP.
if command -v mariadb >/dev/null 2>&1; then
  mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS test" 2>/dev/null \
    || mariadb -u root -e "CREATE DATABASE IF NOT EXISTS test" || true
fi
echo "ensure-services: nats 127.0.0.1:4222 and mariadb 127.0.0.1:3306 are up"

# --- deploy checks (owned by the deploy/operate work; keep separate) ----------------------
# promtool (only shipped in Debian's `prometheus` package; on a host with systemd that also
# enables a Prometheus server, which the tests do not use) checks the PromQL of
# deploy/monitoring and runs the alert unit tests in tests/unit/deploy.
if ! command -v promtool >/dev/null 2>&1; then
  apt_install --no-install-recommends prometheus
fi
echo "ensure-services: promtool $(promtool --version 2>&1 | head -n1 | awk '{print $3}') is installed"

# --- console browser tests (tests/integration/test_console_browser.py) ---------------------
# Debian's chromium, driven by Playwright for Python through executable_path: Playwright's
# own browser download is never used.
if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi
echo "ensure-services: $(/usr/bin/chromium --version 2>/dev/null | head -n1) is installed"
