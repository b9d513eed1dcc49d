"""The import rule that keeps the folder tree honest (docs/architecture.md, "Layout"): `protocol` imports no
actor code; `runtime` and `media` import no actor family; an actor family (hub, workers, ptt,
watch, cli) imports only itself, `runtime`, `media` and `protocol`, never another family."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.harness import REPO

SHARED = {"runtime", "media"}
FAMILIES = {"hub", "workers", "ptt", "watch", "cli"}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, at any depth (deferred imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def package_of(module: str) -> str | None:
    """`actors.hub.jobbook` -> `hub`; `protocol.vocab` -> `protocol`; None if neither."""
    parts = module.split(".")
    if parts[0] == "protocol":
        return "protocol"
    if parts[0] == "actors" and len(parts) > 1 and (parts[1] in SHARED | FAMILIES):
        return parts[1]
    return None


def allowed(source: str, target: str) -> bool:
    if source == "protocol":
        return target == "protocol"
    if source in SHARED:
        return target in SHARED | {"protocol"}
    return target in {source, "protocol"} | SHARED


def arrows() -> dict[tuple[str, str], list[str]]:
    """Package-to-package import arrows, each with the files that draw it."""
    drawn: dict[tuple[str, str], list[str]] = {}
    for path in sorted([*(REPO / "actors").rglob("*.py"), *(REPO / "protocol").rglob("*.py")]):
        source = package_of(".".join(path.relative_to(REPO).with_suffix("").parts))
        if source is None:
            continue  # actors/__init__.py, actors/__main__.py: the launcher may name every family
        for module in imported_modules(path):
            target = package_of(module)
            if target is not None and target != source:
                drawn.setdefault((source, target), []).append(str(path.relative_to(REPO)))
    return drawn


def test_no_import_crosses_between_actor_families() -> None:
    bad = {f"{s} -> {t}": files for (s, t), files in arrows().items() if not allowed(s, t)}
    assert not bad, f"imports that break the layering rule: {bad}"


def test_the_rule_sees_a_crossing_import(tmp_path: Path) -> None:
    """The checker is not blind: a hub module that imports ptt is caught."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from actors.ptt.keys import parse\n    import protocol.vocab\n")
    targets = {package_of(m) for m in imported_modules(probe)}
    assert "ptt" in targets and not allowed("hub", "ptt") and allowed("hub", "protocol")
    assert not allowed("protocol", "runtime") and not allowed("media", "hub")
