"""Secrets are never shown: fields named like one (`password`, `token`, `api_key`,
`secret`, `authorization`, ...) and those a task, flow or machine declares with `secret=`
are replaced by "***" wherever waypost shows user data to people (the API, the dashboard,
the logs). They are stored as given: a task needs its real input.

Declared names apply to every definition of the process that shows them: masking one
field too many is harmless, one too few is a leak.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import DefinitionError
from .registry import registry

MASK = "***"
#: Field names masked everywhere (compared lower-case, `-` read as `_`).
COMMON = frozenset({"password", "passwd", "passphrase", "secret", "token", "api_key",
                    "apikey", "authorization", "access_token", "refresh_token",
                    "client_secret", "private_key", "cookie", "session"})
#: Endings that make a field a secret: `db_password`, `stripe_secret`, `github_token`.
_ENDINGS = ("_password", "_secret", "_token", "_api_key", "_private_key")


def declare(names: Iterable[str] | str | None, where: str) -> tuple[str, ...]:
    """Field names a definition says are secret; returns them, checked."""
    if names is None:
        return ()
    found = (names,) if isinstance(names, str) else tuple(names)
    for name in found:
        if not isinstance(name, str) or not name:
            raise DefinitionError(f"{where}: secret= names fields by non-empty strings, "
                                  f"not {name!r}")
    registry.declare_secrets(_norm(n) for n in found)
    return found


def _norm(name: str) -> str:
    return name.lower().replace("-", "_")


def is_secret(name: str) -> bool:
    key = _norm(name)
    return key in COMMON or registry.declares_secret(key) or key.endswith(_ENDINGS)


def mask(value: Any, depth: int = 0) -> Any:
    """`value` with every secret field's value replaced, at any depth (JSON values)."""
    if depth > 64:
        return value
    if isinstance(value, dict):
        return {k: MASK if isinstance(k, str) and is_secret(k) and v is not None
                else mask(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, depth + 1) for v in value]
    return value


def mask_call(call: Any, params: list[str]) -> Any:
    """A step's input, `{"args": [...], "kwargs": {...}}`, with the positional arguments
    of secret parameters (named in order by `params`) masked too."""
    if not isinstance(call, dict) or not isinstance(call.get("args"), list):
        return mask(call)
    args = [MASK if i < len(params) and is_secret(params[i]) and a is not None else mask(a)
            for i, a in enumerate(call["args"])]
    return {**mask({k: v for k, v in call.items() if k != "args"}), "args": args}
