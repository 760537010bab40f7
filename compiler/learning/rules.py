"""Learning rules: a small textual form over named local variables, and the built-in rules.

A rule is one or two statements, each a sum of signed products of local variables scaled
by powers of two (the learning rate is a shift)::

    de = -2^-3 * e + 2^-6 * sg * x1        # eligibility tag, updated every step
    dw = 2^-20 * m * e                     # weight, updated at the end of every epoch

Grammar (whitespace is free, ``#`` starts a comment, statements are separated by ``;`` or
new lines)::

    program  := stmt { (";" | NEWLINE) stmt }
    stmt     := ("dw" | "de") "=" sum
    sum      := ["+" | "-"] product { ("+" | "-") product }
    product  := factor { "*" factor }
    factor   := power | INT | var | "(" var ("+" | "-") INT ")"
    power    := "2" ("^" | "**") ["+" | "-"] INT
    var      := NAME [ "." NAME ]

Every product needs at least one variable; its integer factors multiply into a signed
mantissa (``constant_bits`` wide) and its powers of two add up to its shift.

Local variables (Box 3 of Neftci, Mostafa & Zenke: what the synapse's own core holds):

======  ======  ============================================================
name    side    meaning
======  ======  ============================================================
x0      pre     1 if the presynaptic neuron's spike arrived on the axon this step
x1, x2  pre     presynaptic traces, kept per input axon (``trace_bits`` unsigned)
y0      post    1 if the postsynaptic neuron spiked this step
y1, y2  post    postsynaptic traces (``trace_bits`` unsigned)
sg      post    surrogate derivative of the post voltage, from the lookup table
m       post    third factor (error / reward), ``third_factor_bits`` signed; it reaches
                the core over the error/modulation channel
v, u    post    the post neuron's voltage and current registers
w       syn     the synapse's weight (9-bit signed value, without the exponent)
e       syn     the synapse's eligibility tag (``tag_bits`` signed)
======  ======  ============================================================

``post.v`` (or ``<post population>.v``) and ``syn.w`` are accepted spellings of ``v`` and
``w``. Anything else that names real state elsewhere -- ``pre.v`` (the presynaptic
neuron's voltage), ``out.v`` (another population), ``target``, ``reward``, transposed or
feedback weights -- is not local to the synapse's core and is rejected with a
:class:`~neurochip.core.errors.LocalityError` that names it (see :func:`resolve_variable`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from neurochip.core.errors import LearningConfigError, LocalityError

__all__ = [
    "BUILTIN_RULES",
    "LOCAL_VARIABLES",
    "POST_VARS",
    "PRE_VARS",
    "SYN_VARS",
    "Factor",
    "Rule",
    "RuleTemplate",
    "Term",
    "builtin_rule",
    "parse_rule",
    "resolve_variable",
]

PRE_VARS = ("x0", "x1", "x2")
POST_VARS = ("y0", "y1", "y2", "sg", "m", "v", "u")
SYN_VARS = ("w", "e")
LOCAL_VARIABLES = PRE_VARS + POST_VARS + SYN_VARS
TARGETS = ("dw", "de")

# Names that denote real state which is *not* local to a synapse's core, with the reason.
_NONLOCAL_NAMES = {
    "target": "targets are produced off the core; they reach a layer only through the "
              "error channel, as the third factor m",
    "label": "labels are produced off the core; they reach a layer only through the "
             "error channel, as the third factor m",
    "reward": "the reward is produced off the core; it reaches the synapse only as the "
              "third factor m over the modulation channel",
    "error": "errors of other neurons reach this core only as the third factor m",
    "err": "errors of other neurons reach this core only as the third factor m",
    "delta": "errors of other layers reach this core only as the third factor m",
    "wT": "the transposed forward weights live in the synapse memory of the next layer's "
          "core (weight transport); use random feedback (FA/DFA) delivered as m",
    "w_T": "the transposed forward weights live in the synapse memory of the next layer's "
           "core (weight transport); use random feedback (FA/DFA) delivered as m",
    "w_fb": "feedback weights are applied where the error arrives; their result reaches "
            "the synapse only as the third factor m",
    "B": "the feedback matrix is applied where the error arrives; its result reaches the "
         "synapse only as the third factor m",
}


@dataclass(frozen=True)
class Factor:
    """One factor of a product: a local variable plus a constant offset, ``(var + offset)``."""

    var: str
    offset: int = 0

    def __str__(self) -> str:
        if self.offset == 0:
            return self.var
        sign = "+" if self.offset > 0 else "-"
        return f"({self.var} {sign} {abs(self.offset)})"


@dataclass(frozen=True)
class Term:
    """``mantissa * 2^shift * prod(factors)``."""

    mantissa: int
    shift: int
    factors: tuple[Factor, ...]

    def __str__(self) -> str:
        parts: list[str] = []
        if abs(self.mantissa) != 1:
            parts.append(str(abs(self.mantissa)))
        if self.shift != 0:
            parts.append(f"2^{self.shift}")
        parts.extend(str(f) for f in self.factors)
        body = " * ".join(parts)
        return f"-{body}" if self.mantissa < 0 else body

    def variables(self) -> tuple[str, ...]:
        return tuple(f.var for f in self.factors)


@dataclass(frozen=True)
class Rule:
    """A parsed rule: per target ("dw", "de"), its terms."""

    name: str
    text: str
    statements: Mapping[str, tuple[Term, ...]] = field(default_factory=dict)

    @property
    def dw(self) -> tuple[Term, ...]:
        return tuple(self.statements.get("dw", ()))

    @property
    def de(self) -> tuple[Term, ...]:
        return tuple(self.statements.get("de", ()))

    def variables(self) -> set[str]:
        return {v for terms in self.statements.values() for t in terms for v in t.variables()}

    def canonical(self) -> str:
        out = []
        for tgt in TARGETS:
            terms = self.statements.get(tgt)
            if terms:
                body = " + ".join(str(t) for t in terms).replace("+ -", "- ")
                out.append(f"{tgt} = {body}")
        return "; ".join(out)


# ------------------------------------------------------------------------------ parsing
_TOKEN = re.compile(r"""
    (?P<ws>[ \t]+) | (?P<nl>[;\n]+) | (?P<pow>\*\*|\^) | (?P<num>\d+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
  | (?P<op>[-+*=()]) | (?P<bad>.)
""", re.VERBOSE)


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def _tokens(text: str, rule: str) -> list[_Tok]:
    out: list[_Tok] = []
    for line_no, line in enumerate(text.split("\n")):
        line = line.split("#", 1)[0]
        for m in _TOKEN.finditer(line):
            kind = m.lastgroup or "bad"
            if kind == "ws":
                continue
            if kind == "bad":
                raise LearningConfigError(
                    f"unexpected character {m.group()!r} at line {line_no + 1}, column "
                    f"{m.start() + 1}", rule=rule, field="text")
            out.append(_Tok("sep" if kind == "nl" else kind, m.group(), m.start()))
        out.append(_Tok("sep", "\n", len(line)))
    return out


class _Parser:
    def __init__(self, text: str, rule: str) -> None:
        self.rule = rule
        self.toks = _tokens(text, rule)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end of rule")
        self.i += 1
        return tok

    def error(self, msg: str) -> LearningConfigError:
        tok = self.peek()
        at = f" near {tok.text!r}" if tok is not None and tok.kind != "sep" else ""
        return LearningConfigError(f"{msg}{at}", rule=self.rule, field="text")

    def expect(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None or tok.kind != kind or (text is not None and tok.text != text):
            want = repr(text) if text is not None else kind
            raise self.error(f"expected {want}")
        return self.take()

    def program(self) -> list[tuple[str, list[tuple[int, int, list[tuple[str, int]]]]]]:
        stmts = []
        while True:
            while (tok := self.peek()) is not None and tok.kind == "sep":
                self.take()
            if self.peek() is None:
                break
            stmts.append(self.statement())
            tok = self.peek()
            if tok is not None and tok.kind != "sep":
                raise self.error("expected ';' or a new line after a statement")
        return stmts

    def statement(self) -> tuple[str, list[tuple[int, int, list[tuple[str, int]]]]]:
        tgt = self.expect("name").text
        if tgt not in TARGETS:
            raise LearningConfigError(
                f"a statement updates 'dw' (weight) or 'de' (eligibility tag), not {tgt!r}",
                rule=self.rule, field="text")
        self.expect("op", "=")
        terms = []
        sign = 1
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text in "+-":
            sign = -1 if self.take().text == "-" else 1
        terms.append(self.product(sign))
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.text in "+-":
            sign = -1 if self.take().text == "-" else 1
            terms.append(self.product(sign))
        return tgt, terms

    def product(self, sign: int) -> tuple[int, int, list[tuple[str, int]]]:
        mant, shift, factors = sign, 0, []
        while True:
            kind, a, b = self.factor()
            if kind == "pow":
                shift += a
            elif kind == "int":
                mant *= a
            else:
                factors.append((str(b), a))
            tok = self.peek()
            if tok is not None and tok.kind == "op" and tok.text == "*":
                self.take()
                continue
            return mant, shift, factors

    def factor(self) -> tuple[str, int, object]:
        tok = self.take()
        if tok.kind == "num":
            nxt = self.peek()
            if tok.text == "2" and nxt is not None and nxt.kind == "pow":
                self.take()
                s = 1
                t2 = self.peek()
                if t2 is not None and t2.kind == "op" and t2.text in "+-":
                    s = -1 if self.take().text == "-" else 1
                return "pow", s * int(self.expect("num").text), None
            return "int", int(tok.text), None
        if tok.kind == "name":
            return "var", 0, tok.text
        if tok.kind == "op" and tok.text == "(":
            name = self.expect("name").text
            op = self.peek()
            if op is None or op.kind != "op" or op.text not in "+-":
                raise self.error("expected '(variable + constant)' or '(variable - constant)'")
            self.take()
            off = int(self.expect("num").text) * (-1 if op.text == "-" else 1)
            self.expect("op", ")")
            return "var", off, name
        self.i -= 1
        raise self.error("expected a variable, an integer or a power of two")


def resolve_variable(name: str, *, rule: str, post: str | None = None,
                     where: str | None = None) -> str:
    """The canonical local variable a name refers to, or a typed error naming it.

    post: the name of the synapse's postsynaptic population (``hid.v`` then means ``v``).
    Raises LocalityError for names of real state that is not local to the synapse's core,
    LearningConfigError for names that mean nothing.
    """
    if name in LOCAL_VARIABLES:
        return name
    if "." in name:
        scope, var = name.split(".", 1)
        if scope in ("post",) or (post is not None and scope == post):
            if var in POST_VARS:
                return var
            raise LearningConfigError(
                f"'{name}': the postsynaptic neuron has no variable '{var}'; it has "
                f"{', '.join(POST_VARS)}", rule=rule, where=where, field=name)
        if scope == "syn":
            if var in SYN_VARS:
                return var
            raise LearningConfigError(
                f"'{name}': a synapse holds only {', '.join(SYN_VARS)}", rule=rule,
                where=where, field=name)
        if scope == "pre":
            raise LocalityError(
                f"variable '{name}' is the presynaptic neuron's state, which lives with that "
                f"neuron, not with the synapse (Box 3: U_B is non-local to A); the synapse "
                f"sees only the spikes arriving on its axon, as x0, x1, x2",
                rule=rule, where=where, field=name)
        raise LocalityError(
            f"variable '{name}' belongs to population '{scope}', not to this synapse's "
            f"postsynaptic neuron{f' in {post!r}' if post else ''}; a learning rule may read "
            f"only its own synapse, axon traces and postsynaptic neuron (plus the third "
            f"factor m delivered over the error channel)",
            rule=rule, where=where, field=name)
    if name in _NONLOCAL_NAMES:
        raise LocalityError(f"variable '{name}' is not local to the synapse's core: "
                            f"{_NONLOCAL_NAMES[name]}", rule=rule, where=where, field=name)
    raise LearningConfigError(
        f"unknown variable '{name}'; local variables are {', '.join(LOCAL_VARIABLES)}",
        rule=rule, where=where, field=name)


def parse_rule(text: str, *, name: str = "custom", post: str | None = None,
               where: str | None = None, constant_bits: int = 8) -> Rule:
    """Parse a rule's text; resolve every variable (see :func:`resolve_variable`)."""
    if not isinstance(text, str) or not text.strip():
        raise LearningConfigError("a rule needs at least one statement", rule=name,
                                  where=where, field="text")
    stmts = _Parser(text, name).program()
    if not stmts:
        raise LearningConfigError("a rule needs at least one statement", rule=name,
                                  where=where, field="text")
    out: dict[str, tuple[Term, ...]] = {}
    c_hi = (1 << (constant_bits - 1)) - 1
    for tgt, terms in stmts:
        if tgt in out:
            raise LearningConfigError(f"'{tgt}' is assigned twice", rule=name, where=where,
                                      field="text")
        parsed: list[Term] = []
        for k, (mant, shift, factors) in enumerate(terms):
            if not factors:
                raise LearningConfigError(
                    f"term {k + 1} of '{tgt}' has no variable (a constant drift is not a "
                    f"learning rule)", rule=name, where=where, field=tgt)
            if mant == 0:
                raise LearningConfigError(f"term {k + 1} of '{tgt}' is multiplied by 0",
                                          rule=name, where=where, field=tgt)
            if abs(mant) > c_hi:
                raise LearningConfigError(
                    f"term {k + 1} of '{tgt}' has the constant {mant}, outside the "
                    f"{constant_bits}-bit signed range [-{c_hi}, {c_hi}]; use a power of two",
                    rule=name, where=where, field=f"{tgt}.constant", value=mant,
                    limit=(-c_hi, c_hi))
            fs = []
            for var, off in factors:
                canon = resolve_variable(var, rule=name, post=post, where=where)
                if abs(off) > c_hi:
                    raise LearningConfigError(
                        f"the offset {off} of '{var}' in term {k + 1} of '{tgt}' is outside "
                        f"the {constant_bits}-bit signed range [-{c_hi}, {c_hi}]",
                        rule=name, where=where, field=f"{tgt}.offset", value=off,
                        limit=(-c_hi, c_hi))
                fs.append(Factor(canon, off))
            parsed.append(Term(mant, shift, tuple(fs)))
        out[tgt] = tuple(parsed)
    return Rule(name, text, out)


# ------------------------------------------------------------------------------ built-in
@dataclass(frozen=True)
class RuleTemplate:
    """A built-in rule: its text with ``{parameters}`` and their defaults (shifts)."""

    name: str
    text: str
    defaults: Mapping[str, int]
    doc: str

    def render(self, params: Mapping[str, int] | None = None) -> str:
        p = dict(self.defaults)
        for k, v in (params or {}).items():
            if k not in p:
                raise LearningConfigError(
                    f"unknown parameter {k!r}; parameters are {sorted(p)}", rule=self.name,
                    field=k)
            if isinstance(v, bool) or not isinstance(v, int):
                raise LearningConfigError(f"parameter {k!r} must be an integer shift, got {v!r}",
                                          rule=self.name, field=k, value=v)
            p[k] = v
        # "2^-{lr}" with a negative parameter is a left shift: 2^--3 -> 2^3
        return self.text.format(**p).replace("^--", "^")


_THREE_FACTOR = "dw = 2^-{lr} * m * sg * x1"

BUILTIN_RULES: dict[str, RuleTemplate] = {
    t.name: t for t in (
        RuleTemplate(
            "superspike",
            "de = -2^-{tau_e} * e + 2^-{elig} * sg * x1; dw = 2^-{lr} * m * e",
            {"tau_e": 3, "elig": 6, "lr": 16},
            "SuperSpike (eq. 17): the tag e filters sg * x1 (the per-synapse eligibility "
            "filter); the weight follows the error m times the tag."),
        RuleTemplate(
            "three_factor", _THREE_FACTOR, {"lr": 21},
            "Per-step three-factor rule of DCLL / e-prop-style learners: m * sg * x1."),
        RuleTemplate(
            "dfa", _THREE_FACTOR, {"lr": 21},
            "Three-factor rule whose m comes from the output error through fixed random "
            "feedback weights (direct feedback alignment, Fig. 5c)."),
        RuleTemplate(
            "fa", _THREE_FACTOR, {"lr": 21},
            "Three-factor rule whose m comes from the next layer's error through fixed random "
            "feedback weights (feedback alignment, Fig. 5b)."),
        RuleTemplate(
            "dcll", _THREE_FACTOR, {"lr": 21},
            "Three-factor rule whose m comes from a fixed random local readout of the layer "
            "and its pseudo-target (local errors, eq. 19, Fig. 5d)."),
        RuleTemplate(
            "delta", "dw = 2^-{lr} * m * x1", {"lr": 21},
            "Output-layer delta rule: the neuron's own error m times the presynaptic trace."),
        RuleTemplate(
            "stdp", "dw = 2^-{lr_plus} * x1 * y0 - 2^-{lr_minus} * y1 * x0",
            {"lr_plus": 4, "lr_minus": 4},
            "Pair-based two-factor STDP: potentiate on a post spike by the pre trace, "
            "depress on a pre spike by the post trace."),
        RuleTemplate(
            "rstdp",
            "de = -2^-{tau_e} * e + 2^-{elig} * x1 * y0 - 2^-{elig} * y1 * x0; "
            "dw = 2^-{lr} * m * e",
            {"tau_e": 4, "elig": 0, "lr": 14},
            "Reward-modulated STDP: STDP pairings accumulate in the tag, the reward m turns "
            "the tag into a weight change."),
    )
}


def builtin_rule(name: str, params: Mapping[str, int] | None = None) -> str:
    """The text of a built-in rule with its parameters (shifts) filled in."""
    if name not in BUILTIN_RULES:
        raise LearningConfigError(f"unknown built-in rule {name!r}; built-in rules are "
                                  f"{', '.join(sorted(BUILTIN_RULES))}", rule=name, field="rule")
    return BUILTIN_RULES[name].render(params)
