"""GitHub's issue-comment endpoints on loopback, for the report's `comment` step.

A real HTTP server (stdlib `http.server`, in a thread on 127.0.0.1 and a free port) that holds
each pull request's comments, pages them as GitHub does (`per_page`, `page`), refuses a wrong
token (401) and a body over 65536 characters (422), can be told to answer every request with
one status, and records each request it gets.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BODY_LIMIT = 65536


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case, as HTTP ignores case
    body: Any


@dataclass
class FakeGitHub:
    repo: str
    token: str
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    fail: int | None = None  # answer every request with this status
    url: str = ""
    next_id: int = 1000

    def add(self, number: int, body: str, login: str = "someone") -> dict[str, Any]:
        self.next_id += 1
        made = {
            "id": self.next_id,
            "body": body,
            "user": {"login": login},
            "html_url": f"https://github.com/{self.repo}/pull/{number}#issuecomment-{self.next_id}",
        }
        self.comments.setdefault(number, []).append(made)
        return made

    def refusal(self, request: Request) -> tuple[int, Any] | None:
        if self.fail is not None:
            return self.fail, {"message": "Resource not accessible by integration"}
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials"}
        if len((request.body or {}).get("body", "")) > BODY_LIMIT:
            return 422, {"message": f"Body is too long (maximum is {BODY_LIMIT} characters)"}
        return None

    def answer(self, request: Request) -> tuple[int, Any]:
        self.requests.append(request)
        if refused := self.refusal(request):
            return refused
        body = (request.body or {}).get("body", "")
        parts = urlsplit(request.path)
        route = parts.path.removeprefix(f"/repos/{self.repo}/issues/").split("/")
        match request.method, route:
            case "GET", [number, "comments"] if number.isdigit():
                query = parse_qs(parts.query)
                per_page = int(query.get("per_page", ["30"])[0])
                page = int(query.get("page", ["1"])[0])
                listed = self.comments.get(int(number), [])
                return 200, listed[(page - 1) * per_page : page * per_page]
            case "POST", [number, "comments"] if number.isdigit():
                return 201, self.add(int(number), body, "github-actions[bot]")
            case "PATCH", ["comments", comment_id]:
                for found in (c for listed in self.comments.values() for c in listed):
                    if str(found["id"]) == comment_id:
                        found["body"] = body
                        return 200, found
        return 404, {"message": "Not Found"}

    @contextmanager
    def serving(self) -> Iterator[FakeGitHub]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                recorded = Request(
                    self.command,
                    self.path,
                    {name.lower(): value for name, value in self.headers.items()},
                    json.loads(raw) if raw else None,
                )
                status, payload = api.answer(recorded)
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = handle_any

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
