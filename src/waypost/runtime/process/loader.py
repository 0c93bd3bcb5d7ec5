"""Finding user code: `MODULE` and `MODULE:FLOW` as the CLI and workers name them."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from ...errors import DefinitionError, UnknownTargetError
from ..seam import Definition


def import_module(name: str) -> ModuleType:
    """Import `pkg.module` or a file path `dir/module.py`.

    Tasks are named after their module, so a file must name its module the same way from
    wherever a worker or `start` is run: by its package (walking up the folders that have
    an `__init__.py`: `work/pkg/shop.py` is `pkg.shop`), or by its stem when it is in no
    package (`work/shop.py` is `shop`), never by the current directory."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if name.endswith(".py") or os.sep in name:
        path = Path(name).resolve()
        if not path.is_file():
            raise UnknownTargetError(f"no such file: {name}")
        root, name = module_name_of(path)
        if str(root) in sys.path:
            sys.path.remove(str(root))
        sys.path.insert(0, str(root))  # before anything else that has a module of that name
        _refuse_a_taken_name(name, path)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise UnknownTargetError(f"cannot import module {name!r}: {exc}") from None
        raise DefinitionError(f"importing module {name} failed: {exc}") from exc
    except (Exception, SystemExit) as exc:  # the module's own code raised while importing
        where = _where(exc)
        raise DefinitionError(f"importing module {name} failed{where}: "
                              f"{type(exc).__name__}: {exc}") from exc


def module_name_of(path: Path) -> tuple[Path, str]:
    """The folder to import from and the dotted name of the module file at `path`."""
    parts = [] if path.stem == "__init__" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    return folder, ".".join(parts)


def _refuse_a_taken_name(name: str, path: Path) -> None:
    """`json.py` would import the standard library's json, and serve nothing of the file."""
    loaded = sys.modules.get(name)
    found = getattr(loaded, "__file__", None)
    if loaded is not None and (found is None or Path(found).resolve() != path):
        raise DefinitionError(f"{path} would be imported as module {name}, but {name} is "
                              f"already another module ({found or 'built in'}); rename the "
                              "file")


def _where(exc: BaseException) -> str:
    """Where the module's code raised: its innermost frame, as ` (file:line)`."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" ({exc.filename}:{exc.lineno})"
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "" if tb is None else f" ({tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})"


def is_definition(value: Any) -> bool:
    """A flow (or any front-end's definition): what `Engine.start` can start."""
    return all(hasattr(value, a)
               for a in ("name", "kind", "compile", "bind_input", "default_deadline"))


def load_flow(target: str) -> Definition:
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise UnknownTargetError(f"name a flow as MODULE:FLOW, not {target!r}")
    module = import_module(module_name)
    flow = getattr(module, attr, None)
    if not is_definition(flow):
        found = sorted(k for k, v in vars(module).items() if is_definition(v))
        hint = f" (flows there: {', '.join(found)})" if found else " (it defines no flow)"
        raise UnknownTargetError(f"no flow {attr!r} in module {module_name}{hint}")
    return cast(Definition, flow)
