"""A small linter: every module compiles, has a docstring, and no line is longer than 110 characters."""

import ast
import pathlib
import sys

problems = []
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.py")):
    text = path.read_text()
    tree = ast.parse(text, filename=str(path))
    if ast.get_docstring(tree) is None:
        problems.append(f"{path}:1: missing module docstring")
    for number, line in enumerate(text.splitlines(), 1):
        if len(line) > 110:
            problems.append(f"{path}:{number}: line too long ({len(line)} > 110)")
print("\n".join(problems) or f"lint: {sys.argv[1]} is clean")
sys.exit(1 if problems else 0)
