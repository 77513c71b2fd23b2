"""PromQL written by users (``activationQuery``), checked before it reaches Prometheus.

A ScaledObject may only read its own namespace: every vector selector in the query must carry exactly
``namespace="<the ScaledObject's namespace>"`` and no other namespace matcher. The check is a small lexer,
not a full parser: anything it does not understand is refused, never passed through.
"""

from __future__ import annotations

import re

MAX_QUERY_CHARS = 1024

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<selector>\{[^{}]*\})
  | (?P<range>\[[^\[\]]*\])
  | (?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)(?:ms|[smhdwy])*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>(),=@])
  | (?P<space>\s+)
    """,
    re.VERBOSE,
)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
# Keywords that are followed by a parenthesised label list, not by an expression.
_LABEL_LIST = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "atan2",
    "inf",
    "nan",
    "start",
    "end",
    "group_left",
    "group_right",
}


class QueryError(ValueError):
    """The query is refused; the message says why and what is allowed."""


def confine_query(query: str, namespace: str) -> str:
    """Return ``query`` if every selector in it is pinned to ``namespace``; else QueryError."""
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"is {len(query)} characters; at most {MAX_QUERY_CHARS} are allowed")
    tokens = _lex(query)
    selectors = 0
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "ident" and text in _LABEL_LIST and nxt == ("op", "("):
            i = _skip_group(tokens, i + 1)
            continue
        if kind == "selector":
            _check_selector(text, namespace)
            selectors += 1
        elif (
            kind == "ident"
            and text not in _KEYWORDS
            and nxt != ("op", "(")  # a function or aggregation call
            and nxt[0] != "selector"  # a metric with matchers
            and not (nxt[0] == "ident" and nxt[1] in _LABEL_LIST)  # "sum by (...) (...)"
        ):
            raise QueryError(
                f"selector {text!r} has no label matchers: "
                f'every selector must include namespace="{namespace}"'
            )
        i += 1
    if selectors == 0:
        raise QueryError(f'must read at least one series, with namespace="{namespace}" in its selector')
    return query


def _lex(query: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if m is None or m.end() == pos:
            raise QueryError(f"cannot read the query at character {pos}: {query[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        if kind != "space":
            out.append((kind, m.group()))
        pos = m.end()
    return out


def _skip_group(tokens: list[tuple[str, str]], open_index: int) -> int:
    """Index after the ``( label, ... )`` starting at ``open_index``."""
    for j in range(open_index + 1, len(tokens)):
        if tokens[j] == ("op", ")"):
            return j + 1
        if tokens[j][0] != "ident" and tokens[j] != ("op", ","):
            raise QueryError("a by/without/on/ignoring list may only hold label names")
    raise QueryError("unbalanced parentheses after by/without/on/ignoring")


def _check_selector(text: str, namespace: str) -> None:
    body = text[1:-1].strip()
    pinned = False
    pos = 0
    while pos < len(body):
        m = _MATCHER.match(body, pos)
        if m is None:
            raise QueryError(f"cannot read the label matchers in {text[:80]!r}")
        label, op, value = m.groups()
        if label == "namespace":
            if op != "=" or value != namespace:
                raise QueryError(
                    f'may only select namespace="{namespace}" (the ScaledObject\'s), got {label}{op}"{value}"'
                )
            pinned = True
        pos = m.end()
    if not pinned:
        raise QueryError(f'selector {text[:80]!r} must include namespace="{namespace}"')
