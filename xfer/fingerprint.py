"""Code fingerprints: a hash of the code that determines a job's output, part of its id.

A job's code is its kind's recipe (`jobs/<kind>.py`, with `jobs/__init__.py`, which runs it) and the format
modules of its tasks (`xfer/formats/<format>.py`: recipes pick them at run time with `xfer.formats.get`, so
the plan names them from `xfer.tasks`), each with every module of the `xfer` and `jobs` packages it reaches
by static imports (anywhere in the file, function-level ones included; relative imports and `from package
import submodule` resolved; a package's `__init__` counts when one of its modules is imported). The sources are
read with `ast`, never imported, and hashed as their syntax trees without docstrings, so an edit of comments,
docstrings or layout keeps every id; any other edit changes the ids of exactly the jobs whose code it is (and
of their dependants, whose ids hash their dependencies' ids). The installed versions of the libraries that
compute the numbers (`LIBRARIES`) and Python's version (syntax trees differ between Python versions) are part
of every fingerprint.

No library does this: dependency tools (modulefinder, pydeps) import or resolve whole environments, while this
needs the closure inside two packages, from a chosen set of roots, cheaply and without importing them.
Results are cached per process; `cache_clear()` forgets them (tests that point `ROOT` at a copy).
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Iterable

PACKAGES = ("xfer", "jobs")
LIBRARIES = ("torch", "transformers", "tokenizers", "datasets", "numpy", "safetensors")
ROOT = Path(__file__).resolve().parents[1]  # the folder holding the xfer/ and jobs/ packages


def _module_file(root: Path, module: str) -> Path | None:
    """The source of `module` under `root` (a module file or a package's __init__), if it is one of ours."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _with_parents(module: str) -> list[str]:
    """`a.b.c` -> a, a.b, a.b.c: importing a module runs its packages' __init__ first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _imports(root: Path, path: Path, tree: ast.Module) -> set[str]:
    """The modules of our packages that the file imports statically."""
    here = _module_name(root, path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(_with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "__future__" or not module:
                continue
            found.update(_with_parents(module))
            for alias in node.names:  # `from package import submodule`
                if _module_file(root, f"{module}.{alias.name}") is not None:
                    found.add(f"{module}.{alias.name}")
    return {m for m in found if _module_file(root, m) is not None}


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=None)
def _parsed(root: Path, path: Path) -> tuple[str, frozenset[str]]:
    """(digest of the docstring-free syntax tree, the package modules the file imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    imports = frozenset(_imports(root, path, tree))
    digest = hashlib.sha256(ast.dump(_strip_docstrings(tree)).encode()).hexdigest()
    return digest, imports


@lru_cache(maxsize=None)
def closure(roots: tuple[str, ...], root: Path | None = None) -> dict[str, str]:
    """{path relative to the root: digest} of the modules `roots` (module names) reach by static imports."""
    root = root or ROOT
    todo = [m for name in roots for m in _with_parents(name) if _module_file(root, m) is not None]
    missing = [name for name in roots if _module_file(root, name) is None]
    if missing:
        raise ValueError(f"no source for module {missing[0]!r} under {root}")
    seen: dict[str, str] = {}
    while todo:
        module = todo.pop()
        path = _module_file(root, module)
        rel = path.relative_to(root).as_posix()
        if rel in seen:
            continue
        digest, imports = _parsed(root, path)
        seen[rel] = digest
        todo.extend(imports)
    return dict(sorted(seen.items()))


@lru_cache(maxsize=None)
def library_versions() -> dict[str, str]:
    """Installed versions of `LIBRARIES` ("absent" for one not installed) and of Python."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    out["python"] = f"{sys.version_info.major}.{sys.version_info.minor}"
    return out


def job_roots(kind: str, formats: Iterable[str]) -> tuple[str, ...]:
    """The modules a job's code starts from: the runner of recipes, the kind's recipe, its formats' modules."""
    return ("jobs", f"jobs.{kind}", *(f"xfer.formats.{name}" for name in sorted(set(formats))))


@lru_cache(maxsize=None)
def _job_code(kind: str, formats: tuple[str, ...], root: Path | None) -> str:
    files = closure(job_roots(kind, formats), root)
    payload = json.dumps({"files": files, "libraries": library_versions()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def job_code(kind: str, formats: Iterable[str] = (), root: Path | None = None) -> str:
    """The fingerprint (16 hex digits) of the code of a job of `kind` whose tasks use `formats`."""
    return _job_code(kind, tuple(sorted(set(formats))), root or ROOT)


def job_files(kind: str, formats: Iterable[str] = (), root: Path | None = None) -> list[str]:
    """The source files a job's fingerprint covers (relative paths), for `xfer plan` readers and tests."""
    return list(closure(job_roots(kind, formats), root or ROOT))


def cache_clear() -> None:
    for cached in (_parsed, closure, library_versions, _job_code):
        cached.cache_clear()
