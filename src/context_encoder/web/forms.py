"""Reading a multipart/form-data body: streamed, in memory only, refused beyond a byte limit or a time limit.

Starlette's own form parser spools large uploads to temporary files; this one never touches the disk.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TypeVar

from fastapi import HTTPException, Request
from pydantic import BaseModel, ValidationError
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect

MAX_PARTS = 16  # a form with more parts than this is no request of ours
MAX_FIELD_BYTES = 1024  # a text field longer than this is refused

Fields = TypeVar("Fields", bound=BaseModel)


@dataclass
class Part:
    name: str = ""
    filename: str | None = None
    content_type: str = ""
    data: bytearray = field(default_factory=bytearray)


class Form:
    """The parts of a multipart/form-data body, kept in memory."""

    def __init__(self, parts: list[Part]):
        self.parts = parts

    def _first(self, name: str) -> Part | None:
        return next((p for p in self.parts if p.name == name), None)

    def file(self, name: str) -> bytearray:
        """The bytes of the file part `name`; 400 if it is missing or empty."""
        part = self._first(name)
        if part is None or not part.data:
            raise HTTPException(400, f"the form has no '{name}' file (send multipart/form-data: 'image' and 'mask')")
        return part.data

    def text(self, name: str) -> str | None:
        """The text field `name`, stripped; None when absent or blank, 400 when it is a file or too long."""
        part = self._first(name)
        if part is None:
            return None
        if part.filename is not None or len(part.data) > MAX_FIELD_BYTES:
            raise HTTPException(400, f"form field '{name}' must be a short text value")
        return part.data.decode("utf-8", errors="replace").strip() or None

    def fields(self, schema: type[Fields]) -> Fields:
        """The text fields that `schema` names, validated by it: absent or blank ones take its defaults."""
        values = {name: value for name in schema.model_fields if (value := self.text(name)) is not None}
        try:
            return schema.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            name = error["loc"][0] if error["loc"] else "?"
            message = error["msg"][:1].lower() + error["msg"][1:]
            raise HTTPException(400, f"form field '{name}': {message} (got '{values.get(name)}')") from None


async def read_form(request: Request, max_bytes: int, timeout: float) -> Form:
    """Stream the request body through a multipart parser, in memory, refusing more than `max_bytes` (413) and
    a body that takes longer than `timeout` seconds to arrive (408, and the connection is closed)."""
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise HTTPException(400, "send multipart/form-data with an 'image' file and a 'mask' file")
    too_large = HTTPException(413, f"the upload is larger than the limit of {max_bytes / 2**20:.1f} MiB")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large

    parts: list[Part] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}
    headers: dict[bytes, bytes] = {}

    def on_part_begin() -> None:
        if len(parts) >= MAX_PARTS:
            raise HTTPException(400, f"the form has more than {MAX_PARTS} parts")
        parts.append(Part())
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        headers[bytes(header["field"]).lower()] = bytes(header["value"])
        header["field"], header["value"] = bytearray(), bytearray()

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        part = parts[-1]
        part.name = disposition.get(b"name", b"").decode("utf-8", errors="replace")
        filename = disposition.get(b"filename")
        part.filename = None if filename is None else filename.decode("utf-8", errors="replace")
        part.content_type = headers.get(b"content-type", b"").decode("latin-1")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data += data[start:end]

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    received = 0
    try:
        async with asyncio.timeout(timeout):  # the whole body, not each chunk: a trickle cannot keep its place
            async for chunk in request.stream():
                received += len(chunk)
                if received > max_bytes:
                    raise too_large
                parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise HTTPException(400, f"malformed multipart/form-data body: {exc}") from None
    except TimeoutError:
        detail = f"the upload took longer than {timeout:g} s ({received:,} bytes received); the connection is closed"
        raise HTTPException(408, detail, headers={"Connection": "close"}) from None
    except ClientDisconnect:
        raise HTTPException(400, "the client closed the connection during the upload") from None
    return Form(parts)
