"""The README's walk-through stays true: every API call it makes exists with that method, every
setting it names is one, and its socket.io snippet is valid Python."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from whatsgate.entrypoints.app import create_app
from whatsgate.entrypoints.settings import MEMORY_DATABASE, Settings

README = Path(__file__).resolve().parent.parent / "README.md"
SANDBOX_PREFIX = "WHATSGATE_SANDBOX"


def walk_through() -> str:
    text = README.read_text()
    return text[text.index("## Two-minute walk-through") : text.index("## As a library")]


def curl_calls() -> list[tuple[str, str]]:
    """(method, path) of every curl command, continuation lines joined."""
    text = walk_through().replace("\\\n", " ")
    calls = []
    for command in re.findall(r"curl [^\n]*", text):
        path = re.search(r"localhost:8000(/[^\s\"?]*)", command)
        assert path is not None, command
        method = "post" if " -d " in command else "get"
        calls.append((method, re.sub(r"\$[A-Z]+", "x", path.group(1))))
    return calls


def test_every_call_of_the_walk_through_is_in_the_api(tmp_path: Path) -> None:
    settings = Settings(engine="sandbox", database_url=MEMORY_DATABASE, data_dir=tmp_path)
    schema = create_app(settings, announce=None).openapi_schema.to_schema()
    calls = curl_calls()
    assert len(calls) >= 9
    for method, path in calls:
        found = [
            methods
            for template, methods in schema["paths"].items()
            if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path)
        ]
        assert found and method in found[0], f"{method.upper()} {path} is not in the API"


def test_the_socketio_snippet_is_python_and_speaks_the_contract() -> None:
    [snippet] = re.findall(r"```python\n(.*?)```", walk_through(), re.S)
    ast.parse(snippet)
    assert 'auth={"token": key}' in snippet and '"subscribe"' in snippet


def test_every_setting_it_names_exists() -> None:
    text = walk_through()
    named = set(re.findall(r"WHATSGATE_[A-Z_]+", text))
    # The table abbreviates a second sandbox setting: `WHATSGATE_SANDBOX_QR_FIRST`, `_QR_NEXT`.
    named |= {
        SANDBOX_PREFIX + short for short in re.findall(r"`WHATSGATE_[A-Z_]+`, `(_\w+)`", text)
    }
    fields = {f"WHATSGATE_{name.upper()}" for name in Settings.model_fields}
    assert len(named) > 15 and named <= fields, named - fields
