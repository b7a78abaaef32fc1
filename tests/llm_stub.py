"""A real OpenAI-compatible HTTP server on 127.0.0.1 whose replies a test scripts (the seam the client uses)."""

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubServer:
    """Answers /v1/chat/completions with `reply(request_json, n)`; records every request body."""

    def __init__(self, reply: Callable[[dict, int], str]):
        self.reply, self.requests = reply, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                text = stub.reply(body, len(stub.requests))
                out = json.dumps({"id": f"r{len(stub.requests)}", "object": "chat.completion", "model": "stub",
                                  "created": 0, "choices": [{"index": 0, "finish_reason": "stop",
                                                             "message": {"role": "assistant", "content": text}}],
                                  "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out.encode())

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def sheet_of(request: dict) -> dict[str, list]:
    """The fact sheet a request carries: placeholder name -> [name, description, value, unit]."""
    user = request["messages"][-1]["content"]
    rows = [json.loads(line) for line in user.split("```json", 1)[1].split("```", 1)[0].splitlines() if line.strip()]
    return {row[0]: row for row in rows}


def placeholder_for(request: dict, name: str) -> str:
    """The placeholder the fact sheet in a request offers for fact `name` (e.g. 'n_layers' -> '{n_layers}')."""
    if name not in sheet_of(request):
        raise KeyError(name)
    return "{" + name + "}"
