"""Digits of pi: Chudnovsky binary splitting (what the workers compute), merging the workers' term
ranges into digits, and two independent checks of the result.

Chudnovsky's series gives about 14.18 decimal digits per term::

    1/pi = 12 * sum_k (-1)^k (6k)! (A + B k) / ((3k)! (k!)^3 C^(3k + 3/2))

Binary splitting over a term range ``[a, b)`` yields three integers ``(P, Q, T)``; ranges computed
anywhere combine exactly (:func:`combine`), so workers can each take a range and the coordinator merges
the contiguous prefix as results arrive. With ``(P, Q, T)`` of ``[0, n)``::

    pi = 426880 * sqrt(10005) * Q / T

which is reliable to ``14 * n - GUARD_DIGITS`` decimals (:func:`reliable_digits`).

Checks: the first :data:`KNOWN_DIGITS` decimals are compared with :data:`PI_KNOWN`; longer results with
Ramanujan's 1914 series (:func:`ramanujan_fraction`, about 8 digits per term), a different formula
computed the same way, so an error in one is not repeated by the other.

Big integers travel as hex strings: Python refuses to turn integers of more than 4300 digits into decimal
text by default, and hex is shorter anyway. :func:`decimal_digits` writes long decimals by splitting.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Final

__all__ = [
    "DIGITS_PER_TERM",
    "GUARD_DIGITS",
    "KNOWN_DIGITS",
    "PI_KNOWN",
    "binary_split",
    "combine",
    "decimal_digits",
    "from_hex",
    "pi_fraction",
    "ramanujan_fraction",
    "reliable_digits",
    "terms_for",
    "to_hex",
    "verify",
]

A: Final = 13591409
B: Final = 545140134
C3_OVER_24: Final = 640320**3 // 24
#: Decimal digits each Chudnovsky term adds, rounded down (14.18...).
DIGITS_PER_TERM: Final = 14
#: Decimals computed beyond the ones reported, so that rounding never reaches a reported digit.
GUARD_DIGITS: Final = 10
#: Chunks of at most this many digits are converted with ``str`` directly.
_DIRECT_DIGITS: Final = 2000

#: The first 1000 decimals of pi (after "3.").
PI_KNOWN: Final = (
    "1415926535897932384626433832795028841971693993751058209749445923078164062862089986280348253421170679"
    "8214808651328230664709384460955058223172535940812848111745028410270193852110555964462294895493038196"
    "4428810975665933446128475648233786783165271201909145648566923460348610454326648213393607260249141273"
    "7245870066063155881748815209209628292540917153643678925903600113305305488204665213841469519415116094"
    "3305727036575959195309218611738193261179310511854807446237996274956735188575272489122793818301194912"
    "9833673362440656643086021394946395224737190702179860943702770539217176293176752384674818467669405132"
    "0005681271452635608277857713427577896091736371787214684409012249534301465495853710507922796892589235"
    "4201995611212902196086403441815981362977477130996051870721134999999837297804995105973173281609631859"
    "5024459455346908302642522308253344685035261931188171010003137838752886587533208381420617177669147303"
    "5982534904287554687311595628638823537875937519577818577805321712268066130019278766111959092164201989"
)
KNOWN_DIGITS: Final = len(PI_KNOWN)


def _leaf(k: int) -> tuple[int, int, int]:
    if k == 0:
        p = q = 1
    else:
        p = (6 * k - 5) * (2 * k - 1) * (6 * k - 1)
        q = k * k * k * C3_OVER_24
    t = p * (A + B * k)
    return p, q, (-t if k % 2 else t)


def combine(left: tuple[int, int, int], right: tuple[int, int, int]) -> tuple[int, int, int]:
    """``(P, Q, T)`` of ``[a, c)`` from those of ``[a, b)`` and ``[b, c)``."""
    p1, q1, t1 = left
    p2, q2, t2 = right
    return p1 * p2, q1 * q2, t1 * q2 + p1 * t2


def binary_split(a: int, b: int) -> tuple[int, int, int]:
    """``(P, Q, T)`` of the Chudnovsky terms ``[a, b)`` (``0 <= a < b``)."""
    if not 0 <= a < b:
        raise ValueError(f"not a term range: [{a}, {b})")
    if b - a == 1:
        return _leaf(a)
    middle = (a + b) // 2
    return combine(binary_split(a, middle), binary_split(middle, b))


def terms_for(decimals: int) -> int:
    """Chudnovsky terms needed for ``decimals`` reliable decimals."""
    return max(1, (max(0, decimals) + GUARD_DIGITS) // DIGITS_PER_TERM + 1)


def reliable_digits(terms: int) -> int:
    """Decimals of pi that the first ``terms`` terms determine."""
    return max(0, terms * DIGITS_PER_TERM - GUARD_DIGITS)


@lru_cache(maxsize=64)
def _power_of_ten(exponent: int) -> int:
    value: int = 10**exponent
    return value


def decimal_digits(value: int, width: int) -> str:
    """``value`` (``0 <= value < 10**width``) as exactly ``width`` decimal digits."""
    if width <= _DIRECT_DIGITS:
        return str(value).zfill(width)
    low_width = width // 2
    high, low = divmod(value, _power_of_ten(low_width))
    return decimal_digits(high, width - low_width) + decimal_digits(low, low_width)


def pi_fraction(p: int, q: int, t: int, decimals: int) -> str:
    """The first ``decimals`` decimals of pi from the Chudnovsky sums ``(P, Q, T)`` (of enough terms)."""
    precision = decimals + GUARD_DIGITS
    root = math.isqrt(10005 * _power_of_ten(2 * precision))
    scaled = 426880 * root * q // t
    return decimal_digits(scaled % _power_of_ten(precision), precision)[:decimals]


def _ramanujan_split(a: int, b: int) -> tuple[int, int, int]:
    if b - a == 1:
        if a == 0:
            p = q = 1
        else:
            p = (4 * a - 3) * (4 * a - 2) * (4 * a - 1) * (4 * a)
            q = a**4 * 396**4
        return p, q, p * (1103 + 26390 * a)
    middle = (a + b) // 2
    return combine(_ramanujan_split(a, middle), _ramanujan_split(middle, b))


def ramanujan_fraction(decimals: int) -> str:
    """The first ``decimals`` decimals of pi from Ramanujan's series (an independent second formula)::

    1/pi = (2 sqrt(2) / 9801) * sum_k (4k)! (1103 + 26390 k) / ((k!)^4 396^(4k))
    """
    precision = max(1, decimals) + GUARD_DIGITS
    _p, q, t = _ramanujan_split(0, precision // 7 + 2)  # more than 7.9 digits per term
    root = math.isqrt(2 * _power_of_ten(2 * precision))
    scaled = 9801 * root * q // (4 * t)
    return decimal_digits(scaled % _power_of_ten(precision), precision)[:decimals]


def verify(start: int, digits: str) -> tuple[bool, str, int]:
    """Check ``digits`` as the decimals of pi from position ``start + 1``.

    Returns ``(ok, method, first_wrong)``: ``method`` names the check; ``first_wrong`` is the position
    (1-based, counted from the decimal point) of the first wrong digit, or 0.
    """
    end = start + len(digits)
    if end <= KNOWN_DIGITS:
        expected, method = PI_KNOWN[start:end], "the known value"
    else:
        expected, method = ramanujan_fraction(end)[start:], "Ramanujan's series"
    for index, (got, want) in enumerate(zip(digits, expected, strict=True)):
        if got != want:
            return False, method, start + index + 1
    return True, method, 0


def to_hex(value: int) -> str:
    return hex(value)


def from_hex(text: str) -> int:
    """An integer from :func:`to_hex` text; ``ValueError`` for anything else."""
    value = text.strip()
    if not value.lower().lstrip("-").startswith("0x"):
        raise ValueError(f"not a hex integer: {value[:40]!r}")
    return int(value, 16)
