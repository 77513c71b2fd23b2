"""PromQL written by users (``activationQuery``), checked before it reaches Prometheus.

A ScaledObject may only read its own namespace: every vector selector in the query must pin it, with
``<label>="<the ScaledObject's namespace>"`` for a label that carries the namespace a series is about, and
no matcher on such a label may say anything else. The check is a small lexer, not a full parser: anything
it does not understand is refused, never passed through.
"""

from __future__ import annotations

import re

MAX_QUERY_CHARS = 1024
# Labels that carry the namespace a series is about: Kubernetes' own; ``route_namespace``, the KEDA HTTP
# add-on interceptor's (it runs in its own namespace, so its series' ``namespace`` is its own, and it names
# the route it holds requests for by ``route_name``/``route_namespace``); and ``exported_namespace``, what
# Prometheus renames a target's own ``namespace`` label to when it is scraped without honorLabels (e.g.
# kube-state-metrics). The server adds others with --activation-namespace-labels.
NAMESPACE_LABELS = ("namespace", "route_namespace", "exported_namespace")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

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


def validate_namespace_labels(labels: tuple[str, ...]) -> tuple[str, ...]:
    """``labels`` if each is a Prometheus label name (``__name__`` and other reserved names excluded)."""
    for label in labels:
        if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
            raise ValueError(f"{label!r} is not a label name (letters, digits and _, not starting with __)")
    return labels


def confine_query(query: str, namespace: str, namespace_labels: tuple[str, ...] = NAMESPACE_LABELS) -> str:
    """Return ``query`` if every selector in it is pinned to ``namespace`` by one of ``namespace_labels``
    and none of those labels is matched to anything else; else QueryError."""
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
            _check_selector(text, namespace, namespace_labels)
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


def _check_selector(text: str, namespace: str, namespace_labels: tuple[str, ...]) -> None:
    body = text[1:-1].strip()
    pinned = False
    pos = 0
    while pos < len(body):
        m = _MATCHER.match(body, pos)
        if m is None:
            raise QueryError(f"cannot read the label matchers in {text[:80]!r}")
        label, op, value = m.groups()
        if label in namespace_labels:
            if op != "=" or value != namespace:
                raise QueryError(
                    f'may only select {label}="{namespace}" (the ScaledObject\'s namespace), '
                    f'got {label}{op}"{value}"'
                )
            pinned = True
        pos = m.end()
    if not pinned:
        pins = " or ".join(f'{label}="{namespace}"' for label in namespace_labels)
        raise QueryError(f"selector {text[:80]!r} must include {pins}")
