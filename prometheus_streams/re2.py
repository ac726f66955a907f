"""RE2 (Go regexp) syntax translated to an equivalent Python `re` pattern, or refused."""

from __future__ import annotations

import re

# Go's \d \s \w and \b are ASCII-only; Python's are Unicode, so they are spelled out.
_PERL_CLASSES = {
    "d": "0-9",
    "s": "\\t\\n\\f\\r ",
    "w": "0-9A-Za-z_",
}
_WORD = "[0-9A-Za-z_]"
_BOUNDARY = f"(?:(?<!{_WORD})(?={_WORD})|(?<={_WORD})(?!{_WORD}))"
_NOT_BOUNDARY = f"(?:(?<={_WORD})(?={_WORD})|(?<!{_WORD})(?!{_WORD}))"
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_SIMPLE_ESCAPES = {"a": "\x07", "f": "\f", "t": "\t", "n": "\n", "r": "\r", "v": "\v"}
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_MAX_REPEAT = 1000  # Go refuses larger counts
_FLAGS = "imsU"


class RE2Error(ValueError):
    """A pattern RE2 would refuse, or one of its few constructs not translated here."""


def translate(pattern: str) -> str:
    """A Python pattern matching what the RE2 `pattern` matches, with the same group numbers."""
    return _Translator(pattern).run()


def compile_anchored(pattern: str) -> re.Pattern[str]:
    """`pattern` anchored at both ends (as Prometheus' `^(?:re)$`), compiled for `fullmatch`."""
    try:
        return re.compile(translate(pattern))
    except re.error as exc:
        # exc.msg without the position: that is one in the translated pattern.
        raise RE2Error(f"invalid regular expression {pattern!r}: {exc.msg}") from None


def _lit(char: str) -> str:
    return re.escape(char)


def _class_char(char: str) -> str:
    # Inside a Python class everything that is not alphanumeric is escaped, so
    # nothing reads as Python's set operators (&&, --, ||, ~~, nested [).
    return char if char.isalnum() else "\\" + char if char != "\n" else "\\n"


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.src = pattern
        self.pos = 0
        self.out: list[str] = []
        self.flags: set[str] = set()
        self.stack: list[set[str]] = []

    def fail(self, message: str) -> RE2Error:
        return RE2Error(f"{message} (at offset {self.pos} of {self.src!r})")

    def run(self) -> str:
        src = self.src
        while self.pos < len(src):
            char = src[self.pos]
            self.pos += 1
            if char == "\\":
                self.out.append(self._escape())
            elif char == "[":
                self.out.append(self._wrap_i(self._class()))
            elif char == "(":
                self._group()
            elif char == ")":
                if not self.stack:
                    raise self.fail("unexpected )")
                self.flags = self.stack.pop()
                self.out.append(")")
            elif char in "*+?":
                self._quantifier(char)
            elif char == "{":
                match = _REPEAT.match(src, self.pos - 1)
                if match is None:
                    self.out.append("\\{")  # Go reads a brace that starts no count literally
                else:
                    self.pos = match.end()
                    low, high = int(match[1]), match[3]
                    if low > _MAX_REPEAT or (high and int(high) > _MAX_REPEAT):
                        raise self.fail(f"repeat count above {_MAX_REPEAT}")
                    self._quantifier(match[0])
            elif char == ".":
                self.out.append("(?s:.)" if "s" in self.flags else ".")
            elif char == "^":
                # Grouped, as Go lets an assertion repeat (`^*`) and Python only a group.
                self.out.append("(?m:^)" if "m" in self.flags else "(?:\\A)")
            elif char == "$":
                self.out.append("(?m:$)" if "m" in self.flags else "(?:\\Z)")
            elif char == "|":
                self.out.append("|")
            else:
                self.out.append(self._wrap_i(_lit(char)))
        if self.stack:
            raise self.fail("missing )")
        return "".join(self.out)

    def _wrap_i(self, atom: str) -> str:
        return f"(?i:{atom})" if "i" in self.flags else atom

    def _quantifier(self, text: str) -> None:
        last = self.out[-1] if self.out else "|"
        if last in ("|", "(?:", "(") or (last.startswith("(?P<") and last.endswith(">")):
            raise self.fail(f"missing argument to repetition operator {text!r}")
        if last in ("*", "+", "?", "*?", "+?", "??") or last.startswith("{"):
            raise self.fail(f"invalid nested repetition operator {text!r}")
        lazy = self.src.startswith("?", self.pos)
        if lazy:
            self.pos += 1
        if self.src.startswith(("+", "*"), self.pos) or (
            self.src.startswith("{", self.pos) and _REPEAT.match(self.src, self.pos)
        ):
            raise self.fail(
                "invalid nested repetition operator (possessive quantifiers are not RE2)"
            )
        if "U" in self.flags:
            lazy = not lazy
        self.out.append(text + ("?" if lazy else ""))

    def _group(self) -> None:
        src = self.src
        self.stack.append(set(self.flags))
        if not src.startswith("?", self.pos):
            self.out.append("(")
            return
        rest = src[self.pos + 1 :]
        if rest.startswith("P<"):
            end = src.find(">", self.pos)
            name = src[self.pos + 3 : end] if end > 0 else ""
            if not name or not re.fullmatch(r"[A-Za-z0-9_]+", name):
                raise self.fail("invalid named capture")
            self.pos = end + 1
            self.out.append(f"(?P<{name}>")
            return
        if rest.startswith(("=", "!", "<=", "<!")):
            raise self.fail("lookaround assertions are not supported by RE2")
        if rest.startswith(("P=", "P>")):
            raise self.fail("backreferences are not supported by RE2")
        if rest.startswith("<"):
            raise self.fail("named groups are written (?P<name>...) in RE2")
        # Flags: (?flags) for the rest of the group, (?flags:re) for re.
        end = self.pos + 1
        while end < len(src) and (src[end] in _FLAGS or src[end] == "-"):
            end += 1
        spec = src[self.pos + 1 : end]
        if end >= len(src) or src[end] not in ":)" or spec.count("-") > 1 or spec.endswith("-"):
            raise self.fail(
                "invalid or unsupported group syntax (RE2 has only (?flags) and (?P<name>))"
            )
        on, _, off = spec.partition("-")
        flags = (set(self.flags) | set(on)) - set(off)
        self.pos = end + 1
        if src[end] == ":":
            self.flags = flags
            self.out.append("(?:")
        else:
            self.stack.pop()
            self.flags = flags

    def _escape(self) -> str:
        src = self.src
        if self.pos >= len(src):
            raise self.fail("trailing backslash")
        char = src[self.pos]
        self.pos += 1
        if char in _PERL_CLASSES:
            return self._wrap_i(f"[{_PERL_CLASSES[char]}]")
        if char.lower() in _PERL_CLASSES:
            return f"[^{_PERL_CLASSES[char.lower()]}]"
        if char == "b":
            return _BOUNDARY
        if char == "B":
            return _NOT_BOUNDARY
        if char == "A":
            return "(?:\\A)"
        if char == "z":
            return "(?:\\Z)"
        if char == "Q":
            end = src.find("\\E", self.pos)
            end = len(src) if end < 0 else end
            text = src[self.pos : end]
            self.pos = min(len(src), end + 2)
            return "".join(self._wrap_i(_lit(c)) for c in text)
        return self._wrap_i(_lit(self._escaped_char(char)))

    def _escaped_char(self, char: str) -> str:
        """The character an escape outside \\d-like classes stands for (in or out of [ ])."""
        src = self.src
        if char in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[char]
        if char == "x":
            if src.startswith("{", self.pos):
                end = src.find("}", self.pos)
                digits = src[self.pos + 1 : end] if end > 0 else ""
                self.pos = end + 1
            else:
                digits = src[self.pos : self.pos + 2]
                self.pos += 2
            if not re.fullmatch(r"[0-9A-Fa-f]{1,8}", digits or "") or int(digits, 16) > 0x10FFFF:
                raise self.fail("invalid escape sequence \\x")
            return chr(int(digits, 16))
        if char in "01234567":
            follows = re.match(r"[0-7]{0,2}", src[self.pos :])
            digits = follows[0] if follows else ""
            if char != "0" and not digits:
                raise self.fail(f"backreferences (\\{char}) are not supported by RE2")
            self.pos += len(digits)
            return chr(int(char + digits, 8))
        if char in "89":
            raise self.fail(f"backreferences (\\{char}) are not supported by RE2")
        if char in "pP":
            raise self.fail("Unicode classes (\\p, \\P) are not supported here")
        if char == "C":
            raise self.fail("\\C (any byte) is not supported")
        if char.isascii() and not char.isalnum():
            return char
        raise self.fail(f"invalid escape sequence \\{char}")

    def _class(self) -> str:
        src = self.src
        negate = src.startswith("^", self.pos)
        if negate:
            self.pos += 1
        items: list[str] = []
        first = True
        while True:
            if self.pos >= len(src):
                raise self.fail("missing closing ]")
            char = src[self.pos]
            if char == "]" and not first:
                self.pos += 1
                break
            first = False
            if src.startswith("[:", self.pos):
                end = src.find(":]", self.pos + 2)
                name = src[self.pos + 2 : end] if end > 0 else ""
                inverted = name.startswith("^")
                name = name.lstrip("^")
                if name in _POSIX_CLASSES:
                    self.pos = end + 2
                    body = _POSIX_CLASSES[name]
                    items.append(f"[^{body}]" if inverted else body)
                    continue
                if end > 0:
                    raise self.fail(f"invalid character class range [:{name}:]")
            low = self._class_atom(items)
            if low is None:
                continue
            if src.startswith("-", self.pos) and not src.startswith("-]", self.pos):
                self.pos += 1
                high = self._class_atom(items)
                if high is None or high < low:
                    raise self.fail("invalid character class range")
                items.append(f"{_class_char(low)}-{_class_char(high)}")
            else:
                items.append(_class_char(low))
        # A negated Perl class inside [ ] cannot nest in Python: spell it as an alternation.
        nested = [i for i in items if i.startswith("[^")]
        plain = "".join(i for i in items if not i.startswith("[^"))
        if not nested:
            return f"[{'^' if negate else ''}{plain}]"
        parts = ([f"[{plain}]"] if plain else []) + nested
        union = "|".join(parts)
        return f"(?!(?:{union}))(?s:.)" if negate else f"(?:{union})"

    def _class_atom(self, items: list[str]) -> str | None:
        """One character of a class; None when it was a Perl class (added to the items)."""
        src = self.src
        char = src[self.pos]
        self.pos += 1
        if char != "\\":
            return char
        if self.pos >= len(src):
            raise self.fail("trailing backslash")
        escaped = src[self.pos]
        self.pos += 1
        if escaped in _PERL_CLASSES:
            items.append(_PERL_CLASSES[escaped])
            return None
        if escaped.lower() in _PERL_CLASSES:
            items.append(f"[^{_PERL_CLASSES[escaped.lower()]}]")
            return None
        return self._escaped_char(escaped)
