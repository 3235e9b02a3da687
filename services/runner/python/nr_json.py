"""Results as JSON, for the app host and its workers: the values the author guide lists
converted (dates, decimals, UUIDs, sets, bytes), NaN and infinities refused, and where
in a result the first value JSON cannot carry is."""

import datetime
import decimal
import json
import re
import uuid


def default(value):
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    raise TypeError("object of type %s is not JSON serialisable" % type(value).__name__)


# Encoders made once: `json.dumps` with options builds a new encoder on every call.
encode_result = json.JSONEncoder(default=default, allow_nan=False, separators=(",", ":")).encode
encode_header = json.JSONEncoder(default=default, separators=(",", ":")).encode


def dumps(value):
    return encode_result(value).encode()


# A UTF-16 surrogate on its own: Python strings may hold one, JSON text escapes it, and
# neither the job queue (Postgres jsonb) nor the runner can read it back.
_SURROGATE = re.compile("[\\ud800-\\udfff]")


# In the JSON text `dumps` makes (every non-ASCII character escaped), what may be
# unstorable: a run of 19 or more digits (an integer that may be beyond 64 bits) or a
# surrogate escape that is not one half of a pair. Either may also be text inside a
# string; a match only means the value is walked (`unjsonable`) to be sure. Found with
# C-speed scans (a regex for digit runs backtracks at every digit).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19
_LONE_SURROGATE = re.compile(
    rb"\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}"
)


def unstorable(value, text):
    """What in a job's result (`value`, dumped as `text`) the job queue cannot keep as
    it is, as `unjsonable(..., stored=True)` says, or None; the walk only when the text
    suggests it."""
    suspect = _LONG_RUN in text.translate(_DIGITS_AS_ZERO) or (
        b"\\ud" in text and _LONE_SURROGATE.search(text) is not None
    )
    return unjsonable(value, stored=True) if suspect else None


def unjsonable(value, path="result", on_path=(), depth=0, events=False, stored=False):
    """Where in `value` the first thing JSON cannot carry is, and what it is, or None:
    the error of a result names it (`result['rows'][3]['price'] is nan`). With `events`,
    an integer beyond 64 bits too: an event (MessagePack) would carry it as a float.
    With `stored` (a job's result, kept in the job queue), such an integer and a string
    holding a lone surrogate too: the result would come back changed or not at all."""
    if depth > 100:
        return None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return path, repr(value)
        return None
    if (events or stored) and isinstance(value, int) and not isinstance(value, bool):
        if not -(2 ** 63) <= value < 2 ** 64:
            return path, "%d, an integer beyond 64 bits (send it as a string)" % value
        return None
    if stored and isinstance(value, str):
        if _SURROGATE.search(value):
            return path, "a string with a lone UTF-16 surrogate (U+D800 to U+DFFF), which the job queue cannot keep"
        return None
    if value is None or isinstance(value, (str, int, bool)):
        return None
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        if id(value) in on_path:
            return path, "the container itself again (a circular reference)"
        on_path = on_path + (id(value),)
        if isinstance(value, dict):
            for key, item in value.items():
                if key is not None and not isinstance(key, (str, int, float, bool)):
                    return path, "a dict with a key of type %s" % type(key).__name__
                if stored and isinstance(key, str) and _SURROGATE.search(key):
                    return path, "a dict with a key holding a lone UTF-16 surrogate"
                found = unjsonable(item, "%s[%r]" % (path, key), on_path, depth + 1, events, stored)
                if found:
                    return found
        else:
            for n, item in enumerate(value):
                found = unjsonable(item, "%s[%d]" % (path, n), on_path, depth + 1, events, stored)
                if found:
                    return found
        return None
    try:
        converted = default(value)
    except TypeError:
        return path, "an object of type %s" % type(value).__name__
    return unjsonable(converted, path, on_path, depth + 1, events, stored)
