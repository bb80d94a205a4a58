"""Safe evaluation of filter expressions over columns, e.g. ``ifd < 1 and response_tokens >= 8``.

Only names, numbers, strings, booleans, comparisons, ``in``/``not in`` a list of constants
(``language in ['en', 'zh']``), ``and``/``or``/``not``, arithmetic and a few numpy functions
are allowed; nothing else is evaluated. ``minimum``/``maximum`` are
element-wise and ignore a NaN side, ``percentile(x, q)`` is the q-th percentile of the
values of ``x`` at hand (the stage's candidates; NaN left out) and ``fillnan(x, v)`` puts
``v`` where ``x`` is NaN.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable

import numpy as np

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow, ast.Mod: operator.mod}
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
            ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne}
_MEMBER = {ast.In: True, ast.NotIn: False}
_FUNCTIONS = {"abs": np.abs, "log": np.log, "exp": np.exp, "isnan": np.isnan,
              "isfinite": np.isfinite, "sqrt": np.sqrt, "minimum": np.fmin,
              "maximum": np.fmax, "percentile": np.nanpercentile,
              "fillnan": lambda x, value: np.where(np.isnan(x), value, x)}


def column_names(expression: str) -> set[str]:
    """Names of the columns an expression reads."""
    tree = _parse(expression)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called
            and n.id not in ("True", "False")}


def evaluate(expression: str, column: Callable[[str], np.ndarray]) -> np.ndarray:
    """Boolean mask from ``expression``; ``column(name)`` returns a 1-D array."""
    result = _eval(_parse(expression).body, column, expression)
    return np.asarray(result, dtype=bool)


def evaluate_numeric(expression: str, column: Callable[[str], np.ndarray]) -> np.ndarray:
    """Float array from ``expression`` (a column name or arithmetic over columns)."""
    return np.asarray(_eval(_parse(expression).body, column, expression), dtype=np.float64)


def _parse(expression: str) -> ast.Expression:
    try:
        return ast.parse(expression, mode="eval")
    except SyntaxError as e:
        raise ValueError(f"filter {expression!r}: not a valid expression ({e.msg})") from None


def _member(values, options: list) -> np.ndarray:
    """Element-wise ``value in options`` (a missing value is in no list)."""
    allowed = set(options)
    arr = np.asarray(values, dtype=object)
    return np.fromiter((v in allowed for v in arr.ravel()), bool, arr.size).reshape(arr.shape)


def _constants(node: ast.AST, text: str) -> list:
    """The values of a list or tuple of constants (the right side of ``in``)."""
    if isinstance(node, (ast.List, ast.Tuple)) and all(
            isinstance(e, ast.Constant) for e in node.elts):
        return [e.value for e in node.elts]
    raise ValueError(f"filter {text!r}: the right side of 'in' is a list of constants, "
                     f"not {ast.unparse(node)!r}")


def _eval(node: ast.AST, column: Callable[[str], np.ndarray], text: str):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool, str)):
        return node.value
    if isinstance(node, ast.Name):
        return column(node.id)
    if isinstance(node, ast.BoolOp):
        values = [np.asarray(_eval(v, column, text), dtype=bool) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        out = values[0]
        for v in values[1:]:
            out = combine(out, v)
        return out
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return np.logical_not(_eval(node.operand, column, text))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, column, text)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_eval(node.left, column, text),
                                      _eval(node.right, column, text))
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE or type(op) in _MEMBER
                                             for op in node.ops):
        left = _eval(node.left, column, text)
        out = True
        for op, right_node in zip(node.ops, node.comparators):
            if type(op) in _MEMBER:
                right = _constants(right_node, text)
                found = _member(left, right)
                out = np.logical_and(out, found if _MEMBER[type(op)] else ~found)
            else:
                right = _eval(right_node, column, text)
                out = np.logical_and(out, _COMPARE[type(op)](left, right))
            left = right
        return out
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS and not node.keywords):
        return _FUNCTIONS[node.func.id](*[_eval(a, column, text) for a in node.args])
    raise ValueError(f"filter {text!r}: {ast.unparse(node)!r} is not allowed "
                     f"(use column names, numbers, strings, comparisons, in/not in [...], "
                     f"and/or/not, + - * /, "
                     f"{', '.join(_FUNCTIONS)})")
