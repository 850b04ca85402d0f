"""Reading a JSON object field by field, with errors that name the field.

Files a person may write or edit by hand (a schema) or that may arrive damaged (a run's
``run.json``) are parsed through :class:`Fields`: each field is read with the JSON type it must
have, and a wrong type, a missing field or an unknown key is refused in one line that names the
field, says what it must be and, for a typo, which known key was meant. A typo must not pass
silently: ``"lable": "y"`` read with ``dict.get("label")`` would train an unconditional model.

Example:
    >>> f = Fields({"low": 0, "hihg": 1}, "column 'age'", ValueError)
    >>> f.only(("name", "low", "high"))
    Traceback (most recent call last):
    ...
    ValueError: unknown key 'hihg' in column 'age' (known: name, low, high); did you mean 'high'?
"""

from __future__ import annotations

import difflib
import json
import math
from typing import Any, Literal, Mapping, NoReturn, Sequence

from trustgen.errors import TrustgenError

Kind = Literal["string", "number", "integer", "boolean", "list", "object", "scalar"]

#: What each kind must be, as the error messages say it.
KIND_WORDS: dict[str, str] = {
    "string": "a string", "number": "a finite number", "integer": "a whole number",
    "boolean": "true or false", "list": "a list", "object": "a JSON object {...}",
    "scalar": "a string, a finite number or true/false",
}

REQUIRED: Any = object()  # the default of a field that must be present


def json_type(value: Any) -> str:
    """The JSON type of a parsed value, as an error message names it (``"a list"``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number" if isinstance(value, int) or math.isfinite(value) else "a non-finite number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a JSON object"
    return type(value).__name__


def did_you_mean(word: str, known: Sequence[str]) -> str | None:
    """The known name closest to a misspelt ``word`` (case aside), or None if none is close."""
    lower = {k.lower(): k for k in reversed(list(known))}  # the first of names equal but for case
    close = difflib.get_close_matches(word.lower(), list(lower), n=1)
    return lower[close[0]] if close else None


def _short(value: Any) -> str:
    """A value as the file spells it (``true``, ``"a,b"``, ``NaN``), cut to one short line."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def finite_number(value: int | float) -> bool:
    """A finite number a float can hold (JSON integers have no size limit: 1e400 written out is one)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _fits(value: Any, kind: Kind) -> bool:
    # bool is an int in Python but never a number in a file: "low": true is a mistake, not 1.
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return number and finite_number(value)
    if kind == "integer":  # 3.0 is a whole number too (some JSON writers print every number as float)
        return number and finite_number(value) and float(value).is_integer()
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "scalar":
        return isinstance(value, (str, bool)) or (number and finite_number(value))
    raise ValueError(f"unknown field kind {kind!r}")


class Fields:
    """One JSON object, read with typed getters whose errors name the field.

    Args:
        obj: the parsed value that must be a JSON object.
        where: what the object is, for messages (``"the schema"``, ``"column 'age' of the schema"``).
        error: the :class:`~trustgen.errors.TrustgenError` subclass to raise.
        hint: appended to every message (how to fix or re-create the file).
    """

    def __init__(self, obj: Any, where: str, error: type[TrustgenError], hint: str = "") -> None:
        self.where, self.error, self.hint = where, error, f"; {hint}" if hint else ""
        if not isinstance(obj, dict):
            self.fail(f"{where} must be {KIND_WORDS['object']}, got {json_type(obj)} ({_short(obj)})")
        self.obj: Mapping[str, Any] = obj

    def fail(self, message: str) -> NoReturn:
        raise self.error(message + self.hint)

    def only(self, known: Sequence[str], hints: Mapping[str, str] | None = None) -> None:
        """Refuse keys outside ``known``, suggesting the known key each typo was likely meant as;
        ``hints`` maps a key people write by mistake to what to write instead."""
        unknown = [k for k in self.obj if k not in known]
        if not unknown:
            return
        hints = hints or {}
        advice = list(dict.fromkeys(hints[k] for k in unknown if k in hints))  # min and max: one advice
        guesses = [(k, did_you_mean(k, known)) for k in unknown]
        guesses = [(k, g) for k, g in guesses if g is not None]
        keys = ", ".join(repr(k) for k in unknown)
        message = f"unknown key{'s' if len(unknown) > 1 else ''} {keys} in {self.where} (known: {', '.join(known)})"
        if len(unknown) == 1 and guesses:
            message += f"; did you mean {guesses[0][1]!r}?"
        elif guesses:
            message += "; did you mean " + ", ".join(f"{g!r} for {k!r}" for k, g in guesses) + "?"
        self.fail("; ".join([message, *advice]))

    def get(self, key: str, kind: Kind, default: Any = REQUIRED, *, nullable: bool = False,
            items: Kind | None = None) -> Any:
        """The value of ``key``, which must be of ``kind`` (``null`` too if ``nullable``; for a
        list, every element of kind ``items``); ``default`` if absent, or an error if required.
        Whole numbers come back as ``int`` and numbers as ``float``."""
        if key not in self.obj:
            if default is REQUIRED:
                self.fail(f"{self.where} has no {key!r} ({KIND_WORDS[kind]})")
            return default
        value = self.obj[key]
        if value is None and nullable:
            return None
        if not _fits(value, kind):
            want = KIND_WORDS[kind] + (" or null" if nullable else "")
            self.fail(f"{self.where}: {key!r} must be {want}, got {_short(value)} ({json_type(value)})")
        if items is not None:
            for i, item in enumerate(value):
                if not _fits(item, items):
                    self.fail(f"{self.where}: {key!r} must be a list of items each {KIND_WORDS[items]}; "
                              f"item {i + 1} is {_short(item)} ({json_type(item)})")
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        return value
