"""A raw HTTP client of ``/v1`` for the tests: JSON in, (status, headers, decoded body) out."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        assert "json" in self.type, (self.status, self.type, self.body[:200])
        return json.loads(self.body)

    @property
    def problem(self) -> dict[str, Any]:
        assert self.type == "application/problem+json", (self.status, self.type, self.body[:200])
        body: dict[str, Any] = json.loads(self.body)
        assert {"type", "title", "status", "detail"} <= body.keys() and body["status"] == self.status, body
        return body


class V1:
    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token

    def _request(self, method: str, path: str, body: Any = None) -> urllib.request.Request:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        return req

    def call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Reply:
        try:
            with urllib.request.urlopen(self._request(method, path, body), timeout=timeout) as resp:
                return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())

    def get(self, path: str) -> Reply:
        return self.call("GET", path)

    def post(self, path: str, body: Any = None) -> Reply:
        return self.call("POST", path, body)

    def delete(self, path: str) -> Reply:
        return self.call("DELETE", path)

    def stream(self, path: str, timeout: float = 120) -> Iterator[bytes]:
        """The answer's body as it arrives (each piece as the server sent it)."""
        with urllib.request.urlopen(self._request("GET", path), timeout=timeout) as resp:
            assert resp.status == 200
            while True:
                piece = resp.read1(65536)
                if not piece:
                    return
                yield piece
