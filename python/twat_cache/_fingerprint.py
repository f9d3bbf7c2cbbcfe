"""The default ``version`` of a persistent cache: a fingerprint of the function's code.

Editing the body (bytecode, constants, names) changes it, so stale entries become
misses; moving the function within its file does not (line numbers are left out).
"""

from __future__ import annotations

import hashlib
import inspect
import types
from collections.abc import Callable
from typing import Any

_FIELDS = ("co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_flags", "co_names", "co_varnames")


def code_version(func: Callable[..., Any]) -> str:
    """32 hex digits that change when the function's code changes.

    >>> def f(x):
    ...     return x + 1
    >>> def g(x):
    ...     return x + 1
    >>> def h(x):
    ...     return x + 2
    >>> code_version(f) == code_version(g), code_version(f) == code_version(h)
    (True, False)
    """
    code = getattr(inspect.unwrap(func), "__code__", None)
    if code is None:  # a builtin or C function: its code cannot change under us
        return "native:" + getattr(func, "__qualname__", repr(type(func)))
    digest = hashlib.blake2b(digest_size=16)
    _feed(digest, code)
    return digest.hexdigest()


def _feed(digest: Any, code: types.CodeType) -> None:
    digest.update(code.co_code)
    for field in _FIELDS:
        digest.update(repr(getattr(code, field)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed(digest, const)  # nested functions, lambdas, comprehensions
        else:
            digest.update(_stable_repr(const).encode())


def _stable_repr(value: object) -> str:
    # A frozenset constant (`x in {"a", "b"}`) iterates in hash order, which varies with
    # PYTHONHASHSEED for strings: sort its members.
    if isinstance(value, frozenset):
        return "frozenset(" + ",".join(sorted(map(_stable_repr, value))) + ")"
    if isinstance(value, tuple):
        return "(" + ",".join(map(_stable_repr, value)) + ")"
    return f"{type(value).__name__}:{value!r}"
