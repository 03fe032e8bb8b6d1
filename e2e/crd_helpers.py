"""Helpers for the CRD e2e tests: objects, kubectl error parsing, the shared case table."""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = ROOT / "crds"
CASES_FILE = ROOT / "unit" / "api" / "testdata" / "validation_cases.json"
CRD_NAMES = ("ipblocks.vnetipam.io", "podsubnets.vnetipam.io")
API_VERSION = "vnetipam.io/v1alpha1"

AZURE_SUBNET_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/"
                   "providers/Microsoft.Network/virtualNetworks/vnet/subnets/pods")


def block_name(subnet: str, cidr: str) -> str:
    """The derived IPBlock name: <podsubnet>-<address>-<length>."""
    return subnet + "-" + re.sub(r"[.:/]", "-", cidr)


PROGRAMMED_ON = "vnetipam.io/programmed-on"


def block_phase(block: dict) -> str:
    """An IPBlock's phase as every component reads it: status.phase, or Ready for a block the
    controller created already programmed (annotated vnetipam.io/programmed-on) whose phase has
    not changed since; "" for a block with neither."""
    status = block.get("status") or {}
    if "phase" in status:
        return status["phase"]
    return "Ready" if (block["metadata"].get("annotations") or {}).get(PROGRAMMED_ON) else ""


def block_capacity(block: dict) -> int:
    """An IPBlock's capacity as every component reads it: status.capacity, or the addresses of
    spec.cidr for a block created already programmed whose status the controller never wrote."""
    status = block.get("status") or {}
    if "capacity" in status:
        return int(status["capacity"])
    if block_phase(block) != "Ready":
        return 0
    # The codec's count: the addresses of the CIDR, at most 2^62 (an int64 for every IPv6 size).
    return min(ipaddress.ip_network(block["spec"]["cidr"]).num_addresses, 1 << 62)


def ipblock(cidr: str, node: str, subnet: str = "pods", name: str | None = None) -> dict:
    return {
        "apiVersion": API_VERSION, "kind": "IPBlock",
        "metadata": {"name": name if name is not None else block_name(subnet, cidr)},
        "spec": {"podSubnet": subnet, "cidr": cidr, "nodeName": node},
    }


def podsubnet(name: str = "pods", **spec) -> dict:
    return {"apiVersion": API_VERSION, "kind": "PodSubnet",
            "metadata": {"name": name}, "spec": spec}


def resource(obj: dict) -> str:
    return {"IPBlock": "ipblocks.vnetipam.io", "PodSubnet": "podsubnets.vnetipam.io"}[obj["kind"]]


# ---- kubectl's rendering of a 422 Invalid ------------------------------------------------

@dataclass(frozen=True)
class FieldError:
    path: str  # "" for an error on the whole object (kubectl prints "<nil>")
    text: str  # the rest: "Invalid value: ...: <message>"

    def __str__(self) -> str:
        return f"{self.path or '<nil>'}: {self.text}"


_INVALID = re.compile(r'^The \S+ "[^"]*" is invalid: ?(.*)$')


def _field_error(item: str) -> FieldError:
    path, sep, text = item.partition(": ")
    if not sep:
        return FieldError("", item)
    return FieldError("" if path == "<nil>" else path, text)


def parse_invalid(stderr: str) -> list[FieldError]:
    """The field errors of kubectl's 'The <Kind> "<name>" is invalid: ...' message
    (one error inline, several as '* ' lines). Other stderr lines (warnings) are ignored."""
    errors: list[FieldError] = []
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        m = _INVALID.match(line)
        if not m:
            continue
        if m.group(1).strip():
            errors.append(_field_error(m.group(1)))
            continue
        for item in lines[i + 1:]:
            if not item.startswith("* "):
                break
            errors.append(_field_error(item[2:]))
    return errors


def path_matches(reported: str, expected: str) -> bool:
    """The case table's rule: the reported path starts with the expected one; "" (a rule on
    the whole object) must be reported without a path."""
    if expected == "":
        return reported == ""
    return reported.startswith(expected)


def find_error(errors: list[FieldError], path: str, message: str) -> FieldError | None:
    for e in errors:
        if path_matches(e.path, path) and message in e.text:
            return e
    return None


# ---- the shared case table ----------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    object: dict
    old: dict | None
    path: str | None  # None: valid
    message: str

    @property
    def valid(self) -> bool:
        return self.path is None


def load_cases() -> list[Case]:
    doc = json.loads(CASES_FILE.read_text())
    return [Case(name=c["name"], object=c["object"], old=c.get("old"), path=c.get("path"),
                 message=c.get("message", "")) for c in doc["cases"]]


def without_status(obj: dict) -> dict:
    out = copy.deepcopy(obj)
    out.pop("status", None)
    return out


def with_resource_version(obj: dict, rv: str) -> dict:
    out = copy.deepcopy(obj)
    out.setdefault("metadata", {})["resourceVersion"] = rv
    return out
