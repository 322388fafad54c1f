"""The layers of docs/architecture.md, read from the code: who may import whom, no cycle, no file grown past its size.

Every import of the collection's own Python is read with ast (top-level and inside functions alike, by the collection's
one reader of imports, _emulator_service.import_statements), so a shortcut taken in a hurry - module_utils reaching
into a plugin, the lab's parts into the report - fails here.
"""

from __future__ import annotations

import graphlib
import pathlib
import re

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils._emulator_service import import_statements

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLUGINS = ROOT / 'plugins'
PREFIX = 'ansible_collections.l4vip.rollout.plugins.'
# Where each layer may reach, by the path of the importing file below plugins/.
ALLOWED = {
    'module_utils': ('module_utils',),
    'modules': ('module_utils', 'doc_fragments'),
    'action': ('module_utils', 'plugin_utils'),
    'plugin_utils/lab': ('module_utils/_options', 'module_utils/_process', 'plugin_utils/lab'),
    'plugin_utils': ('module_utils', 'plugin_utils'),
    'filter': ('module_utils', 'plugin_utils'),
    'lookup': ('module_utils', 'plugin_utils'),
    'callback': ('module_utils', 'plugin_utils'),
    'doc_fragments': ('module_utils',),
}
SIZE = 400  # lines; a file past it says why near its top, in words containing "on purpose"
SIZED = ('modules', 'action', 'module_utils')


def layer(relative: str) -> str:
    return next(name for name in sorted(ALLOWED, key=len, reverse=True) if relative == name or relative.startswith(name + '/'))


def own_imports(path: pathlib.Path) -> set[str]:
    """The collection's modules a file imports, as paths below plugins/ without .py (``module_utils/_process``)."""
    found = set()
    for imported in import_statements(path.read_text(encoding='utf-8')):
        if not imported.module.startswith(PREFIX):
            continue
        base = imported.module[len(PREFIX):].replace('.', '/')
        if imported.names is None:
            found.add(base)
            continue
        for name in imported.names:
            candidate = f'{base}/{name}'
            is_module = (PLUGINS / f'{candidate}.py').exists() or (PLUGINS / candidate / '__init__.py').exists()
            found.add(candidate if is_module else base)
    return found


def python_files() -> list[pathlib.Path]:
    return sorted(path for path in PLUGINS.rglob('*.py') if '__pycache__' not in path.parts)


def module_name(path: pathlib.Path) -> str:
    relative = path.relative_to(PLUGINS).with_suffix('').as_posix()
    return relative[:-len('/__init__')] if relative.endswith('/__init__') else relative


def test_each_layer_imports_only_what_is_below_it():
    wrong = []
    for path in python_files():
        importer = module_name(path)
        for imported in own_imports(path):
            if not any(imported == allowed or imported.startswith(allowed + '/') for allowed in ALLOWED[layer(importer)]):
                wrong.append(f'{importer} imports {imported}')
    assert not wrong, wrong


def test_the_collections_python_has_no_import_cycle():
    graph = {module_name(path): own_imports(path) for path in python_files()}
    # A package's files import its __init__ implicitly; that is not a cycle.
    graph = {name: {d for d in deps if not name.startswith(d + '/')} for name, deps in graph.items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f'import cycle: {" -> ".join(error.args[1])}')


def test_the_checks_can_fail(tmp_path):
    """The same readers on a made-up tree: a cycle and a wrong-way import are both seen."""
    (tmp_path / 'a.py').write_text(f'from {PREFIX}plugin_utils import _report\n')
    assert own_imports(tmp_path / 'a.py') == {'plugin_utils/_report'}
    (tmp_path / 'b.py').write_text(f'import {PREFIX}module_utils._timing\n')
    assert own_imports(tmp_path / 'b.py') == {'module_utils/_timing'}
    assert not any('plugin_utils/_report'.startswith(allowed) for allowed in ALLOWED[layer('module_utils/_x')])
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter({'x': {'y'}, 'y': {'x'}}).static_order())


def test_no_module_action_or_module_utils_file_is_long_without_saying_why():
    long_and_silent = []
    for path in python_files():
        relative = path.relative_to(PLUGINS).as_posix()
        if not relative.startswith(SIZED):
            continue
        text = path.read_text(encoding='utf-8')
        lines = text.count('\n')
        # The module's DOCUMENTATION/RETURN text is documentation, not code: counted apart.
        docs = sum(block.count('\n') for block in re.findall(r"(?s)r?'''.*?'''", text))
        head = text[:3000].lower()
        if lines - docs > SIZE and 'on purpose' not in head:
            long_and_silent.append(f'{relative}: {lines - docs} lines')
    assert not long_and_silent, long_and_silent
