"""The runnable-block convention of the docs (tests/integration/test_docs_examples.py): what counts
as a runnable block, what each of its commands is, and which markers are mistakes."""

from __future__ import annotations

import textwrap

import pytest

from ansible_collections.l4vip.rollout.tests.integration.test_docs_examples import (
    RunnableBlock,
    RunnableBlockError,
    collect_runnable_blocks,
    command_key,
    extract_runnable_blocks,
)


def _md(text: str) -> str:
    return textwrap.dedent(text).lstrip('\n')


def test_a_marked_shell_block_is_found_with_its_line_and_commands():
    text = _md('''
        # Title

        <!-- runnable -->
        ```sh
        make rehearsal   # the main job
        .venv/bin/ansible-doc l4vip.rollout.health_check
        ```
        ''')
    assert extract_runnable_blocks(text, 'README.md') == [
        RunnableBlock('README.md', 4, ('make rehearsal   # the main job', '.venv/bin/ansible-doc l4vip.rollout.health_check'))]
    assert extract_runnable_blocks(text, 'README.md')[0].id == 'README.md:4'


def test_an_unmarked_block_is_ignored():
    text = _md('''
        ```sh
        make test
        ```

        <!-- runnable -->
        ```bash
        make rehearsal
        ```
        ''')
    assert [block.commands for block in extract_runnable_blocks(text)] == [('make rehearsal',)]


def test_no_marker_no_block():
    assert not extract_runnable_blocks('```sh\nmake test\n```\n')


@pytest.mark.parametrize('language', ['yaml', 'python', 'console', ''])
def test_the_marker_on_a_block_that_is_not_shell_is_an_error(language):
    text = f'<!-- runnable -->\n```{language}\nkey: value\n```\n'
    with pytest.raises(RunnableBlockError, match=r'doc\.md:1: .*only bash, sh, shell blocks can run'):
        extract_runnable_blocks(text, 'doc.md')


@pytest.mark.parametrize('after', ['', 'Run this:', '    make rehearsal'])
def test_the_marker_not_directly_followed_by_a_fence_is_an_error(after):
    text = f'<!-- runnable -->\n{after}\n```sh\nmake rehearsal\n```\n'
    with pytest.raises(RunnableBlockError, match=r'doc\.md:1: .* must be directly followed by a fenced block'):
        extract_runnable_blocks(text, 'doc.md')


def test_the_marker_as_the_last_line_is_an_error():
    with pytest.raises(RunnableBlockError, match='directly followed'):
        extract_runnable_blocks('text\n<!-- runnable -->\n', 'doc.md')


def test_an_unclosed_runnable_block_is_an_error():
    with pytest.raises(RunnableBlockError, match=r'doc\.md:2: the runnable block is never closed'):
        extract_runnable_blocks('<!-- runnable -->\n```sh\nmake rehearsal\n', 'doc.md')


def test_an_empty_runnable_block_is_an_error():
    with pytest.raises(RunnableBlockError, match='holds no command'):
        extract_runnable_blocks('<!-- runnable -->\n```sh\n# only a comment\n\n```\n', 'doc.md')


def test_comment_and_blank_lines_are_skipped_and_a_trailing_comment_stays():
    text = _md('''
        <!-- runnable -->
        ```sh
        # from a clone

        make build          # build/l4vip-rollout-0.1.0.tar.gz
          # indented comment
        ```
        ''')
    assert extract_runnable_blocks(text)[0].commands == ('make build          # build/l4vip-rollout-0.1.0.tar.gz',)


def test_a_backslash_continues_a_command_onto_the_next_line():
    text = _md('''
        <!-- runnable -->
        ```sh
        ansible-playbook l4vip.rollout.rehearsal \\
          -e '{"rehearsal_members": 2}'
        echo done
        ```
        ''')
    assert extract_runnable_blocks(text)[0].commands == (
        "ansible-playbook l4vip.rollout.rehearsal \\\n  -e '{\"rehearsal_members\": 2}'", 'echo done')


def test_a_block_that_ends_inside_a_continued_line_is_an_error():
    with pytest.raises(RunnableBlockError, match='continued line'):
        extract_runnable_blocks('<!-- runnable -->\n```sh\nmake \\\n```\n', 'doc.md')


def test_a_here_document_is_an_error():
    with pytest.raises(RunnableBlockError, match='here-document'):
        extract_runnable_blocks("<!-- runnable -->\n```sh\ncat <<'EOF'\nx\nEOF\n```\n", 'doc.md')


def test_a_marker_inside_a_fenced_block_is_text():
    text = _md('''
        ````markdown
        <!-- runnable -->
        ```sh
        rm -rf /
        ```
        ````

        <!-- runnable -->
        ~~~shell
        make rehearsal
        ~~~
        ''')
    assert [(block.line, block.commands) for block in extract_runnable_blocks(text)] == [(9, ('make rehearsal',))]


def test_a_longer_fence_closes_only_on_a_fence_as_long():
    text = '<!-- runnable -->\n````sh\necho one\n```\necho two\n````\n'
    assert extract_runnable_blocks(text)[0].commands == ('echo one', '```', 'echo two')


def test_an_indented_block_in_a_list_item():
    text = '- Run it:\n\n  <!-- runnable -->\n  ```sh\n  make rehearsal\n  ```\n'
    assert extract_runnable_blocks(text)[0].commands == ('make rehearsal',)


@pytest.mark.parametrize(('command', 'key'), [
    ('make rehearsal', 'make rehearsal'),
    ('make rehearsal   # the main job: a rolling deploy', 'make rehearsal'),
    ("echo 'a # b'", "echo 'a # b'"),
    ('make rehearsal VARS=\'{"rehearsal_time_scale": 0.02}\'  # fast', 'make rehearsal VARS=\'{"rehearsal_time_scale": 0.02}\''),
    ('curl http://x/#anchor', 'curl http://x/#anchor'),
])
def test_command_key_drops_only_a_trailing_comment(command, key):
    assert command_key(command) == key


def test_only_readme_and_docs_pages_count_not_the_rendered_plugin_pages(tmp_path):
    runnable = '<!-- runnable -->\n```sh\necho {}\n```\n'
    (tmp_path / 'docs' / 'plugins').mkdir(parents=True)
    (tmp_path / 'README.md').write_text(runnable.format('readme'))
    (tmp_path / 'docs' / 'a.md').write_text(runnable.format('a'))
    (tmp_path / 'docs' / 'plugins' / 'p.md').write_text(runnable.format('plugin'))
    (tmp_path / 'CHANGELOG.md').write_text(runnable.format('changelog'))
    assert [(block.id, block.commands) for block in collect_runnable_blocks(tmp_path)] == [
        ('README.md:2', ('echo readme',)), ('docs/a.md:2', ('echo a',))]


def test_a_block_printed_on_two_pages_runs_once_and_names_both(tmp_path):
    block = _md('''
        <!-- runnable -->
        ```sh
        make rehearsal VARS='{"rehearsal_members": 2}'
        ```
        ''')
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'README.md').write_text('# Title\n\n' + block)
    (tmp_path / 'docs' / 'profiles.md').write_text(block + '\n<!-- runnable -->\n```sh\nmake rehearsal\n```\n')
    blocks = collect_runnable_blocks(tmp_path)
    assert [(b.id, b.commands) for b in blocks] == [
        ('README.md:4+docs/profiles.md:2', ("make rehearsal VARS='{\"rehearsal_members\": 2}'",)),
        ('docs/profiles.md:7', ('make rehearsal',)),
    ]
