"""The shape of the code: small modules with one job each, short functions, one protocol.

Every source module stays under 400 lines and every function under 80, so that a reader can
hold one in view; the CLI holds no method: each method subcommand comes from the registry.
"""

import ast
import os

import pytest

SRC = os.path.join(os.path.dirname(__file__), "..", "src", "preimage")
MODULES = sorted(
    os.path.join(root, name)
    for root, _, names in os.walk(SRC)
    for name in names
    if name.endswith(".py")
)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: os.path.relpath(p, SRC))
def test_modules_and_functions_are_short(path):
    with open(path) as f:
        text = f.read()
    assert text.count("\n") <= 400, f"{path}: {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= 80, f"{path}:{node.lineno} {node.name} is {length} lines"


def test_every_public_function_and_class_says_what_it_does():
    missing = []
    for path in MODULES:
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            public = isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith(
                "_"
            )
            if public and ast.get_docstring(node) is None:
                missing.append(f"{os.path.relpath(path, SRC)}:{node.lineno} {node.name}")
    assert not missing, "no docstring: " + ", ".join(missing)
