"""The binary state codec: msgspec MessagePack straight from and into the state dataclass.

This is the path every snapshot, move and persist takes, so it avoids Python-level walks:

* **Encode** is one ``msgspec.msgpack.Encoder.encode`` call. Dataclasses become maps of their fields,
  ``bytes``/``bytearray`` become raw msgpack ``bin`` (never base64), tuples/sets/frozensets become
  arrays, enums their value, dict keys keep their type (an ``int`` key stays an ``int``). The encoder's
  ``enc_hook`` only handles pathlib paths (as ``str``) and subclasses of ``str``/``int``/``float``.
  When msgspec refuses a value we walk the state once, on that error path only, to name the field:
  ``state.items[3].handle: cannot serialize object of type 'socket'``.
* **Decode** is one typed ``msgspec.msgpack.Decoder(type=cls).decode`` call: nested dataclasses, enums,
  tuples, sets, ``dict[int, X]`` and the rest come back as the annotations say; paths go through the
  ``dec_hook``. Field defaults and default factories fill fields missing from the data and unknown keys
  are ignored, so a state class may gain fields (with defaults) or lose fields between versions.
* **Fallback.** Some annotations have no msgspec typed decoder (``Path | str``, unions of two
  dataclasses or of two array types, ``InitVar``, enums with values other than all-str/all-int,
  unresolvable string annotations, ...). :class:`StateCodec` finds out once, when it is built, and then
  decodes such classes untyped and rebuilds them with ``dataclass_from_wire``: same result, slower.
  A typed decode that fails validation (the data does not match the annotations, e.g. a field changed
  type between versions, or an ``int`` annotation that held a ``str``) is retried the same lenient way,
  which coerces as paglets 2.0 does; only if that fails too is it an error.

Errors: every failure is a :class:`SerializationError` naming the class, chained (``from``) to the
msgspec or user exception. Malformed bytes never raise anything else.

Input buffers: :meth:`StateCodec.decode` takes ``bytes``, ``bytearray`` or a ``memoryview`` (of an
mmap, say) and reads it in place; only the decoded values are new objects.

Dict keys differ from the wire-dict form on purpose: there, keys are strings (JSON), here they keep
their type, because msgpack can carry them and a typed decode restores ``dict[int, X]`` exactly.

Integers must fit msgpack's range (-2**63 .. 2**64-1); the wire-dict form has no such bound.

Values msgpack cannot tell apart come back by annotation only: in ``Any``/``object`` fields tuples and
sets come back as lists, nested dataclasses as dicts, enums and paths as their value (as with 2.0's
wire dicts); ``bytes | bytearray`` gives ``bytes`` and ``Path | str`` the first member. A typed decode
does not call the class's ``__init__`` (msgspec sets the fields, then runs ``__post_init__``); the
fallback calls the constructor. For ordinary dataclasses the result is the same.
"""

from __future__ import annotations

import dataclasses
from pathlib import PurePath
from typing import Any, Final, Generic, TypeVar

import msgspec

from paglets._errors import SerializationError
from paglets.serialization._cache import ClassCache
from paglets.serialization._from_wire import dataclass_from_wire, value_from_wire
from paglets.serialization._to_wire import find_encoding_problem

__all__ = [
    "MAX_CACHED_CODECS",
    "CodecStatistics",
    "StateCodec",
    "codec_for",
    "decode_state",
    "encode_state",
    "encode_state_into",
]

T = TypeVar("T")

#: State classes whose codec (typed msgspec decoder included) stays built. Building one costs tens
#: of microseconds; a host runs few state classes, and the bound keeps reloaded classes from piling up.
MAX_CACHED_CODECS: Final = 512

Buffer = bytes | bytearray | memoryview


class CodecStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """What one :class:`StateCodec` has done (counts are approximate under concurrent use)."""

    state_class: str
    typed: bool
    fallback_reason: str | None
    encoded: int
    decoded: int
    lenient_decodes: int


class _Unencodable(TypeError):
    """Raised by the encoder hook for a value msgspec cannot encode; replaced by a precise error."""


def _enc_hook(value: Any) -> Any:
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    raise _Unencodable(type(value).__name__)


def _dec_hook(annotation: Any, value: Any) -> Any:
    # msgspec calls this for annotations it does not handle itself: paths, ``object``, str/int
    # subclasses, classes it knows nothing about. The wire-dict rules convert them.
    if annotation is object:
        return value
    if type(value) is str and isinstance(annotation, type) and issubclass(annotation, PurePath):
        return annotation(value)  # the common case, without the generic walk
    return value_from_wire(annotation, value)


# Encoders and decoders are thread-safe (msgspec >= 0.16) and reused for every call.
_ENCODER: Final = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_UNTYPED: Final = msgspec.msgpack.Decoder()


class StateCodec(Generic[T]):
    """Encodes and decodes instances of one dataclass; get one with :func:`codec_for`."""

    __slots__ = ("_decoded", "_decoder", "_encoded", "_fallback_reason", "_lenient", "_name", "state_class")

    def __init__(self, state_class: type[T]) -> None:
        if not (isinstance(state_class, type) and dataclasses.is_dataclass(state_class)):
            raise SerializationError(f"{state_class!r} is not a dataclass class")
        self.state_class: type[T] = state_class
        self._name = f"{state_class.__module__}:{state_class.__qualname__}"
        self._decoder: msgspec.msgpack.Decoder[T] | None
        self._fallback_reason: str | None
        try:
            self._decoder = msgspec.msgpack.Decoder(type=state_class, dec_hook=_dec_hook)
            self._fallback_reason = None
        except Exception as exc:  # TypeError for unsupported types, NameError for forward refs, ...
            self._decoder = None
            self._fallback_reason = f"{type(exc).__name__}: {exc}"
        self._encoded = 0
        self._decoded = 0
        self._lenient = 0

    @property
    def typed(self) -> bool:
        """Whether decoding goes straight into the class (``False``: untyped decode + rebuild)."""
        return self._decoder is not None

    @property
    def fallback_reason(self) -> str | None:
        """Why msgspec could not build a typed decoder for the class, if it could not."""
        return self._fallback_reason

    def encode(self, state: T) -> bytes:
        """The msgpack bytes of ``state``."""
        try:
            data = _ENCODER.encode(state)
        except Exception as exc:
            raise self._encode_error(state, exc) from exc
        self._encoded += 1
        return data

    def encode_into(self, state: T, buffer: bytearray, offset: int = 0) -> int:
        """Write the msgpack bytes of ``state`` into ``buffer`` at ``offset``; return their length.

        ``buffer`` is resized to end exactly after the encoded bytes; bytes before ``offset`` are kept.
        On error the buffer is truncated back to ``offset``.
        """
        if not 0 <= offset <= len(buffer):
            raise ValueError(f"offset {offset} outside the buffer (length {len(buffer)})")
        try:
            _ENCODER.encode_into(state, buffer, offset)
        except Exception as exc:
            del buffer[offset:]
            raise self._encode_error(state, exc) from exc
        self._encoded += 1
        return len(buffer) - offset

    def decode(self, data: Buffer) -> T:
        """Rebuild a state from msgpack bytes (any buffer; a ``memoryview`` is read in place)."""
        decoder = self._decoder
        if decoder is None:
            return self._decode_lenient(data, None)
        try:
            state = decoder.decode(data)
        except (msgspec.ValidationError, SerializationError) as exc:
            return self._decode_lenient(data, exc)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # str payloads are not valid UTF-8
            raise SerializationError(f"malformed state bytes for {self._name}: {exc}") from exc
        except RecursionError as exc:
            raise SerializationError(f"state bytes for {self._name} nest too deeply") from exc
        except Exception as exc:  # __post_init__ or a default factory of the user's class raised
            raise SerializationError(f"building {self._name} failed: {type(exc).__name__}: {exc}") from exc
        self._decoded += 1
        return state

    def statistics(self) -> CodecStatistics:
        return CodecStatistics(
            state_class=self._name,
            typed=self.typed,
            fallback_reason=self._fallback_reason,
            encoded=self._encoded,
            decoded=self._decoded,
            lenient_decodes=self._lenient,
        )

    def __repr__(self) -> str:
        mode = "typed" if self.typed else "fallback"
        return f"<StateCodec {self._name} {mode}>"

    def _decode_lenient(self, data: Buffer, typed_error: Exception | None) -> T:
        try:
            raw = _UNTYPED.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise SerializationError(f"malformed state bytes for {self._name}: {exc}") from exc
        try:
            state = dataclass_from_wire(self.state_class, raw)
        except SerializationError as exc:
            detail = f" (typed decode: {typed_error})" if typed_error is not None else ""
            raise SerializationError(f"cannot decode state of {self._name}: {exc}{detail}") from exc
        self._decoded += 1
        self._lenient += 1
        return state

    def _encode_error(self, state: object, exc: Exception) -> SerializationError:
        problem = find_encoding_problem(state)
        if problem is not None:
            return SerializationError(problem)
        return SerializationError(f"cannot encode state of {self._name}: {type(exc).__name__}: {exc}")


_CODECS: Final[ClassCache[StateCodec[Any]]] = ClassCache(StateCodec, MAX_CACHED_CODECS)
_cached_codec: Final = _CODECS.get


def codec_for(state_class: type[T]) -> StateCodec[T]:
    """The (cached) codec of a dataclass; ``SerializationError`` if ``state_class`` is not one."""
    return _cached_codec(state_class)


def encode_state(state: object) -> bytes:
    """The msgpack bytes of a dataclass instance (``codec_for(type(state)).encode(state)``)."""
    return _cached_codec(type(state)).encode(state)


def encode_state_into(state: object, buffer: bytearray, offset: int = 0) -> int:
    """Encode ``state`` into ``buffer`` at ``offset`` (see :meth:`StateCodec.encode_into`)."""
    return _cached_codec(type(state)).encode_into(state, buffer, offset)


def decode_state(state_class: type[T], data: Buffer) -> T:
    """Rebuild a ``state_class`` instance from msgpack bytes (see :meth:`StateCodec.decode`)."""
    codec: StateCodec[T] = _cached_codec(state_class)
    return codec.decode(data)
