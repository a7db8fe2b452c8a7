"""A small written schema language for bitsim's JSON files, and the checker that applies it.

A schema is plain data: a ``dict`` is an object with exactly those keys (a key ending in ``?`` may be
absent), and the leaves are the checkers below. :func:`validate` walks a value against a schema and
raises :class:`~bitsim.errors.DamagedFileError` naming the file, the field (``tensors[3].shape[0]``)
and what was expected. ``docs/formats.md`` prints each file's schema.
"""

import re

from .errors import DamagedFileError

HEX64 = re.compile(r"^[0-9a-f]{64}$")


class Check:
    """A leaf of a schema: ``check(value)`` returns None when ``value`` fits, else what was expected."""

    def __init__(self, expected, fits):
        self.expected, self.fits = expected, fits

    def __call__(self, value):
        return None if self.fits(value) else self.expected

    def __repr__(self):
        return self.expected


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def Int(lo=None, hi=None):
    """An integer (not a bool) in ``[lo, hi]``."""
    span = f" in [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]" if (lo, hi) != (None, None) else ""
    return Check(f"an integer{span}", lambda v: is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi))


def OneOf(*values):
    """One of the given values (compared with ``==`` and the same type)."""
    return Check(f"one of {list(values)}", lambda v: any(type(v) is type(x) and v == x for x in values))


def Str(pattern=None, what="a string"):
    """A string, optionally matching a regular expression."""
    regex = re.compile(pattern) if pattern else None
    return Check(what, lambda v: isinstance(v, str) and (regex is None or regex.fullmatch(v) is not None))


SHA256 = Str(HEX64.pattern, "a SHA-256 digest (64 lowercase hex digits)")
ANY = Check("anything", lambda v: True)
BOOL = Check("true or false", lambda v: isinstance(v, bool))
NUMBER = Check("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
NULL = Check("null", lambda v: v is None)
OBJECT = Check("an object", lambda v: isinstance(v, dict))


class ListOf:
    """A list whose items all fit ``item``, with a length in ``[min_len, max_len]``."""

    def __init__(self, item, min_len=0, max_len=None):
        self.item, self.min_len, self.max_len = item, min_len, max_len


class MapOf:
    """An object with any keys (fitting ``key``) whose values all fit ``value``."""

    def __init__(self, value, key=Str()):
        self.key, self.value = key, value


class Either:
    """Fits when any of the schemas fits (the first one's complaint is reported otherwise)."""

    def __init__(self, *schemas):
        self.schemas = schemas


SHAPE = ListOf(Int(0), max_len=32)


def describe(schema):
    """What a schema expects, in a few words."""
    if isinstance(schema, dict):
        return "an object with keys " + ", ".join(schema)
    if isinstance(schema, ListOf):
        return f"a list of {describe(schema.item)}"
    if isinstance(schema, MapOf):
        return f"an object of {describe(schema.value)}"
    if isinstance(schema, Either):
        return " or ".join(describe(s) for s in schema.schemas)
    return repr(schema)


def _first(found):
    """The first problem of an iterable of problems and Nones, or None."""
    return next((f for f in found if f), None)


def problem(value, schema, where="$"):
    """The first place where ``value`` does not fit ``schema``, as ``(field, expected, got)``, or None."""
    if isinstance(schema, Either):
        found = [problem(value, s, where) for s in schema.schemas]
        return None if any(f is None for f in found) else found[0]
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return where, describe(schema), value
        keys = {k.rstrip("?"): k.endswith("?") for k in schema}
        for key in value:
            if key not in keys:
                return f"{where}.{key}", f"no such field (the fields are {', '.join(keys)})", value[key]
        for key, optional in keys.items():
            if key not in value:
                if optional:
                    continue
                return f"{where}.{key}", f"a field {key!r} ({describe(schema[key + '?' if optional else key])})", "nothing"
            found = problem(value[key], schema[key + ("?" if optional else "")], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(schema, ListOf):
        if not isinstance(value, list):
            return where, describe(schema), value
        if len(value) < schema.min_len or (schema.max_len is not None and len(value) > schema.max_len):
            top = "" if schema.max_len is None else f" and at most {schema.max_len}"
            return where, f"a list of at least {schema.min_len}{top} items", f"{len(value)} items"
        return _first(problem(item, schema.item, f"{where}[{i}]") for i, item in enumerate(value))
    if isinstance(schema, MapOf):
        if not isinstance(value, dict):
            return where, describe(schema), value
        return _first(problem(key, schema.key, f"{where} key {key!r}") or problem(item, schema.value, f"{where}.{key}")
                      for key, item in value.items())
    expected = schema(value)
    return None if expected is None else (where, expected, value)


def validate(value, schema, path, where="$"):
    """Raise :class:`DamagedFileError` for file ``path`` unless ``value`` (found at ``where``) fits ``schema``."""
    found = problem(value, schema, where)
    if found:
        where, expected, got = found
        shown = repr(got)
        raise DamagedFileError(path, f"field {where}: expected {expected}, got {shown[:80]}"
                                     f"{'...' if len(shown) > 80 else ''}")
    return value


def field_error(path, where, message):
    """A :class:`DamagedFileError` for a field whose value is well-formed but inconsistent."""
    return DamagedFileError(path, f"field {where}: {message}")


__all__ = ["Check", "Int", "OneOf", "Str", "SHA256", "ANY", "BOOL", "NUMBER", "NULL", "OBJECT", "ListOf", "MapOf",
           "Either", "SHAPE", "describe", "problem", "validate", "field_error"]
