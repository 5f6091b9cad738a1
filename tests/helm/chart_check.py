"""Checks of the Helm chart's renderings that helm and kubernetes-validate cannot make themselves.

Run by scripts/check-helm with the repository's virtualenv (it needs PyYAML and jsonschema, which
kubernetes-validate brings, and promql-parser):

    chart_check.py contract CHART
        values.schema.json and values.yaml's `config:` mirror nodegc's settings exactly (every
        section and key of config.toml, no more), and the chart's appVersion is nodegc's version.
    chart_check.py inspect RENDERED OUTDIR
        Split one `helm template` output: core Kubernetes documents to OUTDIR/core.yaml (for
        kubernetes-validate), the ConfigMap's config.toml to OUTDIR/config.toml, the nodegc
        container's args to OUTDIR/args (one per line); validate the Prometheus Operator
        documents (ServiceMonitor, PrometheusRule) against the parts of their CRD schemas the
        chart uses, and parse every alert expression as PromQL; the Grafana dashboard
        ConfigMap holds helm/nodegc/dashboards/nodegc.json as is, and every panel query parses
        as PromQL. Prints the kinds found.

Exit status 0 when every check passes, 1 with one line per problem on stderr otherwise.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import promql_parser
import yaml
from dashboard import DASHBOARD_FILE, dashboard_queries  # tests/helm/dashboard.py, beside this

CRD_GROUP = "monitoring.coreos.com/"
CONFIG_KEY = "config.toml"
CONTAINER = "nodegc"
# Keys of config.toml the chart derives from `runtime` when values.yaml leaves them out.
DERIVED = {("runtime", "type"), ("runtime", "endpoint")}

_PROM_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
    r"(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_ACTIONS = (
    "replace",
    "keep",
    "drop",
    "hashmod",
    "labelmap",
    "labeldrop",
    "labelkeep",
    "lowercase",
    "uppercase",
    "keepequal",
    "dropequal",
)
_CAMEL = {
    "hashmod": "HashMod",
    "labelmap": "LabelMap",
    "labeldrop": "LabelDrop",
    "labelkeep": "LabelKeep",
    "keepequal": "KeepEqual",
    "dropequal": "DropEqual",
}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": _STRING_MAP,
        "matchExpressions": {"type": "array", "items": {"type": "object"}},
    },
}
_RELABEL = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sourceLabels": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
        },
        "separator": {"type": "string"},
        "targetLabel": {"type": "string"},
        "regex": {"type": "string"},
        "modulus": {"type": "integer", "minimum": 0},
        "replacement": {"type": "string"},
        "action": {"enum": [*_ACTIONS, *(_CAMEL.get(a, a.capitalize()) for a in _ACTIONS)]},
    },
}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}

# The parts of prometheus-operator's monitoring.coreos.com/v1 CRD schemas that the chart renders,
# with their field names and types (unknown fields are errors, as the API server prunes them).
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "jobLabel": {"type": "string"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _PROM_DURATION,
                            "scrapeTimeout": _PROM_DURATION,
                            "honorLabels": {"type": "boolean"},
                            "relabelings": {"type": "array", "items": _RELABEL},
                            "metricRelabelings": {"type": "array", "items": _RELABEL},
                        },
                    },
                },
            },
        },
    },
}
PROMETHEUS_RULE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _PROM_DURATION,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "alert": {"type": "string", "minLength": 1},
                                        "record": {"type": "string", "minLength": 1},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": _PROM_DURATION,
                                        "keep_firing_for": _PROM_DURATION,
                                        "labels": _STRING_MAP,
                                        "annotations": _STRING_MAP,
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}
CRD_SCHEMAS = {"ServiceMonitor": SERVICE_MONITOR, "PrometheusRule": PROMETHEUS_RULE}


def _problems_in_crd(doc: dict[str, Any]) -> Iterator[str]:
    kind = doc.get("kind", "?")
    schema = CRD_SCHEMAS.get(kind)
    if schema is None:
        yield f"{kind}: no schema here for this monitoring.coreos.com kind"
        return
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path) or "(document)"
        yield f"{kind}: {where}: {error.message}"
    if kind != "PrometheusRule":
        return
    names: set[str] = set()
    for group in doc.get("spec", {}).get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record") or "?"
            if ("alert" in rule) == ("record" in rule):
                yield f"PrometheusRule: rule {name}: needs exactly one of alert and record"
            if name in names:
                yield f"PrometheusRule: rule {name}: defined twice"
            names.add(name)
            try:
                promql_parser.parse(str(rule.get("expr", "")))
            except ValueError as exc:
                yield f"PrometheusRule: rule {name}: expr is not valid PromQL: {exc}"


def _problems_in_dashboard(doc: dict[str, Any]) -> Iterator[str]:
    """A dashboard ConfigMap: labelled for the sidecar, the chart's file as is, valid JSON, every
    query valid PromQL."""
    name = doc.get("metadata", {}).get("name", "?")
    for key, text in doc.get("data", {}).items():
        try:
            dashboard = json.loads(text)
        except ValueError as exc:
            yield f"ConfigMap {name}: {key} is not JSON: {exc}"
            continue
        if dashboard != json.loads(DASHBOARD_FILE.read_text(encoding="utf-8")):
            yield f"ConfigMap {name}: {key} is not {DASHBOARD_FILE.name} as the chart holds it"
        queries = dashboard_queries(dashboard)
        if not queries:
            yield f"ConfigMap {name}: {key} has no panel query"
        for expr in queries:
            try:
                promql_parser.parse(expr)
            except ValueError as exc:
                yield f"ConfigMap {name}: {key}: {expr!r} is not valid PromQL: {exc}"


def inspect(rendered: Path, outdir: Path) -> list[str]:
    """Split a rendering into OUTDIR and check its CRD documents; return the problems."""
    problems: list[str] = []
    docs = [d for d in yaml.safe_load_all(rendered.read_text(encoding="utf-8")) if d]
    core = [d for d in docs if not str(d.get("apiVersion", "")).startswith(CRD_GROUP)]
    crds = [d for d in docs if str(d.get("apiVersion", "")).startswith(CRD_GROUP)]
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "core.yaml").write_text(yaml.safe_dump_all(core, sort_keys=False), encoding="utf-8")
    configmaps = [
        d for d in core if d.get("kind") == "ConfigMap" and CONFIG_KEY in d.get("data", {})
    ]
    if len(configmaps) != 1:
        problems.append(f"expected one ConfigMap holding {CONFIG_KEY}, found {len(configmaps)}")
    else:
        (outdir / "config.toml").write_text(configmaps[0]["data"][CONFIG_KEY], encoding="utf-8")
    containers = [
        c
        for d in core
        if d.get("kind") == "DaemonSet"
        for c in d["spec"]["template"]["spec"]["containers"]
        if c.get("name") == CONTAINER
    ]
    if len(containers) != 1:
        problems.append(f"expected one DaemonSet container {CONTAINER!r}, found {len(containers)}")
    else:
        args = [str(a) for a in containers[0].get("args", [])]
        (outdir / "args").write_text("".join(f"{a}\n" for a in args), encoding="utf-8")
    for doc in crds:
        problems.extend(_problems_in_crd(doc))
    for doc in core:
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"].endswith("-dashboard"):
            problems.extend(_problems_in_dashboard(doc))
    print(" ".join(sorted(str(d.get("kind")) for d in docs)))
    return problems


def contract(chart: Path) -> list[str]:
    """Problems where the chart's config schema or values differ from nodegc's settings."""
    import nodegc
    from nodegc.config import Settings

    problems: list[str] = []
    settings = {
        section: set(field.annotation.model_fields)  # type: ignore[union-attr]
        for section, field in Settings.model_fields.items()
    }
    schema = json.loads((chart / "values.schema.json").read_text(encoding="utf-8"))
    config_schema = schema["properties"]["config"]
    if config_schema.get("additionalProperties") is not False:
        problems.append("values.schema.json: config must forbid additional properties")
    schema_sections = config_schema["properties"]
    if set(schema_sections) != set(settings):
        problems.append(
            f"values.schema.json: config sections {sorted(schema_sections)} differ from "
            f"nodegc's {sorted(settings)}"
        )
    for section, keys in settings.items():
        part = schema_sections.get(section, {})
        if part.get("additionalProperties") is not False:
            problems.append(f"values.schema.json: config.{section} must forbid unknown keys")
        if set(part.get("properties", {})) != keys:
            problems.append(
                f"values.schema.json: config.{section} keys {sorted(part.get('properties', {}))} "
                f"differ from nodegc's {sorted(keys)}"
            )
    values = yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8"))
    config = values.get("config", {})
    for section, keys in settings.items():
        present = set(config.get(section) or {})
        missing = {k for k in keys - present if (section, k) not in DERIVED}
        if missing:
            problems.append(f"values.yaml: config.{section} lacks {sorted(missing)}")
    chart_meta = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
    if str(chart_meta.get("appVersion")) != nodegc.__version__:
        problems.append(
            f"Chart.yaml: appVersion {chart_meta.get('appVersion')} is not nodegc's version "
            f"{nodegc.__version__}"
        )
    return problems


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "contract":
        problems = contract(Path(argv[1]))
    elif len(argv) == 3 and argv[0] == "inspect":
        problems = inspect(Path(argv[1]), Path(argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
