#!/usr/bin/env python3
"""Checks that each module of host/src imports only the layers below its own.

The layers are declared once, in host/layers.toml. A reference is any
`crate::NAME` path (in a `use`, or inline) or a `super::` path that climbs to
the crate root, outside comments. A module's own files may import each other.

    python3 scripts/layers.py [SRC_DIR [LAYERS_TOML]]

Exits 1, naming each upward or sideways import as file:line, when one exists;
exits 2 when a top-level module is missing from the table.
"""

import re
import sys
import tomllib
from pathlib import Path

ROOTS = {"lib.rs", "main.rs"}


def load_table(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def load_layers(path):
    table = load_table(path)["layers"]
    return {name: depth for depth, layer in enumerate(table) for name in layer}


def crate_uses(text, crates):
    """(line, crate) for each path into one of `crates` (`wasmtime::…`)."""
    for number, line in code_lines(text):
        for match in re.finditer(r"(?<![\w:])(\w+)::", line):
            if match.group(1) in crates:
                yield number, match.group(1)


def module_of(src, file):
    """The file's module path: ["engine", "sandbox"] for engine/sandbox.rs."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return parts


def code_lines(text):
    """Each line without its `//` comment and string literals."""
    for number, line in enumerate(text.splitlines(), 1):
        line = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
        yield number, line.split("//", 1)[0]


def references(text, path, modules):
    """(line, top-level module) for each path into another top-level module."""
    for number, line in code_lines(text):
        for match in re.finditer(r"\bcrate::(?:\{\s*)?(\w+)", line):
            yield number, match.group(1)
        # `crate::{a, b::c}`: every name at the brace's top level.
        for match in re.finditer(r"\bcrate::\{([^}]*)\}", line):
            for name in re.findall(r"(?:^|,)\s*(\w+)", match.group(1)):
                yield number, name
        for match in re.finditer(r"\b((?:super::)+)(\w+)", line):
            climbs = match.group(1).count("super::")
            if climbs == len(path) and match.group(2) in modules:
                yield number, match.group(2)


def check(src, layers, crates=None):
    crates = crates or {}
    src = Path(src)
    problems, unknown = [], set()
    files = sorted(src.rglob("*.rs"))
    modules = {module_of(src, f)[0] for f in files if f.name not in ROOTS}
    unknown = sorted(modules - layers.keys())
    for file in files:
        if file.name in ROOTS and file.parent == src:
            continue
        path = module_of(src, file)
        own = path[0]
        text = file.read_text()
        for number, crate in crate_uses(text, crates):
            if own not in crates[crate]:
                allowed = ", ".join(crates[crate])
                problems.append(
                    f"{file}:{number}: `{own}` names the crate `{crate}`, which only {allowed} may"
                )
        for number, target in references(text, path, modules):
            if target == own or target not in layers or own not in layers:
                continue
            if layers[target] <= layers[own]:
                where = "above" if layers[target] < layers[own] else "beside"
                problems.append(
                    f"{file}:{number}: `{own}` imports `{target}`, a layer {where} its own"
                )
    return problems, unknown


def main(argv):
    src = Path(argv[1]) if len(argv) > 1 else Path("host/src")
    table = Path(argv[2]) if len(argv) > 2 else src.parent / "layers.toml"
    layers = load_layers(table)
    crates = load_table(table).get("crates", {})
    problems, unknown = check(src, layers, crates)
    for name in unknown:
        print(f"layers: module `{name}` is in no layer of {table}: add it there", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    if unknown:
        return 2
    if problems:
        return 1
    count = sum(len(f.read_text().splitlines()) > 0 for f in src.rglob("*.rs"))
    print(f"layers: {count} files in {len(set(layers.values()))} layers; every import goes down")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
