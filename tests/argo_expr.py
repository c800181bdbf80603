"""An evaluator for the subset of expr-lang (github.com/expr-lang/expr, v1.17: what Argo Workflows v3.7 and v4
evaluate `retryStrategy.expression` and `depends` with) that xfer's templates use, with expr-lang's semantics:

- literals: integers, 'single'- or "double"-quoted strings (backslash escapes), true, false, [arrays];
- names with member access (`lastRetry.exitCode`, `plan.Succeeded`) into the environment's nested maps
  (Argo expands its flat `lastRetry.exitCode` keys into maps the same way);
- calls of environment functions (`asInt`: expr's builtin `int`, strconv.Atoi on a string);
- operators and precedence of expr's parser/operator/operator.go: unary `!`/`not` (50) and `-` (90) bind
  tighter than every binary operator; `==` `!=` `in` `matches` (20); `&&`/`and` (15); `||`/`or` (10); all left
  associative. So `!a matches b` is `(!a) matches b`, a type error, as it is in expr;
- types are checked at run time as expr does for `any` values: `!`, `&&`, `||` need booleans, `matches`
  strings; `==` between different types is false; `in` compares with `==`.

Regular expressions: expr compiles `matches` patterns with Go's RE2. Python's `re` reads the patterns used here
alike: only letters, spaces, `|`, groups and the `(?i)` flag are allowed (anything else is refused, so a new
pattern cannot silently mean something else in Go).
"""

from __future__ import annotations

import re

BINARY = {"||": 10, "or": 10, "&&": 15, "and": 15, "==": 20, "!=": 20, "in": 20, "matches": 20}
UNARY = {"!": 50, "not": 50, "-": 90}
TOKEN = re.compile(r"""\s*(?:(?P<num>\d+)|(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<name>[A-Za-z_][A-Za-z0-9_]*)
                   |(?P<op>\|\||&&|==|!=|!|-|\(|\)|\[|\]|,|\.))""", re.X)
SAFE_PATTERN = re.compile(r"(\(\?i\))?[A-Za-z0-9 ()|]*")


class ExprError(Exception):
    """A compile or run-time error of the expression (Argo then fails the node)."""


def tokenize(text: str) -> list[tuple[str, object]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = TOKEN.match(text, pos)
        if not found:
            raise ExprError(f"unexpected character at {pos}: {text[pos:pos + 10]!r}")
        pos = found.end()
        kind = found.lastgroup
        value = found.group(kind)
        if kind == "num":
            out.append(("num", int(value)))
        elif kind == "str":
            out.append(("str", bytes(value[1:-1], "utf-8").decode("unicode_escape")))
        elif kind == "name" and value in ("true", "false"):
            out.append(("bool", value == "true"))
        elif kind == "name" and value in ("in", "matches", "and", "or", "not"):
            out.append(("op", value))
        else:
            out.append((kind, value))
    return out


def go_regex(pattern: str) -> re.Pattern:
    if not SAFE_PATTERN.fullmatch(pattern):
        raise ExprError(f"pattern {pattern!r} uses syntax this evaluator does not vouch for (RE2 vs Python re)")
    return re.compile(pattern)


def _int(value):
    """expr's builtin int (Argo's asInt): strconv.Atoi for strings, truncation for numbers."""
    if isinstance(value, bool):
        raise ExprError("invalid argument for int (type bool)")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    raise ExprError(f"invalid operation: int({value})")


FUNCTIONS = {"asInt": _int, "int": _int}


class _Parser:
    def __init__(self, tokens, env):
        self.tokens, self.pos, self.env = tokens, 0, env

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", None)

    def take(self, value=None):
        token = self.peek()
        if value is not None and token[1] != value:
            raise ExprError(f"expected {value!r}, found {token[1]!r}")
        self.pos += 1
        return token

    def expression(self, min_precedence: int = 0):
        left = self.unary()
        while True:
            kind, op = self.peek()
            if kind != "op" or op not in BINARY or BINARY[op] < min_precedence:
                return left
            self.take()
            right = self.expression(BINARY[op] + 1)  # left associative
            left = _binary(op, left, right)

    def unary(self):
        kind, op = self.peek()
        if kind == "op" and op in UNARY:
            self.take()
            operand = self.expression(UNARY[op])
            if op == "-":
                if not isinstance(operand, int) or isinstance(operand, bool):
                    raise ExprError(f"invalid operation: -({operand!r})")
                return -operand
            if not isinstance(operand, bool):
                raise ExprError(f"invalid operation: !({operand!r}): not a bool")
            return not operand
        return self.postfix(self.primary())

    def primary(self):
        kind, value = self.take()
        if kind in ("num", "str", "bool"):
            return value
        if kind == "op" and value == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if kind == "op" and value == "[":
            items = []
            while self.peek()[1] != "]":
                items.append(self.expression())
                if self.peek()[1] == ",":
                    self.take()
            self.take("]")
            return items
        if kind == "name":
            if self.peek()[1] == "(":
                self.take("(")
                args = [] if self.peek()[1] == ")" else [self.expression()]
                self.take(")")
                if value not in FUNCTIONS or len(args) != 1:
                    raise ExprError(f"unknown function {value}")
                return FUNCTIONS[value](args[0])
            if value not in self.env:
                raise ExprError(f"unknown name {value}")
            return self.env[value]
        raise ExprError(f"unexpected token {value!r}")

    def postfix(self, value):
        while self.peek()[1] == ".":
            self.take()
            kind, member = self.take()
            if kind != "name" or not isinstance(value, dict) or member not in value:
                raise ExprError(f"cannot fetch {member} from {value!r}")
            value = value[member]
        return value


def _equal(a, b) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return False
    return a == b


def _binary(op, left, right):
    if op in ("||", "or", "&&", "and"):
        if not isinstance(left, bool) or not isinstance(right, bool):
            raise ExprError(f"invalid operation: {left!r} {op} {right!r}: not bools")
        return (left or right) if op in ("||", "or") else (left and right)
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op == "in":
        if not isinstance(right, list):
            raise ExprError(f"invalid operation: in {right!r}")
        return any(_equal(left, item) for item in right)
    if op == "matches":
        if not isinstance(left, str) or not isinstance(right, str):
            raise ExprError(f"invalid operation: {left!r} matches {right!r}: not strings")
        return go_regex(right).search(left) is not None
    raise ExprError(f"unknown operator {op}")


def evaluate(text: str, env: dict):
    parser = _Parser(tokenize(text), env)
    value = parser.expression()
    if parser.peek()[0] != "end":
        raise ExprError(f"unexpected {parser.peek()[1]!r} after the expression")
    return value


def eval_bool(text: str, env: dict) -> bool:
    """argoexpr.EvalBool: the expression must yield a bool."""
    value = evaluate(text, env)
    if not isinstance(value, bool):
        raise ExprError(f"unable to cast expression result {value!r} to bool")
    return value


def expand(flat: dict) -> dict:
    """Argo's expand.Expand: {"lastRetry.exitCode": "1"} -> {"lastRetry": {"exitCode": "1"}}."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def retry_scope(exit_code: str, message: str, status: str = "Failed", retries: int = 0) -> dict:
    """The environment Argo's processNodeRetries builds (buildRetryStrategyLocalScope, then GetFuncMap)."""
    return expand({"retries": str(retries), "lastRetry.exitCode": exit_code, "lastRetry.status": status,
                   "lastRetry.duration": "12.0", "lastRetry.message": message})


# --- depends --------------------------------------------------------------------------------------

RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed")


def resolve_depends(depends: str, tasks: list[str]) -> str:
    """Argo's dag.go: a bare task name means (T.Succeeded || T.Skipped || T.Daemoned)."""
    def bare(match):
        name, after = match.group(1), match.group(2)
        return match.group(0) if after else f"({name}.Succeeded || {name}.Skipped || {name}.Daemoned)"

    names = "|".join(sorted(map(re.escape, tasks), key=len, reverse=True))
    return re.sub(rf"\b({names})\b(\.\w+)?", bare, depends)


def depends_true(depends: str, phases: dict[str, str]) -> bool:
    """Evaluate a `depends` expression once every task it names has finished, with `phases` their phases."""
    env = {name.replace("-", "_"): {r: False for r in RESULTS} for name in phases}
    for name, phase in phases.items():
        env[name.replace("-", "_")].update({"Succeeded": phase == "Succeeded", "Failed": phase == "Failed",
                                            "Errored": phase == "Error", "Skipped": phase == "Skipped",
                                            "Omitted": phase == "Omitted"})
    return eval_bool(resolve_depends(depends, list(phases)).replace("-", "_"), env)


def when_true(when: str) -> bool:
    """Argo's `when` (govaluate, names read as strings) for the one shape xfer uses: `X == Y`."""
    found = re.fullmatch(r"\s*(\S+)\s*==\s*(\S+)\s*", when)
    if not found:
        raise ExprError(f"unsupported when expression {when!r}")

    def value(token):
        return {"true": True, "false": False}.get(token, token)

    return _equal(value(found.group(1)), value(found.group(2)))
