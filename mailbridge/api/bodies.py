"""Request bodies: JSON objects read within the configured size, depth and time limits, and
validated by a dialect's pydantic model. A problem is an InvalidInput naming the field as the
caller wrote it (``attachments[1].content``); nothing of a bad body reaches the services."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from mailbridge.api.access import limits_of
from mailbridge.errors import InvalidInput, PayloadTooLarge, Unprocessable

M = TypeVar("M", bound=BaseModel)

BODY_DIGEST = web.RequestKey("body_digest", str)
"""Request key: a digest of the JSON body read (for Idempotency-Key)."""
EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()[:16]



class MalformedJson(InvalidInput):
    """The request body is not JSON, or not a JSON object."""

    code = "malformed_json"


class UnsupportedMediaType(InvalidInput):
    """The request body is declared as something other than JSON."""

    code = "unsupported_media_type"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="Content-Type")


class UnreadableBody(InvalidInput):
    """The request body could not be read as sent (a Content-Encoding it does not follow).
    Where it ends is unknown then, so the connection is closed after the answer."""

    close_connection = True


class RequestTimeout(UnreadableBody):
    """The request body did not arrive within ``request_timeout_seconds`` (408)."""

    code = "request_timeout"


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads' object_pairs_hook: an object naming one key twice is refused (RFC 8259 4:
    the names "SHOULD be unique"; which value a reader keeps is anyone's guess)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def _json_depth(text: str) -> int:
    """How deep the arrays and objects of the JSON ``text`` nest, found without parsing it
    (strings dropped by one regex, then the brackets counted)."""
    depth = deepest = 0
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


_MANY_VALUES = 100_000
"""Bodies with more commas than this (values, roughly) are parsed in a worker thread: a parse
of 40 MB of short values takes long enough to stall other requests, and the GIL still switches
every few milliseconds there. Other bodies, attachments among them, are parsed inline: a long
string parses fast (27 MB of base64 in ~13 ms), and a worker thread's malloc arena would keep
what it allocated (peak RSS of a 20 MB attachment upload 3.7x -> 6.5x its size)."""


def _parse_json(raw: bytearray, max_depth: int) -> tuple[Any, bool]:
    """``raw`` decoded and parsed (ValueError / _DuplicateKey / MalformedJson for bad input),
    and whether it has \\u escapes (only those can make a lone surrogate); the nesting is
    checked before the parse."""
    text = raw.decode("utf-8")
    if text.count("[") + text.count("{") > max_depth and _json_depth(text) > max_depth:
        raise MalformedJson(f"the JSON body nests arrays and objects deeper than {max_depth} "
                            "levels")
    return json.loads(text, object_pairs_hook=_refuse_duplicates), "\\u" in text


def _is_json_media_type(value: str) -> bool:
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))


class UnknownField(InvalidInput):
    """The request names a field the call does not have (often a misspelling)."""

    code = "unknown_field"


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body parsed as a JSON object.

    Raises UnsupportedMediaType (415) for a body declared as anything but JSON (no
    Content-Type is taken as JSON), PayloadTooLarge (413) beyond ``max_request_bytes``,
    MalformedJson (400) for anything but a JSON object (including text that is not UTF-8,
    strings with lone surrogates, a key given twice, nesting deeper than ``max_json_depth``).
    """
    declared = request.headers.get("Content-Type")
    if declared is not None and not _is_json_media_type(declared):
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: "
                                   "application/json)")
    limits = limits_of(request)
    raw = await _read_body(request, limits.max_request_bytes)
    if "Idempotency-Key" in request.headers:
        request[BODY_DIGEST] = hashlib.sha256(raw).hexdigest()[:16]
    if not raw.strip():
        raise MalformedJson("the request body must be a JSON object; it is empty")
    try:
        if raw.count(b",") > _MANY_VALUES:  # in a thread: other requests are served meanwhile
            data, escapes = await asyncio.to_thread(_parse_json, raw, limits.max_json_depth)
        else:
            data, escapes = _parse_json(raw, limits.max_json_depth)
        del raw
    except _DuplicateKey as exc:
        raise MalformedJson(f"the key {exc.key!r} appears twice in one object",
                            field=exc.key) from None
    except (ValueError, RecursionError) as exc:
        detail = f": {exc.msg} at line {exc.lineno} column {exc.colno}" \
            if isinstance(exc, json.JSONDecodeError) else ""
        raise MalformedJson(f"the request body is not valid JSON{detail}") from None
    if not isinstance(data, dict):
        raise MalformedJson(f"the request body must be a JSON object, not {_json_type(data)}")
    bad = _first_bad_string(data, "") if escapes else None
    if bad is not None:
        raise InvalidInput("text is not valid Unicode (a lone surrogate escape)", field=bad or None)
    return data


async def _read_body(request: web.Request, limit: int) -> bytearray:
    """The request body, read from the stream into one buffer (aiohttp's request.read() would
    keep a cached copy for the whole request). PayloadTooLarge beyond ``limit`` bytes,
    UnreadableBody when it does not follow its Content-Encoding, RequestTimeout when it does not
    arrive within ``request_timeout_seconds``."""
    def too_large() -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes")

    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large()
    body = bytearray(min(declared or 0, limit))
    filled = 0
    timeout = limits_of(request).request_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(1 << 20):
                end = filled + len(chunk)
                if end > limit:
                    raise too_large()
                if end <= len(body):
                    body[filled:end] = chunk
                else:
                    del body[filled:]
                    body += chunk
                filled = end
    except web.RequestPayloadError:  # a Content-Encoding the body does not follow, mostly
        encoding = request.headers.get("Content-Encoding")
        raise UnreadableBody(f"the request body could not be read as sent (Content-Encoding: "
                             f"{encoding or 'none'})", field="Content-Encoding") from None
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout:g}s") from None
    del body[filled:]
    return body


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def _first_bad_string(value: Any, path: str) -> str | None:
    """The path of the first string (or key) that cannot be encoded as UTF-8, else None."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if not _is_unicode(item):
                return where
        elif isinstance(item, dict):
            for k, v in item.items():
                sub = f"{where}.{k}" if where else str(k)
                if not _is_unicode(k):
                    return where
                stack.append((v, sub))
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def field_path(loc: Sequence[int | str]) -> str:
    """A pydantic error location as the caller wrote it: ``attachments[0].content``."""
    text = ""
    for step in loc:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step}" if text else step
    return text


def validate_body(model: type[M], data: Mapping[str, Any]) -> M:
    """``data`` validated as ``model``.

    An unknown field is UnknownField (400); a missing field or a value of the wrong type or form
    is InvalidInput with status 422. Either names the field; the first problem is reported.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        unknown = [e for e in errors if e["type"] == "extra_forbidden"]
        if unknown:
            where = field_path(unknown[0]["loc"])
            raise UnknownField(f"unknown field {where!r}", field=where) from None
        first = errors[0]
        where = field_path(first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "missing":
            message = "is required"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise Unprocessable(f"{where}: {message}{more}" if where else message + more,
                           field=where or None) from None
