#!/usr/bin/env python3
"""Fails when a layer of src/ includes a header of a layer above it.

The table of layers is CMakeLists.txt's calm_layer() rows, which CMake writes
to build/calm-layers.txt as lines `NAME: DEP DEP ...`. A file under src/NAME/
may `#include "x/..."` only for x = NAME or a layer NAME reaches through its
DEPS (they link PUBLIC, so what a dependency reaches is below NAME too).
Also fails on a folder of src/ that has no row (a new layer needs its place
in the table first), on a dependency with no row, and on a cycle.

Usage: scripts/check-layers.py --table build/calm-layers.txt [--src src]
       scripts/check-layers.py --self-test   (the check finds what it should)
Run by ctest as Layers.NoUpwardIncludes and Layers.CheckFindsUpwardIncludes.
"""
import argparse
import os
import re
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"/]+)/[^"]*"')


def read_table(path):
    """{layer: [direct deps]} from the file CMake writes."""
    table = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, deps = line.partition(":")
            if not sep or not name.strip():
                raise SystemExit(f"{path}:{n}: not `layer: deps`: {line!r}")
            table[name.strip()] = deps.split()
    return table


def closure(table):
    """{layer: every layer below it}; errors for unknown deps and cycles."""
    errors, below, state = [], {}, {}

    def visit(name, path):
        if state.get(name) == "done":
            return below[name]
        if state.get(name) == "active":
            errors.append("cycle in the layer table: " + " -> ".join(path + [name]))
            return set()
        state[name] = "active"
        reach = set()
        for dep in table[name]:
            if dep not in table:
                errors.append(f"layer {name!r} depends on {dep!r}, which has no row")
                continue
            reach |= {dep} | visit(dep, path + [name])
        state[name], below[name] = "done", reach
        return reach

    for name in table:
        visit(name, [])
    return below, errors


def check(table, src):
    below, errors = closure(table)
    folders = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
    for folder in folders:
        if folder not in table:
            errors.append(f"src/{folder}/ has no row in the layer table: add "
                          f"calm_layer({folder} DEPS ...) to CMakeLists.txt")
    layers = set(folders) | set(table)
    for folder in folders:
        if folder not in table:
            continue
        allowed = {folder} | below[folder]
        for root, _, files in os.walk(os.path.join(src, folder)):
            for file in sorted(files):
                path = os.path.join(root, file)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for n, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if m and m.group(1) in layers and m.group(1) not in allowed:
                            rel = os.path.relpath(path, os.path.dirname(src))
                            errors.append(
                                f"{rel}:{n}: {folder} includes {m.group(1)}/, which is not "
                                f"below it (it may use: {' '.join(sorted(allowed))})")
    return errors


def self_test():
    """A tree with one upward include, one unknown folder, one cycle: all three found."""
    with tempfile.TemporaryDirectory() as tmp:
        for folder, text in {
            "low": '#include "low/a.h"\n',
            "high": '#include "low/a.h"\n#include "high/b.h"\n',
            "up": '#include "high/b.h"\n',  # up is declared below high: upward
            "stray": "",
        }.items():
            os.makedirs(os.path.join(tmp, "src", folder))
            with open(os.path.join(tmp, "src", folder, "x.cpp"), "w") as f:
                f.write(text)
        table = {"low": [], "high": ["low"], "up": ["low"], "a": ["b"], "b": ["a"]}
        errors = check(table, os.path.join(tmp, "src"))
    want = ["src/up/x.cpp:1: up includes high/", "src/stray/ has no row", "cycle in the layer"]
    missing = [w for w in want if not any(w in e for e in errors)]
    if missing or len(errors) != 3:
        print("self-test failed; errors were:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 1
    print("self-test: the check finds an upward include, a folder without a row and a cycle")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", help="build/calm-layers.txt, written by CMake")
    parser.add_argument("--src", default=os.path.join(os.path.dirname(__file__), "..", "src"))
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    if not args.table:
        parser.error("--table is required (configure with CMake first: build/calm-layers.txt)")
    if not os.path.isfile(args.table):
        parser.error(f"no table at {args.table} (configure with CMake first)")
    table = read_table(args.table)
    errors = check(table, os.path.normpath(args.src))
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        print(f"{len(errors)} layering error(s); the table is CMakeLists.txt's calm_layer() rows",
              file=sys.stderr)
        return 1
    print(f"{len(table)} layers, no upward includes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
