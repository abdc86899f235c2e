# -*- test-case-name: frptx.test.test_config -*-
"""
Read frps/frpc configuration files: pick the format from the file
extension, render frp's C{{{ .Envs.NAME }}} template, decode, then hand the
document to the schema check and the builders.

Every problem (missing file, syntax error, unknown key, bad value,
unsupported feature) ends up in one L{ConfigError}; a user never sees a
traceback for a config mistake.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .build import build_client_config, build_server_config
from .model import ClientConfig, ConfigError, ServerConfig
from .schema import CLIENT_SCHEMA, SERVER_SCHEMA, Struct, check_structure, check_unsupported

__all__ = [
    "load_server_config",
    "load_client_config",
    "parse_server_config",
    "parse_client_config",
    "render_template",
    "read_config_file",
]

_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}

# Go text/template actions frp files use: {{ .Envs.NAME }}, with optional
# trim markers ({{- ... -}}), and {{/* comments */}}.
_ACTION = re.compile(r"\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}", re.DOTALL)
_ENV_REF = re.compile(r"^\.Envs\.([A-Za-z_][A-Za-z0-9_]*)$")
_COMMENT = re.compile(r"^/\*.*\*/$", re.DOTALL)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def render_template(text: str, env: Mapping[str, str], source: str = "<config>") -> str:
    """
    Render the subset of Go's text/template that frp configs use.

    A variable missing from C{env} renders as "" (the zero value of frp's
    C{map[string]string}).  Any other template action is an error rather than
    being passed through, because frp would not pass it through either.
    """
    out: list[str] = []
    pos = 0
    errors: list[tuple[str, str]] = []
    for match in _ACTION.finditer(text):
        out.append(text[pos : match.start()])
        if match.group(1):
            out[-1] = out[-1].rstrip()
        body = match.group(2)
        ref = _ENV_REF.match(body)
        if ref:
            out.append(env.get(ref.group(1), ""))
        elif not _COMMENT.match(body):
            errors.append(
                (
                    source,
                    f"line {_line_of(text, match.start())}: unsupported template action "
                    f"{match.group(0)!r}; only {{{{ .Envs.NAME }}}} is supported",
                )
            )
        pos = match.end()
        if match.group(3):
            while pos < len(text) and text[pos].isspace():
                pos += 1
    out.append(text[pos:])
    if errors:
        raise ConfigError(errors, source)
    return "".join(out)


def _detect_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext in _FORMATS:
        return _FORMATS[ext]
    if ext == ".ini":
        raise ConfigError(
            [
                (
                    path,
                    "the legacy INI format is not supported; "
                    "rewrite the file in frp's YAML, TOML or JSON format (.yaml/.yml, .toml, .json)",
                )
            ],
            path,
        )
    shown = repr(ext) if ext else "no extension"
    raise ConfigError(
        [(path, f"cannot tell the config format from {shown}; use .yaml, .yml, .toml or .json")],
        path,
    )


def _decode(text: str, fmt: str, source: str) -> Any:
    """Decode C{text}; syntax errors become ConfigError naming file and line.

    Each parser is imported for its own format only: PyYAML alone is ~0.6 MiB of
    RSS that a frps or frpc reading TOML or JSON keeps for nothing.
    """
    try:
        if fmt == "yaml":
            return _decode_yaml(text, source)
        if fmt == "toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:
                import tomli as tomllib
            try:
                return tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                raise ConfigError([(source, f"TOML syntax error: {e}")], source) from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(
                [(source, f"line {e.lineno}, column {e.colno}: JSON syntax error: {e.msg}")], source
            ) from None
    except RecursionError:
        raise ConfigError([(source, "document is nested too deeply")], source) from None


def _decode_yaml(text: str, source: str) -> Any:
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError([(source, f"{where}YAML syntax error: {problem}")], source) from None
    if isinstance(document, dict):
        # frp drops top-level keys starting with "." so that YAML
        # files can hold anchors to merge (`.common: &common`).
        document = {k: v for k, v in document.items() if not (isinstance(k, str) and k.startswith("."))}
    return {} if document is None else document


def read_config_file(path: str, env: Mapping[str, str] | None = None) -> Any:
    """
    Read, template-render and decode C{path}; returns the raw document.

    @raise ConfigError: unreadable file, unknown format, template or syntax error.
    """
    fmt = _detect_format(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ConfigError([(path, "file not found")], path) from None
    except IsADirectoryError:
        raise ConfigError([(path, "is a directory, not a config file")], path) from None
    except OSError as e:
        raise ConfigError([(path, f"cannot read file: {e.strerror or e}")], path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError([(path, f"line {line}: not valid UTF-8")], path) from None
    text = render_template(text, os.environ if env is None else env, path)
    return _decode(text, fmt, path)


def _path_key(path: str) -> list[tuple[int, Any]]:
    """Natural sort key for an error path: list indices compare as numbers."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.\[\]]+", path) if part]


def _parse(
    schema: Struct, side: str, build: Callable[[Any, list[tuple[str, str]]], Any], data: Any, source: str
) -> Any:
    if isinstance(data, Mapping) and not isinstance(data, dict):
        data = dict(data)
    cleaned, errors = check_structure(schema, data, source)
    config = build(cleaned, errors)
    errors.extend(check_unsupported(side, cleaned))
    if errors:
        # Group problems by where they are in the file (proxies[2] before
        # proxies[10]); the sort is stable, so each key keeps its own order.
        errors.sort(key=lambda error: _path_key(error[0]))
        raise ConfigError(errors, source)
    return config


def parse_server_config(data: Mapping[str, Any], source: str = "<config>") -> ServerConfig:
    """
    Validate an already-decoded frps document and build its L{ServerConfig}.

    @raise ConfigError: listing every problem found.
    """
    config: ServerConfig = _parse(SERVER_SCHEMA, "server", build_server_config, data, source)
    return config


def parse_client_config(data: Mapping[str, Any], source: str = "<config>") -> ClientConfig:
    """
    Validate an already-decoded frpc document and build its L{ClientConfig}.

    @raise ConfigError: listing every problem found.
    """
    config: ClientConfig = _parse(CLIENT_SCHEMA, "client", build_client_config, data, source)
    return config


def load_server_config(path: str, env: Mapping[str, str] | None = None) -> ServerConfig:
    """
    Load frps' configuration file.  C{env} (default C{os.environ}) feeds
    C{{{ .Envs.NAME }}}.
    """
    return parse_server_config(read_config_file(path, env), path)


def load_client_config(path: str, env: Mapping[str, str] | None = None) -> ClientConfig:
    """
    Load frpc's configuration file.  C{env} (default C{os.environ}) feeds
    C{{{ .Envs.NAME }}}.
    """
    return parse_client_config(read_config_file(path, env), path)
