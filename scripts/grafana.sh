#!/usr/bin/env bash
# `make grafana`: Grafana with this project's provisioning. With a Docker engine, the
# compose file in grafana/ runs it (and Prometheus, unless `make observe` already runs
# one); without, say how to point an existing Grafana at the provisioning.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
compose="$here/grafana/docker-compose.yml"
prometheus_port="${CC_PROMETHEUS_PORT:-9090}"

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    if curl -sf "http://127.0.0.1:${prometheus_port}/-/ready" >/dev/null 2>&1; then
        echo "Prometheus already answers on port ${prometheus_port}: starting Grafana only"
        docker compose -f "$compose" up -d grafana
    else
        docker compose -f "$compose" up -d
    fi
    echo "Grafana: http://127.0.0.1:3000 (dashboards in the checkout-chaos folder)"
    echo "stop it: docker compose -f $compose down"
    exit 0
fi

cat <<MSG
No Docker engine here, so Grafana was not started. To use a Grafana you already run
(10.x or 11.x) with these dashboards:

  1. make observe            # Prometheus on 127.0.0.1:${prometheus_port}, scraping the stack
  2. copy or link the provisioning into Grafana's provisioning folder:
       ln -s $here/grafana/provisioning/datasources/prometheus.yml /etc/grafana/provisioning/datasources/checkout-chaos.yml
       ln -s $here/grafana/provisioning/dashboards/checkout-chaos.yml /etc/grafana/provisioning/dashboards/checkout-chaos.yml
  3. start Grafana with the dashboards' folder and Prometheus' address in its environment:
       CC_DASHBOARDS_DIR=$here/grafana/dashboards CC_PROMETHEUS_URL=http://127.0.0.1:${prometheus_port} grafana server ...
  4. open the "checkout-chaos" folder: Checkout under chaos, Dependencies, Shopper communication.
MSG
