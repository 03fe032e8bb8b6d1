#!/usr/bin/env python3
"""Writes docs/configuration.md, the configuration reference, from the schemas the software
enforces: the CRDs in crds/ (what the API server accepts in a PodSubnet or an IPBlock) and the
chart's values.schema.json with the defaults of its values.yaml (what helm accepts).

    scripts/gen-config-docs.py           rewrite docs/configuration.md
    scripts/gen-config-docs.py --check   exit 1 (with a diff) when the checked-in file is stale

Nothing in the output is written by hand: change a description in the schema, then rerun.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = ROOT / "crds"
CHART = ROOT / "charts" / "vnet-ipam"
OUT = ROOT / "docs" / "configuration.md"

# Order of the CRDs in the document: the one users write first.
CRD_ORDER = ["vnetipam.io_podsubnets.yaml", "vnetipam.io_ipblocks.yaml"]


def cell(text: str) -> str:
    """Text for one Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def code(value) -> str:
    if value is None or value == "":
        return ""
    text = value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
    return f"`{cell(text)}`" if "`" not in text else cell(text)


def type_of(schema: dict) -> str:
    t = schema.get("type", "")
    if isinstance(t, list):
        t = " or ".join(t)
    if t == "array" and isinstance(schema.get("items"), dict) and schema["items"].get("type"):
        t = f"array of {schema['items']['type']}"
    if t == "object" and isinstance(schema.get("additionalProperties"), dict):
        t = f"map of {schema['additionalProperties'].get('type', 'object')}"
    if schema.get("format"):
        t += f" ({schema['format']})"
    return t


def limits(schema: dict) -> list[str]:
    out = []
    if "enum" in schema:
        out.append("one of " + ", ".join(code(v) for v in schema["enum"]))
    for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                      ("exclusiveMaximum", "<")):
        if key in schema and not isinstance(schema[key], bool):
            out.append(f"{word} {schema[key]}")
    for key, word in (("minLength", "at least {} characters"),
                      ("maxLength", "at most {} characters"),
                      ("minItems", "at least {} items"), ("maxItems", "at most {} items"),
                      ("maxProperties", "at most {} entries")):
        if key in schema:
            out.append(word.format(schema[key]))
    if "pattern" in schema:
        out.append(f"matches {code(schema['pattern'])}")
    if schema.get("x-kubernetes-list-type") == "map":
        out.append("list keyed by " + ", ".join(schema.get("x-kubernetes-list-map-keys", [])))
    return out


_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")


def readable(expression: str) -> str:
    """A messageExpression as text: its string literals, with "…" for what is computed."""
    body = expression.split(".format(")[0]
    parts, last = [], 0
    for m in _LITERAL.finditer(body):
        if body[last:m.start()].strip(" +\n") and parts:
            parts.append("…")
        parts.append(re.sub(r"%[ds]", "…", m.group(1)))
        last = m.end()
    if body[last:].strip(" +\n)"):
        parts.append("…")
    return "".join(parts)


def rules(schema: dict) -> list[str]:
    """What each CEL rule says when it refuses a value."""
    out = []
    for rule in schema.get("x-kubernetes-validations", []):
        if "message" in rule:
            out.append(cell(rule["message"]))
        elif "messageExpression" in rule:
            out.append(cell(readable(rule["messageExpression"])))
    return out


# ---- CRDs ----------------------------------------------------------------------------------------

def crd_fields(schema: dict, path: str, rows: list[list[str]]) -> None:
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        field = f"{path}.{name}" if path else name
        if field in ("apiVersion", "kind", "metadata"):
            continue
        notes = limits(sub)
        if name in required:
            notes.insert(0, "required")
        text = cell(sub.get("description", ""))
        extra = rules(sub)
        if extra:
            text += " Refused with: " + "; ".join(e.rstrip(".") for e in extra) + "."
        rows.append([f"`{field}`", type_of(sub), code(sub.get("default")), cell("; ".join(notes)),
                     text])
        items = sub.get("items") if sub.get("type") == "array" else None
        if isinstance(items, dict) and items.get("properties"):
            crd_fields(items, f"{field}[]", rows)
        elif sub.get("properties"):
            crd_fields(sub, field, rows)


def crd_section(path: Path) -> list[str]:
    crd = yaml.safe_load(path.read_text())
    spec = crd["spec"]
    names = spec["names"]
    lines = []
    for version in spec["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        group_version = f"{spec['group']}/{version['name']}"
        lines += [f"### {names['kind']} ({group_version})", "",
                  cell(schema.get("description", "")), "",
                  f"Scope: {spec['scope']}. `kubectl get {names['plural']}`"
                  + (f" (short name `{', '.join(names.get('shortNames', []))}`)"
                     if names.get("shortNames") else "")
                  + f". Source: `crds/{path.name}`.", ""]
        object_rules = rules(schema)
        if object_rules:
            lines += ["Object-wide rules: " + "; ".join(object_rules), ""]
        columns = version.get("additionalPrinterColumns", [])
        if columns:
            lines += ["| Column | From | Meaning |", "|---|---|---|"]
            lines += [f"| {c['name']} | `{c['jsonPath']}` | {cell(c.get('description', ''))} |"
                      for c in columns]
            lines.append("")
        rows: list[list[str]] = []
        crd_fields(schema, "", rows)
        lines += ["| Field | Type | Default | Limits | Description |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    return lines


# ---- chart values --------------------------------------------------------------------------------

def lookup(values, dotted: list[str]):
    for key in dotted:
        if not isinstance(values, dict) or key not in values:
            return None
        values = values[key]
    return values


def value_rows(schema: dict, values: dict, path: list[str], rows: list[list[str]]) -> None:
    for name, sub in schema.get("properties", {}).items():
        key = [*path, name]
        props = sub.get("properties")
        if props and sub.get("additionalProperties") is False:
            value_rows(sub, values, key, rows)
            continue
        default = lookup(values, key)
        if isinstance(default, (dict, list)) and len(json.dumps(default)) > 80:
            shown = "see values.yaml"
        else:
            shown = '`""`' if default == "" else code(default)
        rows.append([f"`{'.'.join(key)}`", type_of(sub), shown, cell("; ".join(limits(sub))),
                     cell(sub.get("description", ""))])


def values_section() -> list[str]:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    lines = [f"Chart `{chart['name']}` {chart['version']} (app {chart['appVersion']}), "
             f"Kubernetes {chart.get('kubeVersion', 'any')}. Source: "
             "`charts/vnet-ipam/values.schema.json` and the defaults of `values.yaml`. helm "
             "refuses a value outside these limits, or a key not listed here, before it renders "
             "anything.", ""]
    table = ["| Key | Type | Default | Limits | Description |", "|---|---|---|---|---|"]
    general: list[list[str]] = []
    groups: list[tuple[str, dict]] = []
    for name, sub in schema["properties"].items():
        if name == "global":
            continue
        if sub.get("properties") and sub.get("additionalProperties") is False:
            groups.append((name, sub))
        else:
            value_rows({"properties": {name: sub}}, values, [], general)
    lines += ["### General", ""] + table + ["| " + " | ".join(r) + " |" for r in general] + [""]
    for name, sub in groups:
        rows: list[list[str]] = []
        value_rows(sub, values, [name], rows)
        lines += [f"### `{name}`", "", cell(sub.get("description", "")), ""] + table
        lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    return lines


def generate() -> str:
    lines = ["# Configuration reference", "",
             "<!-- Generated by scripts/gen-config-docs.py from crds/ and "
             "charts/vnet-ipam/values.schema.json: do not edit; rerun the script. -->", "",
             "vnet-ipam is configured in two places: the PodSubnet objects you create (which "
             "addresses pods get, in blocks of what size), and the Helm chart's values (how the "
             "controller and the node agents run). IPBlock objects are written by vnet-ipam "
             "itself; they are listed here because `kubectl get ipblocks` is how you watch it.",
             "", "## Custom resources", ""]
    others = sorted(p.name for p in CRD_DIR.glob("*.yaml") if p.name not in CRD_ORDER)
    for name in CRD_ORDER + others:
        lines += crd_section(CRD_DIR / name)
    lines += ["## Helm chart values", ""]
    lines += values_section()
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 with a diff when the file is out of date")
    args = parser.parse_args()
    text = generate()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current == text:
            return 0
        sys.stdout.writelines(difflib.unified_diff(
            current.splitlines(keepends=True), text.splitlines(keepends=True),
            str(OUT.relative_to(ROOT)), "generated"))
        print(f"\n{OUT.relative_to(ROOT)} is out of date: run scripts/gen-config-docs.py",
              file=sys.stderr)
        return 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
