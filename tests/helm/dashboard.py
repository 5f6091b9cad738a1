"""The chart's Grafana dashboard, read the way Prometheus would see its queries. Standard library
only: scripts/check-helm (tests/helm/chart_check.py) and the real-scrape test
(tests/engine/test_metrics_scrape.py) both use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DASHBOARD_FILE = Path(__file__).resolve().parents[2] / "helm/nodegc/dashboards/nodegc.json"
# Grafana's variables, as a Prometheus query would see them once Grafana filled them in.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "6h", "$instance": ".*"}


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every panel query of a Grafana dashboard, with Grafana's variables filled in."""
    exprs = []
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            expr = str(target.get("expr", ""))
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            exprs.append(expr)
    return exprs
