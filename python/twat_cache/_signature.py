"""Describes a function's parameters to the native key builder.

The key builder (``crates/twat-cache-python/src/key.rs``) binds every call to the
parameters so that ``f(1)``, ``f(a=1)`` and ``f()`` (with ``a=1`` the default) share one
entry. It receives, per parameter: ``(name, kind, has_default, default, ignored)``, where
``kind`` is the integer value of ``inspect.Parameter.kind`` (0 positional-only,
1 positional-or-keyword, 2 ``*args``, 3 keyword-only, 4 ``**kwargs``).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable
from typing import Any

from .exceptions import ConfigurationError

ParamSpecTuple = tuple[str, int, bool, Any, bool]

# What a function whose signature cannot be read (some builtins) is treated as.
_OPAQUE: list[ParamSpecTuple] = [("args", 2, False, None, False), ("kwargs", 4, False, None, False)]


def param_specs(func: Callable[..., Any], ignore: Iterable[str], decorator: str) -> list[ParamSpecTuple]:
    """The parameter description of ``func``; ``ignore`` names must be its parameters.

    >>> def f(a, b=2, *rest, c, **kw): ...
    >>> [(n, k, d) for n, k, d, _, _ in param_specs(f, ["b"], "mcache")]
    [('a', 1, False), ('b', 1, True), ('rest', 2, False), ('c', 3, False), ('kw', 4, False)]
    """
    ignored = set(ignore)
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):
        if ignored:
            raise ConfigurationError(
                f"{decorator}: invalid ignore={tuple(ignore)!r}: the signature of {func!r} cannot be read"
            ) from None
        return list(_OPAQUE)
    unknown = sorted(ignored - set(parameters))
    if unknown:
        raise ConfigurationError(
            f"{decorator}: invalid ignore={tuple(ignore)!r}: {', '.join(map(repr, unknown))} "
            f"is not a parameter; expected names among {tuple(parameters)!r}"
        )
    return [
        (
            sys.intern(p.name),
            int(p.kind),
            p.default is not p.empty,
            None if p.default is p.empty else p.default,
            p.name in ignored,
        )
        for p in parameters.values()
    ]
