"""check_inputs through ansible-playbook: a role's argument spec first, its own checks only once the spec passed."""

from __future__ import annotations

import yaml

from ansible_collections.l4vip.rollout.tests.harness.ansible import run_playbook

SPEC = {'argument_specs': {'main': {'options': {
    'demo_port': {'type': 'int', 'required': True, 'description': 'the port'},
    'demo_hosts': {'type': 'list', 'elements': 'str', 'default': [], 'description': 'the hosts'}}}}}
# Reads demo_port as the int the spec declares: with a string it would fail on the expression itself.
ERRORS = "{{ ['demo_port: ' ~ demo_port ~ ' is taken'] if demo_port + 0 == 80 else [] }}"


def check(name: str, spec: str | None, **variables: object) -> dict[str, object]:
    task: dict[str, object] = {'name': name, 'l4vip.rollout.check_inputs': {'errors_var': 'demo_errors'}, 'ignore_errors': True,
                               'vars': {'demo_errors': ERRORS, **variables}}
    if spec:
        task['l4vip.rollout.check_inputs']['argument_spec'] = spec  # type: ignore[index]
    return task


def test_the_argument_spec_first_then_the_roles_own_checks(tmp_path):
    spec = tmp_path / 'argument_specs.yml'
    spec.write_text(yaml.safe_dump(SPEC))
    run = run_playbook(tmp_path, [
        check('wrong type', str(spec), demo_port='eighty'),
        check('taken', str(spec), demo_port=80, demo_hosts=['web1']),
        check('right', str(spec), demo_port=8080),
        check('no spec, taken', None, demo_port=80),
        {'name': 'no such entry point', 'l4vip.rollout.check_inputs': {'argument_spec': str(spec), 'entry_point': 'stop', 'errors_var': 'x'},
         'ignore_errors': True},
    ])
    assert run.returncode == 0, run.stderr[-3000:]
    wrong = run.task('wrong type')
    assert wrong['failed'] and wrong['msg'].startswith('Validation of arguments failed:') and 'demo_port' in wrong['msg'], wrong
    assert 'input_errors' not in wrong
    taken = run.task('taken')
    assert taken['failed'] and taken['msg'] == 'demo_port: 80 is taken' and taken['argument_errors'] == [], taken
    right = run.task('right')
    assert not right.get('failed') and right['input_errors'] == [] and not right['changed'], right
    assert run.task('no spec, taken')['msg'] == 'demo_port: 80 is taken'
    assert "entry_point: 'stop' is not an entry point of" in run.task('no such entry point')['msg']
