#!/usr/bin/python3
"""
check_source_layout: the structural rules of docs/ARCHITECTURE.md, checked on the source tree.

  1. common/'s sub-folders are layered: a file in folder k includes only headers of its own folder
     or of folders listed before it (the order of EDISTILL_COMMON_GROUPS in common/CMakeLists.txt).
  2. No include cycle between the project's files (headers and sources of common/, proto/,
     teacher_worker/, student_trainer/).
  3. No file in those folders over MAX_FILE_LINES lines, no function over MAX_FUNCTION_LINES lines
     (a function: a line at column 0 that opens a definition, to the next "}" at column 0).

Usage: check_source_layout.py SOURCE_DIR. Prints every violation with the file (and line) at fault
and exits 1 when there is one.
"""
import os
import re
import sys

MAX_FILE_LINES = 700
MAX_FUNCTION_LINES = 120
FOLDERS = ("common", "proto", "teacher_worker", "student_trainer")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# A definition starts at column 0 with a name followed by "(" and is not a declaration (no ";").
DEF_START = re.compile(r"^[A-Za-z_][\w \*]*\b(\w+)\s*\(")


def project_files(root):
    files = {}
    for top in FOLDERS:
        for d, subdirs, names in os.walk(os.path.join(root, top)):
            subdirs[:] = [s for s in subdirs if s != "onnx" or top != "proto"]
            for n in names:
                if n.endswith((".c", ".h")):
                    files.setdefault(n, []).append(os.path.join(d, n))
    return files


def common_groups(root):
    text = open(os.path.join(root, "common", "CMakeLists.txt")).read()
    m = re.search(r"set\(EDISTILL_COMMON_GROUPS ([^)]*)\)", text)
    return m.group(1).split() if m else []


def main(root):
    problems = []
    files = project_files(root)
    paths = sorted(p for ps in files.values() for p in ps)
    includes = {}
    for p in paths:
        text = open(p, errors="replace").read()
        includes[p] = [inc for inc in INCLUDE.findall(text) if os.path.basename(inc) in files]
        lines = text.split("\n")
        rel = os.path.relpath(p, root)
        if len(lines) - 1 > MAX_FILE_LINES:
            problems.append(f"{rel}: {len(lines) - 1} lines (limit {MAX_FILE_LINES})")
        start = name = None
        for i, line in enumerate(lines, 1):
            m = DEF_START.match(line)
            if start is None and m and not line.rstrip().endswith(";") and not line.startswith(("typedef", "struct", "enum", "union")):
                start, name = i, m.group(1)
            elif start is not None and line.startswith("}"):
                if i - start + 1 > MAX_FUNCTION_LINES:
                    problems.append(f"{rel}:{start}: function {name} is {i - start + 1} lines (limit {MAX_FUNCTION_LINES})")
                start = None
            elif start is not None and line.rstrip().endswith(";") and i == start:
                start = None

    groups = common_groups(root)
    if not groups:
        problems.append("common/CMakeLists.txt: EDISTILL_COMMON_GROUPS not found")
    rank = {g: k for k, g in enumerate(groups)}
    for p in paths:
        parts = os.path.relpath(p, root).split(os.sep)
        if parts[0] != "common":
            continue
        if len(parts) != 3 or parts[1] not in rank:
            problems.append(f"{os.path.relpath(p, root)}: not in one of common/'s folders {groups}")
            continue
        for inc in includes[p]:
            for target in files[os.path.basename(inc)]:
                tparts = os.path.relpath(target, root).split(os.sep)
                if tparts[0] == "common" and len(tparts) == 3 and rank.get(tparts[1], -1) > rank[parts[1]]:
                    problems.append(f"{os.path.relpath(p, root)}: includes {tparts[1]}/{tparts[2]}, a folder above "
                                    f"{parts[1]}/ in the layering {' < '.join(groups)}")

    # Include cycles: depth-first search over "file includes header" edges.
    graph = {p: [t for inc in includes[p] for t in files[os.path.basename(inc)]] for p in paths}
    state = {}

    def visit(p, stack):
        state[p] = 1
        stack.append(p)
        for t in graph[p]:
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                problems.append("include cycle: " + " -> ".join(os.path.relpath(c, root) for c in cycle))
            elif t not in state:
                visit(t, stack)
        stack.pop()
        state[p] = 2

    for p in paths:
        if p not in state:
            visit(p, [])

    for line in problems:
        print(line)
    print(f"check_source_layout: {len(paths)} files, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
