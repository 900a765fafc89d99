"""A Python source file read through ``ast`` (never imported or run): its module-level string
constants and the string expressions built from them, the arguments of calls to a function, and
the strings of a list, tuple or dict assigned to a name. The security packages keep much of
their attack text this way (``attack_source_readers``).
"""

from __future__ import annotations

import ast
from typing import Any


class PythonSource:
    """Module-level string constants of a Python file, and string expressions using them."""

    def __init__(self, source: str) -> None:
        self.tree = ast.parse(source)
        self.names: dict[str, str] = {}
        for node in self.tree.body:
            target = node.targets[0] if isinstance(node, ast.Assign) else None
            if isinstance(node, ast.AnnAssign):
                target = node.target
            value = getattr(node, "value", None)
            if isinstance(target, ast.Name) and value is not None:
                text = self.value(value)
                if text is not None:
                    self.names[target.id] = text

    def value(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.value(node.left), self.value(node.right)
            return None if left is None or right is None else left + right
        return None

    def calls(self, func: str) -> list[dict[str, Any]]:
        """Keyword (and positional, as ``_0``, ``_1``...) arguments of every ``func(...)`` call."""
        found = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == func:
                args: dict[str, Any] = {}
                for index, arg in enumerate(node.args):
                    args[f"_{index}"] = self.value(arg)
                for keyword in node.keywords:
                    text = self.value(keyword.value)
                    if text is None and isinstance(keyword.value, (ast.Name, ast.Attribute)):
                        text = ast.unparse(keyword.value)  # an enum member or constant's name
                    args[str(keyword.arg)] = text  # None: computed at run time, not static text
                found.append(args)
        return found

    def string_list(self, name: str) -> list[str]:
        for node in ast.walk(self.tree):
            target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
            if isinstance(target, ast.Name) and target.id == name:
                value = getattr(node, "value", None)
                if isinstance(value, (ast.List, ast.Tuple)):
                    return [t for t in (self.value(e) for e in value.elts) if t]
                if isinstance(value, ast.Dict):
                    return [t for t in (self.value(e) for e in value.values) if t]
        return []

    def literal_calls(self, func: str) -> list[dict[str, Any]]:
        """Keyword arguments of every ``func(...)`` call as Python literals (strings, lists,
        dicts; implicit string concatenation included); a name or attribute (an enum member)
        as its source text; anything computed as ``None``."""
        found = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == func:
                args: dict[str, Any] = {}
                for keyword in node.keywords:
                    try:
                        args[str(keyword.arg)] = ast.literal_eval(keyword.value)
                    except ValueError:
                        text = self.value(keyword.value)
                        if text is None and isinstance(keyword.value, (ast.Name, ast.Attribute)):
                            text = ast.unparse(keyword.value)
                        args[str(keyword.arg)] = text
                found.append(args)
        return found

    def literal(self, name: str) -> Any:
        """The literal value (list, dict, string...) assigned to a module-level name."""
        for node in self.tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                if isinstance(target, ast.Name) and target.id == name:
                    return ast.literal_eval(node.value)
        raise KeyError(name)
