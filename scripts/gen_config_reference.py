"""Generate docs/hardware-config.md, the hardware-config reference, from the
pydantic schema in simulator/config.py, so that it cannot drift from it
(tests/test_docs.py fails when the committed file is stale).

    python scripts/gen_config_reference.py          # rewrite the file
    python scripts/gen_config_reference.py --check  # exit 1 if it is stale
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.config import HardwareConfig  # noqa: E402

OUT = ROOT / "docs" / "hardware-config.md"


def _type(prop: dict, defs: dict) -> tuple[str, dict | None]:
    if "$ref" in prop:
        name = prop["$ref"].split("/")[-1]
        return name, defs[name]
    if "anyOf" in prop:
        kinds = [_type(p, defs)[0] for p in prop["anyOf"]]
        return " or ".join(k for k in kinds if k != "null") + (" or null" if "null" in kinds else ""), None
    if prop.get("type") == "object" and "additionalProperties" in prop:
        inner, _ = _type(prop["additionalProperties"], defs)
        return f"map of {inner}", None
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"]), None
    return prop.get("type", "any"), None


def _range(prop: dict) -> str:
    parts = []
    for key, sym in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                     ("exclusiveMaximum", "<"), ("minLength", "length >=")):
        if key in prop:
            parts.append(f"{sym} {prop[key]}")
    for alt in prop.get("anyOf", []):
        parts += [p for p in [_range(alt)] if p]
    return ", ".join(parts)


def _rows(schema: dict, defs: dict, prefix: str, out: list, seen: set):
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        kind, sub = _type(prop, defs)
        default = "required" if name in required else f"`{json.dumps(prop['default'])}`" \
            if "default" in prop else "(see below)"
        desc = (prop.get("description") or (sub or {}).get("description") or "").replace("\n", " ")
        out.append(f"| `{path}` | {kind} | {default} | {_range(prop)} | {desc} |")
        if sub is not None and path not in seen:
            seen.add(path)
            _rows(sub, defs, path + ".", out, seen)
        ap = prop.get("additionalProperties")
        if isinstance(ap, dict) and "$ref" in ap:
            ref = ap["$ref"].split("/")[-1]
            _rows(defs[ref], defs, path + ".<buffer>.", out, seen)


def render() -> str:
    schema = HardwareConfig.model_json_schema()
    rows: list[str] = []
    _rows(schema, schema.get("$defs", {}), "", rows, set())
    head = [
        "# Hardware config reference",
        "",
        "Generated from the schema in `simulator/config.py` by `scripts/gen_config_reference.py`;",
        "do not edit by hand (a test fails when this file is stale). Units are in each description.",
        "Unknown fields are rejected. A bad file gets one line naming the file, the field, the",
        "value and what is allowed, and exit code 2. Shipped examples: `hw_configs/`.",
        "",
        "| field | type | default | allowed | meaning |",
        "|---|---|---|---|---|",
    ]
    return "\n".join(head + rows) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = ap.parse_args()
    text = render()
    if args.check:
        stale = not OUT.exists() or OUT.read_text() != text
        print(f"{OUT.relative_to(ROOT)} is {'STALE: run scripts/gen_config_reference.py' if stale else 'up to date'}")
        sys.exit(1 if stale else 0)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
