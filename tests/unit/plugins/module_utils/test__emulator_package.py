"""The emulator package's shape: its files import each other without a cycle, the core and the control API stay apart,
and the protocols the API and the data path are typed against are exactly what they use and what the core has."""

from __future__ import annotations

import ast
import graphlib
import pathlib

import pytest

from ansible_collections.l4vip.rollout.plugins.module_utils import _emulator
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.api import EmulatorView, MemberView, VipView
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.config import parse_config
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.core import Emulator
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.datapath import ClientSide, Session, SessionTable
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator.health import PinnedSession
from ansible_collections.l4vip.rollout.plugins.module_utils._emulator_service import import_statements

PACKAGE = _emulator.__name__
PACKAGE_DIR = pathlib.Path(_emulator.__file__).parent
CONFIG = {'vips': [{'name': 'web', 'listen': '127.0.0.10:8080', 'members': [{'name': 'web1', 'address': '127.0.0.11:8080'}]}]}


def import_graph(directory: pathlib.Path, package: str) -> dict[str, set[str]]:
    """Each file of the package (``core``, ``__init__``) -> the files of the package it imports, read with ast
    (_emulator_service.import_statements).

    ``from package import name`` leads to the file ``name`` when there is one, else to ``__init__`` (a name defined
    there). The package's ``__init__`` that Python runs before any of its files is not an edge: it is always there.
    """
    files = {path.stem for path in directory.glob('*.py')}
    graph: dict[str, set[str]] = {}
    for path in sorted(directory.glob('*.py')):
        edges: set[str] = set()
        for imported in import_statements(path.read_text(encoding='utf-8')):
            if imported.level > 1:
                continue  # above the package
            names = imported.names or ()
            module = (f'{package}.{imported.module}' if imported.module else package) if imported.level else imported.module
            if module == package:
                edges |= {name if name in files else '__init__' for name in names}
            elif module.startswith(f'{package}.'):
                edges.add(module[len(package) + 1:].split('.')[0])
        graph[path.stem] = edges
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += graph.get(name, ())
    return seen


def test_the_package_imports_form_no_cycle():
    graph = import_graph(PACKAGE_DIR, PACKAGE)
    assert set(graph) == {'__init__', 'api', 'config', 'core', 'daemon', 'datapath', 'health', 'metrics'}
    # The graph is read, not empty: the edges this package is built on are there.
    assert graph['core'] >= {'config', 'datapath', 'health', 'metrics'} and graph['daemon'] >= {'api', 'config', 'core'}
    assert graph['__init__'] == set()
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError, naming the cycle
    assert order.index('config') < order.index('core') < order.index('daemon')


@pytest.mark.parametrize('second', ['from {package} import first', 'from {package}.first import THING', 'import {package}.first',
                                    'from . import first', 'from .first import THING'])
def test_a_cycle_is_found(tmp_path, second):
    """The check above can fail: two files that import each other, in each way a file can name another."""
    package = 'ansible_collections.example.pkg'
    (tmp_path / '__init__.py').write_text('')
    (tmp_path / 'first.py').write_text(f'from {package}.second import OTHER\nTHING = 1\n')
    (tmp_path / 'second.py').write_text(second.format(package=package) + '\nOTHER = 2\n')
    graph = import_graph(tmp_path, package)
    assert graph['first'] == {'second'} and graph['second'] == {'first'}
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(graph).static_order())


def test_the_core_and_the_control_api_do_not_reach_each_other():
    graph = import_graph(PACKAGE_DIR, PACKAGE)
    assert not reachable(graph, 'core') & {'api', 'daemon'}
    assert reachable(graph, 'api') == {'config'}  # not the core, the data path nor the members


def used_attributes(tree: ast.AST, variable: str) -> set[str]:
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == variable}


def protocol_members(protocol: type) -> set[str]:
    declared = set(vars(protocol).get('__annotations__', {})) | set(vars(protocol))
    return {name for name in declared if not name.startswith('_')}


def test_the_api_protocols_list_exactly_what_the_api_uses():
    tree = ast.parse((PACKAGE_DIR / 'api.py').read_text(encoding='utf-8'))
    assert used_attributes(tree, 'emulator') == protocol_members(EmulatorView)
    assert used_attributes(tree, 'vip') == protocol_members(VipView)
    assert used_attributes(tree, 'member') == protocol_members(MemberView)


def test_the_core_has_what_the_api_and_the_data_path_are_typed_against():
    emulator = Emulator(parse_config(CONFIG))
    vip = emulator.vips['web']
    assert isinstance(emulator, EmulatorView) and isinstance(emulator, SessionTable)
    assert isinstance(vip, VipView) and isinstance(vip.by_name['web1'], MemberView)
    assert isinstance(Session(emulator, vip, ClientSide(emulator, vip)), PinnedSession)
