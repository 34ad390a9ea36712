"""Values of the expression language: GitHub Actions' kinds, coercions, comparisons and string forms.

Values are plain Python data: ``None`` (null), ``bool``, ``int``/``float`` (number), ``str``,
sequences (array) and mappings (object). The rules follow GitHub's documentation ("Evaluate
expressions in workflows and actions") and its implementation in the runner (actions/runner's
``DTExpressions2``; actions/languageservices agrees except where noted):

- equality and ordering are *loose*: operands of different kinds are converted to numbers (null→0,
  true→1, false→0, a string parsed as a number: ``''``→0, ``0x1f``, ``1e3``, unparsable→NaN);
  arrays and objects are never converted, so they equal only themselves and are never ordered;
- strings compare ignoring case; NaN is neither equal to, less nor greater than anything;
- falsy: ``false``, ``0``, ``-0``, ``''``, ``null``, ``NaN``; everything else (arrays, objects) is truthy;
- to string: null→``''``, ``true``/``false``, numbers as the runner prints them (.NET's
  ``0.#######``: at most 7 decimals, never an exponent), arrays and objects as indented JSON.

This module is pure: no I/O, no state.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from buildyard.errors import UserError

NULL: Final = 0
BOOL: Final = 1
NUM: Final = 2
STR: Final = 3
ARR: Final = 4
OBJ: Final = 5

_KINDS: dict[type, int] = {
    type(None): NULL,
    bool: BOOL,
    int: NUM,
    float: NUM,
    str: STR,
    list: ARR,
    tuple: ARR,
    dict: OBJ,
}
NAN: Final = float("nan")
#: Longest string an expression may build (``format``, ``join``, ``toJSON``): bounds memory.
MAX_RESULT: Final = 4 * 1024 * 1024
#: Largest input ``fromJSON`` accepts (GitHub caps a job's outputs at 1 MB).
MAX_JSON: Final = 4 * 1024 * 1024


class ExprError(UserError, ValueError):
    """An expression that does not parse or cannot be evaluated (a one-line message)."""


class Filtered(list[Any]):
    """The array an object filter (``a.*``) produces: further dereferences apply to each element."""

    __slots__ = ()


def kind(value: Any) -> int:
    """The kind of a value: ``NULL``, ``BOOL``, ``NUM``, ``STR``, ``ARR`` or ``OBJ``."""
    k = _KINDS.get(type(value))
    if k is not None:
        return k
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float):
        return NUM
    if isinstance(value, str):
        return STR
    if isinstance(value, Mapping):
        return OBJ
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return ARR
    raise ExprError(f"unsupported value of type {type(value).__name__} in an expression context")


def is_primitive(value: Any) -> bool:
    """Null, boolean, number or string."""
    return kind(value) < ARR


def truthy(value: Any) -> bool:
    """GitHub truthiness: ``false``, ``0``, ``-0``, ``''``, ``null`` and NaN are false, all else true."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    k = kind(value)
    if k == NUM:
        return not (value == 0 or value != value)  # noqa: PLR0124 - NaN test
    if k == STR:
        return len(value) > 0
    return True


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INFINITY = {"Infinity": math.inf, "-Infinity": -math.inf}


def parse_number(text: str) -> float:
    """A string as a number, as the runner's ``ParseNumber``: trimmed, ``''``→0, a decimal (sign,
    point, exponent), ``0x`` hex or ``0o`` octal (32-bit), ``Infinity``; NaN otherwise."""
    s = text.strip()
    if not s:
        return 0.0
    if _DECIMAL.fullmatch(s):
        return float(s)
    radix = {"0x": 16, "0o": 8}.get(s[:2])
    if radix is not None and len(s) > 2 and s.isascii() and "_" not in s:
        try:
            number = int(s[2:], radix)
        except ValueError:
            return NAN
        if number >= 2**32:  # beyond Int32 (parsed as its bits): the runner gives NaN
            return NAN
        return float(number - 2**32 if number >= 2**31 else number)
    return _INFINITY.get(s, NAN)


def _float(number: float) -> float:
    """A number as a double, as JavaScript holds it (an integer too large for one is ±Infinity)."""
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def to_number(value: Any) -> float:
    """GitHub's number conversion: null→0, true→1, false→0, strings parsed, arrays and objects→NaN."""
    k = kind(value)
    if k == NUM:
        return _float(value)
    if k == NULL:
        return 0.0
    if k == BOOL:
        return 1.0 if value else 0.0
    if k == STR:
        return parse_number(value)
    return NAN


def fold(text: str) -> str:
    """The form strings are compared in: upper case, except the dotless ``ı`` (as GitHub)."""
    if "ı" not in text:
        return text.upper()
    return "".join(c if c == "ı" else c.upper() for c in text)


def _coerce(a: Any, b: Any) -> tuple[Any, Any, int, int]:
    ka, kb = kind(a), kind(b)
    while ka != kb:
        if ka == NUM and kb == STR:
            return a, parse_number(b), NUM, NUM
        if ka == STR and kb == NUM:
            return parse_number(a), b, NUM, NUM
        if ka in (NULL, BOOL):
            a, ka = to_number(a), NUM
        elif kb in (NULL, BOOL):
            b, kb = to_number(b), NUM
        else:
            break
    return a, b, ka, kb


def equals(a: Any, b: Any) -> bool:
    """GitHub's ``==``: loose (see the module docstring), case-insensitive for strings."""
    if type(a) is str and type(b) is str:
        return a == b or fold(a) == fold(b)
    a, b, ka, kb = _coerce(a, b)
    if ka != kb:
        return False
    if ka == STR:
        return fold(a) == fold(b)
    if ka in (NUM, BOOL, NULL):
        return bool(a == b)  # NaN == NaN is false, as required
    return a is b


def less(a: Any, b: Any) -> bool:
    """GitHub's ``<`` (false for NaN, arrays, objects and mixed kinds that stay mixed)."""
    a, b, ka, kb = _coerce(a, b)
    if ka != kb:
        return False
    if ka == NUM:
        return bool(a < b)
    if ka == STR:
        return fold(a) < fold(b)
    if ka == BOOL:
        return not a and bool(b)
    return False


def greater(a: Any, b: Any) -> bool:
    """GitHub's ``>``."""
    a, b, ka, kb = _coerce(a, b)
    if ka != kb:
        return False
    if ka == NUM:
        return bool(a > b)
    if ka == STR:
        return fold(a) > fold(b)
    if ka == BOOL:
        return bool(a) and not b
    return False


def number_text(value: float) -> str:
    """A number as GitHub's runner prints it: .NET's ``0.#######`` (15 significant digits, at most 7
    decimals, never an exponent; a negative number that rounds to zero is ``-0``)."""
    if isinstance(value, int) and abs(value) < 10**15:
        return str(value)
    f = _float(value)
    if f != f:  # noqa: PLR0124 - NaN test
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    d = Decimal(f)  # the exact binary value, rounded as .NET does: 15 digits, then the format's 7 decimals
    d = d.quantize(Decimal(1).scaleb(d.adjusted() - 14), rounding=ROUND_HALF_UP)
    if int(d.as_tuple().exponent) < -7:
        d = d.quantize(_SEVEN_DECIMALS, rounding=ROUND_HALF_UP)
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


_SEVEN_DECIMALS: Final = Decimal("1e-7")


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as data ``json.dumps`` writes as GitHub does (whole numbers as integers, NaN as null)."""
    if depth > 100:
        raise ExprError("value nested too deeply to convert to JSON")
    k = kind(value)
    if k == NUM and not isinstance(value, bool):
        if isinstance(value, float):
            if value != value or math.isinf(value):  # noqa: PLR0124 - NaN test
                return None  # JSON.stringify writes null for these
            if value.is_integer() and abs(value) < 1e21:
                return int(number_text(value))  # 15 significant digits, as the runner
        return value
    if k == ARR:
        return [jsonable(v, depth + 1) for v in value]
    if k == OBJ:
        return {str(key): jsonable(v, depth + 1) for key, v in value.items()}
    return value


def to_json(value: Any) -> str:
    """``toJSON``: indented (two spaces) JSON, as GitHub writes it."""
    text = json.dumps(jsonable(value), indent=2, ensure_ascii=False)
    if len(text) > MAX_RESULT:
        raise ExprError(f"toJSON result longer than {MAX_RESULT} characters")
    return text


def to_string(value: Any) -> str:
    """GitHub's string conversion (what ``${{ }}`` writes): null→'', booleans, numbers, JSON for the rest."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    k = kind(value)
    if k == STR:
        return str(value)
    if k == NUM:
        return number_text(value)
    return to_json(value)


def from_json(text: str) -> Any:
    """``fromJSON``: a JSON text to a value (bounded: size, nesting; no NaN/Infinity constants)."""
    if len(text) > MAX_JSON:
        raise ExprError(f"fromJSON input longer than {MAX_JSON} characters")

    def reject(name: str) -> Any:
        raise ValueError(f"invalid JSON constant {name}")

    try:
        return json.loads(text, parse_constant=reject, parse_int=_json_int)
    except RecursionError:
        raise ExprError("fromJSON input nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise ExprError(f"fromJSON: invalid JSON: {exc}") from None


def _json_int(digits: str) -> int | float:
    """A JSON integer: exact up to 2**53 (as a double holds it), a double beyond."""
    return int(digits) if len(digits) < 16 else float(digits)


def get_key(obj: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``obj[key]`` with GitHub's case-insensitive keys; ``default`` when absent."""
    try:
        return obj[key]
    except KeyError:
        pass
    except TypeError:
        return default
    folded = fold(key)
    for k, v in obj.items():
        if isinstance(k, str) and fold(k) == folded:
            return v
    return default


def index_value(obj: Any, index: Any) -> Any:
    """``obj[index]`` (or ``obj.index``): null when absent, as GitHub; ``Filtered`` arrays map over items."""
    if type(obj) is dict:
        return (
            get_key(obj, index if type(index) is str else to_string(index)) if is_primitive(index) else None
        )
    k = kind(obj)
    if k == OBJ:
        return get_key(obj, to_string(index)) if is_primitive(index) else None
    if k != ARR:
        return None
    if isinstance(obj, Filtered):
        out = Filtered()
        for item in obj:
            ik = kind(item)
            if ik == OBJ and kind(index) == STR:
                v = get_key(item, index, _MISSING)
                if v is not _MISSING:
                    out.append(v)
            elif ik == ARR and kind(index) == NUM:
                i = _array_index(index)
                if i is not None and i < len(item):
                    out.append(item[i])
        return out
    if not is_primitive(index):
        return None
    i = _array_index(to_number(index))
    return obj[i] if i is not None and i < len(obj) else None


def star_value(obj: Any) -> Filtered:
    """``obj.*`` / ``obj[*]``: an array's elements, an object's values; an empty array otherwise."""
    k = kind(obj)
    if isinstance(obj, Filtered):
        out = Filtered()
        for item in obj:
            ik = kind(item)
            if ik == OBJ:
                out.extend(item.values())
            elif ik == ARR:
                out.extend(item)
        return out
    if k == ARR:
        return Filtered(obj)
    if k == OBJ:
        return Filtered(obj.values())
    return Filtered()


_MISSING: Final = object()


def _array_index(number: float) -> int | None:
    if number != number or math.isinf(number) or number < 0:  # noqa: PLR0124 - NaN test
        return None
    return int(number)
