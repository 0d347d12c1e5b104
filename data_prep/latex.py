"""Normalise raw CROHME LaTeX truths into the space-separated tokens of the v1 captions.

The raw truths are written by hand in many styles (``\\frac 1 2``, ``x^2``, ``\\left(``,
``\\mbox{...}``, ``\\lt``, redundant braces, ``l o g``). The v1 captions that WAP, BTTR
and ABM train on put every argument in braces and use no other braces:
``\\frac { 1 } { 2 }``, ``x ^ { 2 }``, ``\\sqrt [ 3 ] { 2 }``. We get there in three
steps: split the string into tokens, parse them into a small tree (groups, fractions,
roots, scripts) so that every argument is known, and write the tree out canonically.

Where LaTeX leaves a choice, :class:`LatexStyle` says what to do. The default (``V1``)
keeps what the writer typed, as v1 does: ``\\limits`` only where it was written,
``x ^ { 2 } _ { 1 }`` in its order, a prime as ``'`` or ``\\prime``. ``V2`` follows the
v2 captions: ``\\limits`` after every ``\\sum``/``\\int``/``\\lim`` with scripts,
subscript before superscript, primes as ``\\prime``.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from abm_lib.vocab import Vocabulary, default_vocabulary


class LatexError(ValueError):
    """A truth that cannot be normalised; the message names the problem."""


@dataclass(frozen=True)
class LatexStyle:
    """Choices LaTeX leaves open: keep the writer's (v1 captions) or make them uniform (v2)."""

    limits: str = "as_written"  # "as_written", "never", or "big_operators" (after \sum \int \lim with scripts)
    subscript_first: bool = False  # write x _ { 1 } ^ { 2 } whatever order was typed
    prime_as_command: bool = False  # write ' as \prime

    def __post_init__(self) -> None:
        if self.limits not in ("as_written", "never", "big_operators"):
            raise ValueError(f"LatexStyle.limits must be as_written, never or big_operators, not {self.limits!r}")


V1 = LatexStyle()
V2 = LatexStyle(limits="big_operators", subscript_first=True, prime_as_command=True)


# --- step 1: tokens -----------------------------------------------------------------

# A command (\frac), an escaped character (\{ \, \ ), a run of letters, or one character.
_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[A-Za-z]+|\S", re.DOTALL)

# Operator names typed as plain letters (``log``, MfrDB's ``l o g``) mean the command.
FUNCTION_NAMES = {"log", "lim", "sin", "cos", "tan"}
# RIT's 2014 truths write ``\sqrt{x} ABOVE {n}`` for the n-th root.
ROOT_INDEX_WORD = "ABOVE"

# Commands that stand for other vocabulary token(s).
ALIASES = {
    "\\lt": ["<"],
    "\\gt": [">"],
    "\\to": ["\\rightarrow"],
    "\\lbrack": ["["],
    "\\rbrack": ["]"],
    "\\lbrace": ["\\{"],
    "\\rbrace": ["\\}"],
    "\\dots": ["\\ldots"],
    "\\ne": ["\\neq"],
    "\\le": ["\\leq"],
    "\\ge": ["\\geq"],
    "\\vert": ["|"],
    "\\parallel": ["|", "|"],
    "\\Vert": ["|", "|"],
}
# Commands that only change spacing or style: dropped.
SPACING = {"\\,", "\\;", "\\:", "\\!", "\\ ", "\\quad", "\\qquad", "\\displaystyle", "~"}
# Size prefixes of a delimiter: ``\left(`` -> ``(``; ``\left.`` (no delimiter) -> nothing.
DELIMITER_SIZES = {
    "\\left", "\\right", "\\big", "\\Big", "\\bigg", "\\Bigg",
    "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\biggl", "\\biggr", "\\Biggl", "\\Biggr",
}
# Boxes whose content is kept and read as ordinary math tokens.
TEXT_BOXES = {"\\mbox", "\\mathrm", "\\text", "\\textrm", "\\hbox", "\\vtop", "\\mathit", "\\operatorname"}
# Commands with braced arguments in the output, and how many.
ARITY = {"\\frac": 2, "\\dfrac": 2, "\\tfrac": 2, "\\sqrt": 1, "^": 1, "_": 1}

_KNOWN = set(ALIASES) | SPACING | DELIMITER_SIZES | TEXT_BOXES | set(ARITY)
_GLUED_PREFIXES = ("\\lt", "\\gt")  # ``\ltN`` is ``\lt N`` (seen in the 2014 truths)


def tokenize(raw: str) -> list[str]:
    """Split raw LaTeX into tokens: commands, escaped characters, letters, other characters."""
    text = raw.replace("$", " ")
    matches = list(_TOKEN.finditer(text))
    tokens: list[str] = []
    index = 0
    while index < len(matches):
        spelled = _spelled_function(text, matches, index)
        if spelled:
            tokens.append(spelled)
            index += len(spelled)
            continue
        tokens.extend(_split_token(matches[index].group()))
        index += 1
    return tokens


def _split_token(token: str) -> list[str]:
    """One regex match -> tokens: a letter run becomes single letters, unless it is a name."""
    if token.isalpha():
        if token in FUNCTION_NAMES or token == ROOT_INDEX_WORD:
            return [token]  # kept whole; the parser decides what it means
        return list(token)
    if token.startswith("\\") and token not in _KNOWN:
        for prefix in _GLUED_PREFIXES:
            if token.startswith(prefix) and len(token) > len(prefix):
                return [prefix, *token[len(prefix):]]
    return [token]


def _spelled_function(text: str, matches: list[re.Match], index: int) -> str | None:
    """A function name spelled as spaced single letters (``l o g``) starting at ``index``."""
    if index > 0 and _is_spaced_letter(text, matches, index - 1):
        return None  # inside a longer run of spaced letters: not the start of a word
    for name in FUNCTION_NAMES:
        end = index + len(name)
        if end > len(matches):
            continue
        letters = [m.group() for m in matches[index:end]]
        if "".join(letters) == name and all(_is_spaced_letter(text, matches, i) for i in range(index, end - 1)):
            return name
    return None


def _is_spaced_letter(text: str, matches: list[re.Match], index: int) -> bool:
    """True if match ``index`` is one letter followed, after only whitespace, by another letter."""
    if index + 1 >= len(matches):
        return False
    here, after = matches[index], matches[index + 1]
    gap = text[here.end() : after.start()]
    return (
        len(here.group()) == 1 and here.group().isalpha()
        and len(after.group()) == 1 and after.group().isalpha()
        and gap != "" and gap.isspace()
    )


# --- step 2: a tree -----------------------------------------------------------------


@dataclass
class Group:
    """A sequence of nodes: the whole expression, or the inside of braces."""

    children: list = field(default_factory=list)


@dataclass
class Command:
    """A command whose arguments are written in braces: ``\\frac``, ``\\sqrt``, ``^``, ``_``."""

    name: str
    arguments: list[Group]
    index: Group | None = None  # the ``[n]`` of ``\\sqrt[n]{x}``


class _Parser:
    """Recursive-descent parser over the token list; one method per construct."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.position = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise LatexError("unexpected end of input (an argument or closing brace is missing)")
        self.position += 1
        return token

    def parse(self) -> Group:
        group = self.sequence(closing=None)
        if self.peek() is not None:
            raise LatexError(f"unbalanced '{self.peek()}' (token {self.position + 1})")
        return group

    def sequence(self, closing: str | None) -> Group:
        """Nodes up to (not including) ``closing``, ``}`` or the end of input."""
        group = Group()
        while (token := self.peek()) is not None and token not in (closing, "}"):
            group.children.extend(self.item())
        return group

    def item(self) -> list:
        """One node, or none for spacing: a group, a command with arguments, or symbol(s)."""
        token = self.take()
        if token == "{":
            return [self.braced_rest()]
        if token in SPACING:
            return []
        if token in DELIMITER_SIZES:
            return self.delimiter(token)
        if token in TEXT_BOXES:
            return [self.argument(token)]
        if token in ARITY:
            return self.command(token)
        if token == ROOT_INDEX_WORD:
            raise LatexError(f"'{ROOT_INDEX_WORD}' not after a square root")
        if token in FUNCTION_NAMES:
            return ["\\" + token]
        return ALIASES.get(token, [token])

    def braced_rest(self) -> Group:
        """The inside of braces whose ``{`` was just taken."""
        group = self.sequence(closing="}")
        if self.peek() != "}":
            raise LatexError("unbalanced '{' (a closing brace is missing)")
        self.take()
        return group

    def argument(self, owner: str) -> Group:
        """An argument: a braced group or a single item (``\\frac12``, ``\\sqrt x``)."""
        while self.peek() in SPACING:
            self.take()
        if self.peek() == "{":
            self.take()
            if owner in ("^", "_") and self._is_lone_name():
                name = self.take()
                self.take()  # the closing brace
                return Group(list(name))
            return self.braced_rest()
        if self.peek() in (None, "}", "^", "_"):
            raise LatexError(f"'{owner}' is missing an argument")
        return Group(self.item())

    def _is_lone_name(self) -> bool:
        """True before ``tan}``: a script that is only a function name is a label (``a_{tan}``)."""
        ahead = self.tokens[self.position : self.position + 2]
        return len(ahead) == 2 and ahead[0] in FUNCTION_NAMES and ahead[1] == "}"

    def command(self, name: str) -> list[Command]:
        """A command and its arguments; an empty script (``x_{}``) is dropped as invisible."""
        index = None
        if name == "\\sqrt" and self.peek() == "[":
            self.take()
            index = self.sequence(closing="]")
            if self.peek() != "]":
                raise LatexError("'\\sqrt[' without its closing ']'")
            self.take()
        arguments = [self.argument(name) for _ in range(ARITY[name])]
        if name == "\\sqrt" and self.peek() == ROOT_INDEX_WORD:
            self.take()
            index = self.argument(ROOT_INDEX_WORD)
        if name in ("^", "_") and not arguments[0].children:
            return []
        if any(not _has_content(a) for a in arguments):
            raise LatexError(f"'{name}' has an empty argument")
        return [Command("\\frac" if name.endswith("frac") else name, arguments, index)]

    def delimiter(self, size: str) -> list[str]:
        if self.peek() is None:
            raise LatexError(f"'{size}' without a delimiter")
        token = self.take()
        if token == ".":
            return []
        return ALIASES.get(token, [token])


def _has_content(group: Group) -> bool:
    return any(not isinstance(c, Group) or _has_content(c) for c in group.children)


def parse_latex(raw: str) -> Group:
    """Parse a raw LaTeX truth into a tree of groups, commands and symbol tokens."""
    return _Parser(tokenize(raw)).parse()


# --- step 3: canonical tokens -------------------------------------------------------

BIG_OPERATORS = {"\\sum", "\\int", "\\lim"}
_SCRIPTS = ("^", "_")


def apply_style(group: Group, style: LatexStyle) -> Group:
    """Return the tree with the style's choices applied to every group, innermost first."""
    children = []
    for child in group.children:
        if isinstance(child, Group):
            child = apply_style(child, style)
        elif isinstance(child, Command):
            arguments = [apply_style(a, style) for a in child.arguments]
            index = apply_style(child.index, style) if child.index is not None else None
            child = Command(child.name, arguments, index)
        elif child == "'" and style.prime_as_command:
            child = "\\prime"
        children.append(child)
    if style.limits == "never":
        children = [c for c in children if c != "\\limits"]
    elif style.limits == "big_operators":
        children = _add_limits(children)
    if style.subscript_first:
        children = _subscript_first(children)
    return Group(children)


def _is_script(node, name: str | None = None) -> bool:
    return isinstance(node, Command) and node.name in _SCRIPTS and (name is None or node.name == name)


def _add_limits(children: list) -> list:
    """Insert ``\\limits`` between a big operator and its scripts where it is missing."""
    out = []
    for position, child in enumerate(children):
        out.append(child)
        following = children[position + 1] if position + 1 < len(children) else None
        if isinstance(child, str) and child in BIG_OPERATORS and _is_script(following):
            out.append("\\limits")
    return out


def _subscript_first(children: list) -> list:
    """Swap each superscript that is directly followed by a subscript."""
    children = list(children)
    for position in range(len(children) - 1):
        if _is_script(children[position], "^") and _is_script(children[position + 1], "_"):
            children[position], children[position + 1] = children[position + 1], children[position]
    return children


def _write(node, out: list[str]) -> None:
    if isinstance(node, str):
        out.append(node)
    elif isinstance(node, Group):
        for child in node.children:
            _write(child, out)
    else:
        out.append(node.name)
        if node.index is not None:
            out.append("[")
            _write(node.index, out)
            out.append("]")
        for argument in node.arguments:
            out.append("{")
            _write(argument, out)
            out.append("}")


def to_tokens(tree: Group) -> list[str]:
    """Write a parsed tree in the v1 form: braces around arguments and nowhere else."""
    out: list[str] = []
    _write(tree, out)
    return out


@functools.lru_cache(maxsize=1)
def _standard_vocabulary() -> Vocabulary:
    return default_vocabulary()


def check_tokens(tokens: list[str], vocabulary: Vocabulary | None = None) -> None:
    """Raise LatexError if ``tokens`` is empty or holds tokens outside the vocabulary."""
    vocabulary = vocabulary or _standard_vocabulary()
    if not tokens:
        raise LatexError("empty expression")
    unknown = sorted({t for t in tokens if t not in vocabulary})
    if unknown:
        raise LatexError(f"token(s) outside the vocabulary: {' '.join(unknown)}")


def normalize_latex(raw: str, style: LatexStyle = V1, vocabulary: Vocabulary | None = None) -> list[str]:
    """Raw CROHME LaTeX -> caption tokens (v1 by default); LatexError if unparseable or unknown."""
    tokens = to_tokens(apply_style(parse_latex(raw), style))
    check_tokens(tokens, vocabulary)
    return tokens
