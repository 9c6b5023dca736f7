"""The input boundary: every request's path, headers, query string and body are checked before a view runs.

One middleware, so every route (API, admin, health) gets the same rules without each view repeating them:

- Chunked bodies: Django's `WSGIRequest` reads `CONTENT_LENGTH` bytes, so a body sent with
  `Transfer-Encoding: chunked` (no length) read as empty — an import with `replace=true` then deleted the
  namespace. When the server has de-chunked the stream and marks its end (gunicorn and uvicorn do;
  `wsgi.input_terminated`, or a complete ASGI body), the body is read to its end, up to the body limit
  (413 beyond); otherwise it cannot be read safely and the request is refused with 411. A chunked body the
  server cannot parse (a bad chunk size or terminator, the client gone mid-body) is a 400, not a 500.
- NUL characters (PostgreSQL refuses them in text and jsonb, which answered 500): refused with 400 in the
  decoded path, query parameter names and values, header values and bodies (raw NUL bytes, and `\\u0000`
  in JSON, named by its path). Config documents (YAML/TOML/INI/env) are checked after parsing by
  `configstore.formats`; form posts are left to the forms, whose fields report NUL as a field error
  (`CharField` already does; `install_form_guards` adds the same to `forms.JSONField`, whose text holds
  `\\u0000` escapes rather than NUL characters).

Every refusal is problem+json (`errors` names the parameter, header or JSON path).
"""

from __future__ import annotations

import io
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError

from controlplane.dualmiddleware import DualModeMiddleware
from controlplane.errors import problem_response
from controlplane.jsonbounds import JSON_NUL_ESCAPE, NUL, NulCharacterError, loads_bounded, nul_path, printable_key

NUL_MESSAGE = "NUL characters are not allowed."
# Sent by clients as a correlation id; a bad value is replaced by a fresh id (RequestTracingMiddleware).
_IGNORED_HEADERS = frozenset({"HTTP_X_REQUEST_ID"})
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
_ADMIN_CONTROL_FIELDS = frozenset({"action", "index", "select_across", "csrfmiddlewaretoken"})
_READ_CHUNK = 64 * 1024


def _body_read_errors() -> tuple[type[BaseException], ...]:
    """What a server's body stream raises on a malformed or cut-off body (gunicorn's parser errors, OSError)."""
    try:
        from gunicorn.http.errors import ParseException
    except ImportError:  # not under gunicorn
        return (OSError, ValueError)
    return (ParseException, OSError, ValueError)


def _invalid(detail: str, errors: dict[str, list[str]]) -> HttpResponse:
    return problem_response(400, detail, code="validation-error", errors=errors)


def _too_large(limit: int) -> HttpResponse:
    return problem_response(413, f"The request body exceeds {limit} bytes.", code="payload-too-large")


def body_limit() -> int:
    """The largest body read into memory (`API_MAX_BODY_BYTES`, Django's DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 5 * 1024 * 1024


def _declared_length(request: HttpRequest) -> int | None:
    raw = request.META.get("CONTENT_LENGTH")
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _read_to_end(stream: io.RawIOBase | io.BufferedIOBase, limit: int) -> bytes | None:
    """Up to `limit` bytes of `stream` until EOF; None when there is more than that."""
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return None


def read_unsized_body(request: HttpRequest) -> HttpResponse | None:
    """Make a body without `Content-Length` (chunked) readable by Django; a 411/413 response when it cannot be.

    The body is read once into memory and put back as a stream of known length, so `request.body`,
    `request.POST` and DRF's parsers all see it.
    """
    if isinstance(request, ASGIRequest):
        stream = request._stream  # the ASGI handler spooled the whole body before building the request
    elif request.META.get("wsgi.input_terminated"):
        stream = request.META["wsgi.input"]  # the server de-chunks and ends the stream at the body's end
    else:
        return problem_response(
            411,
            "This server cannot read a body without Content-Length; send Content-Length.",
            code="length-required",
        )
    limit = body_limit()
    try:
        data = _read_to_end(stream, limit)
    except _body_read_errors() as exc:
        # The framing is broken, so nothing of the body can be trusted; the server closes the connection.
        return problem_response(
            400,
            "The chunked request body is malformed or ended early.",
            code="bad-request",
            errors={"body": [type(exc).__name__]},
        )
    if data is None:
        return _too_large(limit)
    request.META["CONTENT_LENGTH"] = str(len(data))
    request._stream = LimitedStream(io.BytesIO(data), len(data))  # type: ignore[attr-defined]
    return None


def _has_unsized_body(request: HttpRequest) -> bool:
    encoding = request.META.get("HTTP_TRANSFER_ENCODING", "")
    return bool(encoding) and _declared_length(request) is None


def _header_errors(request: HttpRequest) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for name, value in request.META.items():
        if name.startswith("HTTP_") and name not in _IGNORED_HEADERS and isinstance(value, str) and NUL in value:
            errors[f"headers.{name[5:].replace('_', '-').title()}"] = [NUL_MESSAGE]
    return errors


def _query_errors(request: HttpRequest) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    query = request.META.get("QUERY_STRING", "")
    if "%00" not in query and NUL not in query:
        return errors  # only `%00` decodes to NUL: most requests need no parsing here
    for name, values in request.GET.lists():
        if NUL in name or any(NUL in value for value in values):
            errors[printable_key(name)] = [NUL_MESSAGE]
    return errors


def _form_control_errors(request: HttpRequest) -> dict[str, list[str]]:
    """NUL in form names, or in the values of the admin's control fields, which no form field validates.

    `_selected_action` (an action's object ids), `action`, `index` and `select_across` go straight into
    querysets (a NUL in a text primary key was a PostgreSQL error); everything else is a form field and
    reports NUL itself as a field error.
    """
    errors: dict[str, list[str]] = {}
    for name, values in request.POST.lists():
        control = name.startswith("_") or name in _ADMIN_CONTROL_FIELDS
        if NUL in name or (control and any(NUL in value for value in values)):
            errors[printable_key(name)] = [NUL_MESSAGE]
    return errors


def _body_errors(request: HttpRequest) -> dict[str, list[str]]:
    """NUL in a body the forms will not see: raw bytes, or `\\u0000` in JSON (named by its path)."""
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type in _FORM_TYPES and not request.path.startswith("/api/"):
        return _form_control_errors(request)  # form fields report NUL as a field error (CharField, JSONField)
    raw = request.body
    if NUL.encode() in raw:
        return {"body": ["NUL bytes are not allowed in a request body."]}
    if JSON_NUL_ESCAPE.encode() in raw:
        try:
            loads_bounded(raw)
        except NulCharacterError as exc:
            return {exc.path: [NUL_MESSAGE]}
        except ValueError:
            pass  # not (valid) JSON: the view's own parser answers for its syntax
    return {}


class InputBoundaryMiddleware(DualModeMiddleware):
    """Refuses hostile input (NUL anywhere, unreadable or oversized unsized bodies) before any view runs.

    Sync and async (the body is in memory or spooled by then, so reading it does not block the loop).
    """

    def before(self, request: HttpRequest) -> tuple[HttpResponse | None, None]:
        return self.check(request), None

    def check(self, request: HttpRequest) -> HttpResponse | None:
        """A 400/411/413 problem response for input no view should see, else None."""
        if NUL in request.path:
            return _invalid("The request path holds a NUL character.", {"path": [NUL_MESSAGE]})
        errors = _header_errors(request)
        try:
            errors.update(_query_errors(request))
        except TooManyFieldsSent:
            return _invalid("Too many query parameters.", {"query": ["Too many parameters."]})
        if errors:
            return _invalid("The request holds a NUL character; see `errors`.", errors)
        if _has_unsized_body(request):
            refusal = read_unsized_body(request)
            if refusal is not None:
                return refusal
        if (_declared_length(request) or 0) > 0:
            try:
                errors = _body_errors(request)
            except RequestDataTooBig:
                return _too_large(body_limit())
            except TooManyFieldsSent:
                return _invalid("Too many form fields.", {"body": ["Too many fields."]})
            except MultiPartParserError as exc:
                return _invalid("The multipart body cannot be parsed.", {"body": [str(exc)[:200]]})
            if errors:
                return _invalid("The request body holds a NUL character; see `errors`.", errors)
        return None


_FORM_GUARDS_INSTALLED = False


def install_form_guards() -> None:
    """Give every `forms.JSONField` (admin JSON inputs included) a field error for NUL in keys or strings.

    Called once from `ControlplaneConfig.ready`: one place covers every ModelForm the admin builds for a
    model JSONField and every hand-written form using `forms.JSONField`, without touching the apps' forms.
    """
    global _FORM_GUARDS_INSTALLED
    if _FORM_GUARDS_INSTALLED:
        return
    original = forms.JSONField.to_python

    def to_python(self: forms.JSONField, value: Any) -> Any:
        converted = original(self, value)
        path = nul_path(converted)
        if path is not None:
            where = "" if path == "body" else f" (at {path})"
            raise ValidationError(f"NUL characters are not allowed{where}.", code="null_characters_not_allowed")
        return converted

    to_python.__doc__ = original.__doc__
    forms.JSONField.to_python = to_python  # type: ignore[method-assign]
    _FORM_GUARDS_INSTALLED = True
