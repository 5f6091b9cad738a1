"""The mutations `bench/mutate.py` applies to nodegc/policy: where each can be made (its sites,
in `ast.walk` order), the mutated module's source, and the lines a test must run to reach it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mutant:
    path: str  # relative to the tree
    site: int  # index among the sites of its module, in ast.walk order
    kind: str
    line: int
    what: str
    # The lines a test must run to run the mutant (its statement; a compound statement's
    # header); (0, 0): not inside a function (runs at import: every test file is run).
    reach: tuple[int, int] = (0, 0)


SWAP_CMP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
}
NEGATE_CMP = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
SYMBOL = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}

# A site: (kind, description, apply) where apply mutates the node it was found on in place and
# returns a replacement node for the parent (or None to keep the node itself).
Apply = Callable[[ast.AST], ast.AST | None]


def _sites(node: ast.AST) -> Iterator[tuple[str, str, Apply]]:
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in SWAP_CMP:
                new = SWAP_CMP[type(op)]
                yield "boundary", f"{SYMBOL[type(op)]} -> {SYMBOL[new]}", _set_op(i, new)
            if type(op) in NEGATE_CMP:
                new = NEGATE_CMP[type(op)]
                yield "negate", f"{SYMBOL[type(op)]} -> {SYMBOL[new]}", _set_op(i, new)
        for operand in [node.left, *node.comparators]:
            yield from _int_sites(operand)
    elif isinstance(node, ast.BoolOp):
        name, other = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        yield "and-or", f"{name} -> {other}", _swap_boolop
        for i in range(len(node.values)):
            yield "drop-term", f"{name}: term {i + 1} dropped", _drop_term(i)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "drop-not", "not x -> x", lambda n: n.operand  # type: ignore[attr-defined]
    elif isinstance(node, ast.If):
        yield "drop-if", "if condition -> False", _false_test
    elif isinstance(node, ast.BinOp):
        for operand in (node.left, node.right):
            yield from _int_sites(operand)
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("min", "max")
    ):
        other = "max" if node.func.id == "min" else "min"
        yield "min-max", f"{node.func.id} -> {other}", _rename_call(other)


def _int_sites(operand: ast.AST) -> Iterator[tuple[str, str, Apply]]:
    if (
        isinstance(operand, ast.Constant)
        and isinstance(operand.value, int)
        and not isinstance(operand.value, bool)
    ):
        value = operand.value

        def bump(_n: ast.AST, target: ast.Constant = operand) -> None:
            target.value = value + 1

        yield "off-by-one", f"{value} -> {value + 1}", bump


def _set_op(i: int, new: type[ast.cmpop]) -> Apply:
    def apply(n: ast.AST) -> None:
        n.ops[i] = new()  # type: ignore[attr-defined]

    return apply


def _swap_boolop(n: ast.AST) -> None:
    n.op = ast.Or() if isinstance(n.op, ast.And) else ast.And()  # type: ignore[attr-defined]


def _drop_term(i: int) -> Apply:
    def apply(n: ast.AST) -> ast.AST | None:
        values = [v for k, v in enumerate(n.values) if k != i]  # type: ignore[attr-defined]
        if len(values) == 1:
            return values[0]
        n.values = values  # type: ignore[attr-defined]
        return None

    return apply


def _false_test(n: ast.AST) -> None:
    n.test = ast.Constant(False)  # type: ignore[attr-defined]


def _rename_call(name: str) -> Apply:
    def apply(n: ast.AST) -> None:
        n.func.id = name  # type: ignore[attr-defined]

    return apply


def _docstring_free(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node in a stable order (ast.walk)."""
    yield from ast.walk(tree)


def mutants_of(tree_root: Path, rel: str) -> list[Mutant]:
    tree = ast.parse((tree_root / rel).read_text())
    reach = _reach(tree)
    out: list[Mutant] = []
    k = 0
    for node in _docstring_free(tree):
        for kind, what, _apply in _sites(node):
            where = reach.get(id(node), (0, 0))
            out.append(Mutant(rel, k, kind, getattr(node, "lineno", 0), what, where))
            k += 1
    return out


def _header(stmt: ast.stmt) -> tuple[int, int]:
    """The lines of a statement that run when it starts (a compound statement's header)."""
    head = getattr(stmt, "test", None) or getattr(stmt, "iter", None)
    if isinstance(stmt, ast.If | ast.While | ast.For | ast.AsyncFor) and head is not None:
        return stmt.lineno, head.end_lineno or stmt.lineno
    if isinstance(stmt, ast.With | ast.AsyncWith | ast.Try):
        return stmt.lineno, stmt.lineno
    return stmt.lineno, stmt.end_lineno or stmt.lineno


def _reach(tree: ast.AST) -> dict[int, tuple[int, int]]:
    """id(node) -> the lines of its innermost statement, for every node inside a function
    body (nodes outside a function, in defaults or decorators, are left out)."""
    out: dict[int, tuple[int, int]] = {}

    def visit(node: ast.AST, stmt: ast.stmt | None, in_body: bool) -> None:
        if in_body and stmt is not None:
            out[id(node)] = _header(stmt)
        for field, value in ast.iter_fields(node):
            children = value if isinstance(value, list) else [value]
            for child in children:
                if not isinstance(child, ast.AST):
                    continue
                body = in_body or (
                    isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                    and field == "body"
                )
                visit(child, child if isinstance(child, ast.stmt) else stmt, body)

    visit(tree, None, False)
    return out


def mutated_source(source: str, site: int) -> str:
    tree = ast.parse(source)
    k = 0
    for node in list(_docstring_free(tree)):
        for _kind, _what, apply in _sites(node):
            if k == site:
                replacement = apply(node)
                if replacement is not None:
                    _replace(tree, node, replacement)
                return ast.unparse(ast.fix_missing_locations(tree)) + "\n"
            k += 1
    raise IndexError(site)


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return
    raise LookupError("node not found")
