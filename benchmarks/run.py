"""Run the benchmarks and write benchmarks/RESULTS.md.

    make bench                      # all of them, in one run
    make bench BENCH='reaction'     # some: their sections are rewritten, the others kept
    .venv/bin/python benchmarks/run.py --smoke ssh   # a small run of some, to see that they work

Each benchmark's figures go to benchmarks/results/<name>.json (with the machine and the
command); RESULTS.md's generated part is rebuilt from all of them. Loopback, and the `ssh`
benchmark's namespaces on this machine, only. --smoke runs each benchmark at a small size
(L4VIP_BENCH_SMOKE=1), keeps its figures under /tmp/l4vip-bench-smoke and prints their sections
without touching RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import importlib.util
import json
import pathlib
import shlex
import sys
import tempfile
import time
import typing as t

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_DIR = HERE / 'results'
SMOKE_DIR = pathlib.Path(tempfile.gettempdir()) / 'l4vip-bench-smoke'
RESULTS_MD = HERE / 'RESULTS.md'
BEGIN = '<!-- BEGIN FIGURES: written by benchmarks/run.py from benchmarks/results/*.json; edits here are lost -->'
END = '<!-- END FIGURES -->'
# In the order they are run and reported.
BENCHMARKS = ('reaction', 'rollout', 'slots', 'datapath', 'connections', 'fleet', 'ssh')
MODULES = {'ssh': 'bench_ssh_fleet'}  # the module of a benchmark whose name is not bench_<name>


def _module(name: str) -> t.Any:
    return importlib.import_module(MODULES.get(name, f'bench_{name}'))


def _link_collection() -> None:
    """Make the checkout importable as ansible_collections.l4vip.rollout, as the tests do (tests/conftest.py)."""
    spec = importlib.util.spec_from_file_location('l4vip_tests_conftest', REPO / 'tests' / 'conftest.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.path.insert(0, str(HERE))


def render_sections(results_dir: pathlib.Path) -> list[str]:
    sections = []
    results = {name: json.loads((results_dir / f'{name}.json').read_text()) for name in BENCHMARKS if (results_dir / f'{name}.json').exists()}
    for name, result in results.items():
        sections.append(_module(name).render(result))
        sections.append(f'<sub>Measured {result["measured_at"]} in {result["wall_seconds"]:.0f} s by `{result["command"]}`'
                        f' on {_machine_line(result["machine"])}.</sub>')
    return sections


def write_results_md() -> None:
    sections = render_sections(RESULTS_DIR)
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else f'# Benchmarks\n\n{BEGIN}\n{END}\n'
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    RESULTS_MD.write_text(head + BEGIN + '\n\n' + '\n\n'.join(sections) + '\n\n' + END + tail)


def _machine_line(machine: dict) -> str:
    return (f'{machine["cpu"]}, {machine["cores"]} cores, {machine["memory_gib"]} GiB, Linux {machine["kernel"]}, '
            f'Python {machine["python"]}, ansible-core {machine["ansible_core"]}, {machine["nginx"]}, {machine["haproxy"].split(" - ")[0]}')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('names', nargs='*', choices=[[], *BENCHMARKS], default=[], metavar='NAME',
                        help=f'benchmarks to run (default: all of {", ".join(BENCHMARKS)})')
    parser.add_argument('--render-only', action='store_true', help='rewrite RESULTS.md from results/*.json, run nothing')
    parser.add_argument('--smoke', action='store_true', help=f'small sizes, to see that they run; figures to {SMOKE_DIR}, RESULTS.md untouched')
    args = parser.parse_args()
    if args.smoke:
        os.environ['L4VIP_BENCH_SMOKE'] = '1'
    results_dir = SMOKE_DIR if args.smoke else RESULTS_DIR
    _link_collection()
    import _common  # pylint: disable=import-outside-toplevel
    if not args.render_only:
        results_dir.mkdir(exist_ok=True)
        for name in args.names or BENCHMARKS:
            module = _module(name)
            _common.log(f'{name}: starting')
            started = time.monotonic()
            with tempfile.TemporaryDirectory(prefix=f'l4vip-bench-{name}-') as workdir:
                result = module.run(pathlib.Path(workdir))
            command = f'make bench BENCH={name}' if args.names else 'make bench'
            result.update(command=f'run.py --smoke {name}' if args.smoke else command,
                          argv=shlex.join(sys.argv), machine=_common.machine(), wall_seconds=time.monotonic() - started,
                          measured_at=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))
            (results_dir / f'{name}.json').write_text(json.dumps(result, indent=1) + '\n')
            _common.log(f'{name}: done in {result["wall_seconds"]:.0f} s')
            if not args.smoke:
                write_results_md()
    if args.smoke:
        print('\n\n'.join(render_sections(results_dir)))
        return 0
    write_results_md()
    print(RESULTS_MD.read_text())
    return 0


if __name__ == '__main__':
    sys.exit(main())
