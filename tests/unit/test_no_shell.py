"""No shell strings anywhere: commands are argv lists (SECURITY.md).

The collection's YAML (roles/, playbooks/, extensions/molecule/, tests/integration/playbooks/) must not use the
``shell`` or ``raw`` modules, nor give ``command`` a string (free form or ``cmd``) instead of ``argv``. Its Python
(plugins/, scripts/) must not call ``os.system``, ``os.popen``, ``subprocess`` with ``shell=True`` or a string command,
``subprocess.getoutput``/``getstatusoutput``, ``asyncio.create_subprocess_shell``, or ``run_command`` with a string or
``use_unsafe_shell=True``. A failure names each file and line.
"""

from __future__ import annotations

import ast
import pathlib
import typing as t

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
YAML_TREES = ('roles', 'playbooks', 'extensions/molecule', 'tests/integration/playbooks')
PYTHON_TREES = ('plugins', 'scripts')

SHELL_MODULES = {f'{prefix}{name}' for prefix in ('', 'ansible.builtin.', 'ansible.legacy.') for name in ('shell', 'raw')}
COMMAND_MODULES = {f'{prefix}command' for prefix in ('', 'ansible.builtin.', 'ansible.legacy.')}
SUBPROCESS_CALLS = {'run', 'call', 'check_call', 'check_output', 'Popen'}
ALWAYS_SHELL = {('os', 'system'), ('os', 'popen'), ('subprocess', 'getoutput'), ('subprocess', 'getstatusoutput'),
                ('asyncio', 'create_subprocess_shell')}


# -- YAML ----------------------------------------------------------------------------------------------------------


def yaml_offenders(path: pathlib.Path) -> list[str]:
    """Each shell/raw task and each command task given a string, as ``path:line: what``."""
    try:
        documents = list(yaml.compose_all(path.read_text(encoding='utf-8'), Loader=yaml.SafeLoader))
    except yaml.YAMLError as error:
        return [f'{path}: not valid YAML, cannot be checked: {error}']
    found: list[str] = []
    for document in documents:
        if document is not None:
            _walk_yaml(path, document, found)
    return found


def _walk_yaml(path: pathlib.Path, node: yaml.Node, found: list[str], is_item: bool = True) -> None:
    """Tasks are the mappings that are items of a list (a tasks file, a play's tasks, a block); their values are not."""
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _walk_yaml(path, item, found, True)
        return
    if not isinstance(node, yaml.MappingNode):
        return
    for key, value in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        where = f'{_relative(path)}:{key.start_mark.line + 1}'
        if is_item and name in SHELL_MODULES:
            found.append(f'{where}: the {name} module runs a shell string; use ansible.builtin.command with argv')
        elif is_item and name in COMMAND_MODULES:
            problem = _command_problem(node, value)
            if problem:
                found.append(f'{where}: {name} {problem}; give argv (a list) instead')
        _walk_yaml(path, value, found, False)


def _command_problem(task: yaml.MappingNode, value: yaml.Node) -> str | None:
    if isinstance(value, yaml.ScalarNode) and value.value.strip():
        return 'is given a string'
    if isinstance(value, yaml.MappingNode):
        given = {k.value for k, _v in value.value if isinstance(k, yaml.ScalarNode)}
        if 'cmd' in given and 'argv' not in given:
            return 'is given cmd (a string)'
    # The free form may also hide in the task's args.
    for key, args in task.value:
        if isinstance(key, yaml.ScalarNode) and key.value == 'args' and isinstance(args, yaml.MappingNode):
            given = {k.value for k, _v in args.value if isinstance(k, yaml.ScalarNode)}
            if 'cmd' in given and 'argv' not in given:
                return 'is given args.cmd (a string)'
    return None


# -- Python --------------------------------------------------------------------------------------------------------


def python_offenders(path: pathlib.Path) -> list[str]:
    """Each call that hands a string to a shell (or could), as ``path:line: what``."""
    try:
        tree = ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
    except SyntaxError as error:
        return [f'{path}: cannot be parsed, cannot be checked: {error}']
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            problem = _call_problem(node)
            if problem:
                found.append((node.lineno, f'{_relative(path)}:{node.lineno}: {problem}'))
    return [line for _lineno, line in sorted(found)]


def _relative(path: pathlib.Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _dotted(node: ast.AST) -> tuple[str, ...]:
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, ast.Attribute):
        return _dotted(node.value) + (node.attr,)
    return ()


def _is_string(node: ast.AST | None) -> bool:
    """A str literal, an f-string, a concatenation or % of one, or a ``'...'.format()`` / ``' '.join()`` call."""
    if node is None:
        return False
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return _is_string(node.left) or _is_string(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ('format', 'join'):
        return _is_string(node.func.value)
    return False


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.AST | None) -> bool:
    return node is not None and not (isinstance(node, ast.Constant) and not node.value)


def _call_problem(call: ast.Call) -> str | None:
    dotted = _dotted(call.func)
    name = '.'.join(dotted)
    if _is_true(_keyword(call, 'shell')):
        return f'{name or "a call"}(..., shell=...) runs a shell string; pass an argv list'
    if _is_true(_keyword(call, 'use_unsafe_shell')):
        return f'{name}(..., use_unsafe_shell=...) runs a shell string; pass an argv list'
    if dotted[-2:] in ALWAYS_SHELL or (len(dotted) == 1 and dotted[0] in ('system', 'popen', 'getoutput', 'getstatusoutput')):
        return f'{name}() runs a shell string; use subprocess with an argv list'
    command = call.args[0] if call.args else _keyword(call, 'args')
    if len(dotted) >= 2 and dotted[-2] == 'subprocess' and dotted[-1] in SUBPROCESS_CALLS and _is_string(command):
        return f'{name}() is given a string command; pass an argv list'
    if dotted and dotted[-1] == 'run_command' and _is_string(call.args[0] if call.args else _keyword(call, 'args')):
        return f'{name}() is given a string command; pass an argv list'
    return None


# -- the tests -----------------------------------------------------------------------------------------------------


def _files(trees: t.Iterable[str], suffixes: tuple[str, ...]) -> list[pathlib.Path]:
    files = []
    for tree in trees:
        files += [p for p in sorted((REPO / tree).rglob('*')) if p.is_file() and p.suffix in suffixes and '__pycache__' not in p.parts]
    return files


def test_yaml_has_no_shell_strings():
    files = _files(YAML_TREES, ('.yml', '.yaml'))
    assert len(files) > 10, f'found only {files}: the trees moved?'
    offenders = [line for path in files for line in yaml_offenders(path)]
    assert not offenders, 'shell strings in YAML:\n' + '\n'.join(offenders)


def test_python_has_no_shell_strings():
    files = _files(PYTHON_TREES, ('.py',))
    assert len(files) > 10, f'found only {files}: the trees moved?'
    offenders = [line for path in files for line in python_offenders(path)]
    assert not offenders, 'shell strings in Python:\n' + '\n'.join(offenders)


# The scanner itself: it must see each kind of offender, and let argv lists through.

BAD_YAML = """\
- name: a shell
  ansible.builtin.shell: echo hi | wc -l
- name: raw
  raw: uptime
- name: command, free form
  ansible.builtin.command: systemctl restart nginx
- name: command, cmd
  command:
    cmd: nginx -s quit
- name: command in args
  ansible.legacy.command:
  args:
    cmd: nginx -s quit
- block:
    - name: nested shell
      shell:
        cmd: ls
"""

GOOD_YAML = """\
- name: argv
  ansible.builtin.command:
    argv: [nginx, -s, quit]
- name: a variable called shell is not a task
  ansible.builtin.user:
    name: web
    shell: /usr/sbin/nologin
- name: vars
  vars:
    command: not a task
  ansible.builtin.debug:
    msg: ok
"""


def test_the_yaml_scanner_sees_every_kind(tmp_path):
    bad = tmp_path / 'bad.yml'
    bad.write_text(BAD_YAML)
    good = tmp_path / 'good.yml'
    good.write_text(GOOD_YAML)
    found = yaml_offenders(bad)
    assert yaml_offenders(good) == []
    assert [int(line.split(':')[1]) for line in found] == [2, 4, 6, 8, 11, 16], found
    assert 'ansible.builtin.command is given a string' in found[2]


BAD_PYTHON = """\
import os, subprocess, asyncio
os.system('ls')
os.popen('ls').read()
subprocess.run('ls -l', check=True)
subprocess.Popen(f'nginx -c {conf}')
subprocess.check_output(['ls'], shell=True)
subprocess.getoutput('ls')
asyncio.create_subprocess_shell('ls')
module.run_command('nginx -s quit')
module.run_command(['ls'], use_unsafe_shell=True)
subprocess.call(args='ls ' + path)
"""

GOOD_PYTHON = """\
import subprocess
subprocess.run(['ls', '-l'], check=True)
subprocess.Popen([sys.executable, '-m', 'x'], shell=False)
module.run_command(['nginx', '-s', 'quit'])
"""


@pytest.mark.parametrize(('source', 'lines'), [(BAD_PYTHON, list(range(2, 12))), (GOOD_PYTHON, [])])
def test_the_python_scanner_sees_every_kind(tmp_path, source, lines):
    path = tmp_path / 'sample.py'
    path.write_text(source)
    found = python_offenders(path)
    assert [int(line.split(':')[1]) for line in found] == lines, found
    assert all(line.startswith(f'{path}:') for line in found)
