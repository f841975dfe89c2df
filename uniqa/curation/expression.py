"""The ``--where`` language: comparisons of score columns and numbers, joined with ``and`` / ``or`` / ``not`` and
parentheses. Parsed by a small tokenizer + recursive-descent parser (never ``eval``); anything else is a
:class:`UniqaError` naming the position.

    quality >= 0.6 and aesthetics >= 0.5
    not (quality < 0.3 or aesthetics < 0.3)
    0.2 <= quality < 0.9          (a chain: both comparisons must hold)

Column names are score head names (letters, digits, ``_`` and ``-``, as ``uniqa score --heads`` allows).
An :class:`Expr` evaluates over a batch of float columns (``dict[str, np.ndarray]``) to a boolean mask.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import numpy as np

from uniqa.errors import UniqaError

OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
             "!=": operator.ne}
KEYWORDS = ("and", "or", "not")
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_\-]*)
  | (?P<op><=|>=|==|!=|<|>)
  | (?P<paren>[()])
""", re.VERBOSE)
HELP = ("use comparisons (< <= > >= == !=) of score columns and numbers, joined with and / or / not and "
        "parentheses, e.g. \"quality >= 0.6 and aesthetics >= 0.5\"")


def number_text(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


@dataclass(frozen=True)
class Compare:
    left: str | float  # a column name or a number
    op: str
    right: str | float

    def columns(self) -> set[str]:
        return {side for side in (self.left, self.right) if isinstance(side, str)}

    def mask(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        left, right = (batch[s] if isinstance(s, str) else s for s in (self.left, self.right))
        with np.errstate(invalid="ignore"):
            return np.asarray(OPERATORS[self.op](left, right), dtype=bool)

    def thresholds(self) -> list[tuple[str, str, float]]:
        if isinstance(self.left, str) and not isinstance(self.right, str):
            return [(self.left, self.op, float(self.right))]
        if isinstance(self.right, str) and not isinstance(self.left, str):
            return [(self.right, self.op, float(self.left))]
        return []

    def __str__(self) -> str:
        return " ".join(s if isinstance(s, str) else number_text(s) for s in (self.left, self.op, self.right))


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    parts: tuple[Expr, ...]

    def columns(self) -> set[str]:
        return set().union(*(p.columns() for p in self.parts))

    def mask(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        combine = np.logical_and if self.op == "and" else np.logical_or
        out = self.parts[0].mask(batch)
        for part in self.parts[1:]:
            out = combine(out, part.mask(batch))
        return out

    def thresholds(self) -> list[tuple[str, str, float]]:
        return [t for p in self.parts for t in p.thresholds()]

    def __str__(self) -> str:
        return f" {self.op} ".join(f"({p})" if isinstance(p, BoolOp) and p.op != self.op else str(p)
                                   for p in self.parts)


@dataclass(frozen=True)
class Not:
    part: Expr

    def columns(self) -> set[str]:
        return self.part.columns()

    def mask(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return ~self.part.mask(batch)

    def thresholds(self) -> list[tuple[str, str, float]]:
        return self.part.thresholds()

    def __str__(self) -> str:
        return f"not {self.part}" if isinstance(self.part, (Compare, Not)) else f"not ({self.part})"


Expr = Compare | BoolOp | Not


def conjuncts(expr: Expr) -> tuple[Expr, ...]:
    """The top-level ``and`` parts (a rejected row's reason names the ones it failed)."""
    return expr.parts if isinstance(expr, BoolOp) and expr.op == "and" else (expr,)


def tokenize(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, position) of each token; kind is number | name | keyword | op | paren."""
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise UniqaError(f"--where {text!r}: unexpected {text[pos]!r} at position {pos + 1}; {HELP}")
        kind = m.lastgroup
        if kind != "space":
            word = m.group()
            if kind == "name" and word.lower() in KEYWORDS:
                kind, word = "keyword", word.lower()
            tokens.append((kind, word, pos + 1))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text, self.tokens, self.i = text, tokenize(text), 0

    def fail(self, what: str) -> UniqaError:
        if self.i < len(self.tokens):
            _, word, pos = self.tokens[self.i]
            return UniqaError(f"--where {self.text!r}: {what}, found {word!r} at position {pos}; {HELP}")
        return UniqaError(f"--where {self.text!r}: {what}, found the end of the expression; {HELP}")

    def peek(self, *words: str) -> bool:
        return self.i < len(self.tokens) and self.tokens[self.i][1] in words

    def parse(self) -> Expr:
        if not self.tokens:
            raise UniqaError(f"--where is empty; {HELP}")
        expr = self.boolean("or")
        if self.i < len(self.tokens):
            raise self.fail("expected and / or / the end")
        return expr

    def boolean(self, op: str) -> Expr:
        parts = [self.boolean("and") if op == "or" else self.negation()]
        while self.peek(op):
            self.i += 1
            parts.append(self.boolean("and") if op == "or" else self.negation())
        return parts[0] if len(parts) == 1 else BoolOp(op, tuple(parts))

    def negation(self) -> Expr:
        if self.peek("not"):
            self.i += 1
            return Not(self.negation())
        if self.peek("("):
            self.i += 1
            expr = self.boolean("or")
            if not self.peek(")"):
                raise self.fail("expected ')'")
            self.i += 1
            return expr
        return self.comparison()

    def comparison(self) -> Expr:
        operands, ops = [self.operand()], []
        while self.i < len(self.tokens) and self.tokens[self.i][0] == "op":
            ops.append(self.tokens[self.i][1])
            self.i += 1
            operands.append(self.operand())
        if not ops:
            raise self.fail("expected a comparison operator (< <= > >= == !=)")
        parts = tuple(Compare(a, op, b) for a, op, b in zip(operands, ops, operands[1:]))
        for part in parts:
            if not part.columns():
                raise UniqaError(f"--where {self.text!r}: {part} compares two numbers; name a score column")
        return parts[0] if len(parts) == 1 else BoolOp("and", parts)

    def operand(self) -> str | float:
        if self.i >= len(self.tokens) or self.tokens[self.i][0] not in ("name", "number"):
            raise self.fail("expected a score column or a number")
        kind, word, _ = self.tokens[self.i]
        self.i += 1
        return float(word) if kind == "number" else word


def parse(text: str) -> Expr:
    """``text`` -> an :class:`Expr`, or one :class:`UniqaError` saying where and what was expected."""
    return _Parser(str(text)).parse()


def check_columns(expr: Expr, available: list[str], text: str = "") -> None:
    """Every column the expression names must be one of ``available`` (the score columns)."""
    unknown = sorted(expr.columns() - set(available))
    if unknown:
        raise UniqaError(f"--where {text or str(expr)!r}: unknown column {unknown[0]!r}; score columns are "
                         f"{sorted(available)}")
