#!/usr/bin/env python3
"""Fails when an #include points up a layer (docs/DESIGN.md, "Layers").

Usage: tools/check_layers.py [REPO_ROOT]      (ctest runs it as the test include_layers)

Every C++ file under host/, model/ and telemetry/ (tests/ may include anything) belongs to one layer, found by the
longest folder prefix below; each #include "..." of a project file must name a file of
the same layer or of one the layer may use. Exit status 0 when all do, 1 (and one line
per offending #include) otherwise.
"""
import pathlib
import re
import sys

# Layer → its folder and the layers it may include, bottom first. The CMake targets
# (CMakeLists.txt, attnscope_<layer>) link the same way.
LAYERS = {
    "runtime": ("host/runtime/", set()),
    "telemetry": ("telemetry/", set()),
    "model": ("model/", {"runtime"}),
    "program": ("host/", {"runtime", "telemetry", "model"}),
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path):
    """The layer whose folder is the longest prefix of path, or None."""
    matches = [(len(folder), name) for name, (folder, _) in LAYERS.items() if path.startswith(folder)]
    return max(matches)[1] if matches else None


def upward_includes(root):
    """(file, line number, included path, why) for every include that breaks the layering."""
    problems = []
    files = {f for folder, _ in LAYERS.values() for f in (root / folder).glob("**/*.[ch]pp")}
    for file in sorted(files):
        rel = file.relative_to(root).as_posix()
        layer = layer_of(rel)
        allowed = LAYERS[layer][1] | {layer}
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            target = layer_of(match.group(1))
            if target is None:
                problems.append((rel, number, match.group(1), "not a file of any layer"))
            elif target not in allowed:
                problems.append((rel, number, match.group(1), f"{layer} may not include {target}"))
    return problems


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent)
    problems = upward_includes(root)
    for rel, number, target, why in problems:
        print(f"{rel}:{number}: #include \"{target}\": {why}")
    if problems:
        return 1
    print("include layers ok: " + "; ".join(
        f"{name} ({folder}) uses {', '.join(sorted(uses)) or 'nothing'}"
        for name, (folder, uses) in LAYERS.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
