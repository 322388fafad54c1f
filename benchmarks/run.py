"""Run the benchmarks and write benchmarks/RESULTS.md.

    make bench                      # all of them, in one run
    make bench BENCH='reaction'     # some: their sections are rewritten, the others kept

Each benchmark's figures go to benchmarks/results/<name>.json (with the machine and the
command); RESULTS.md's generated part is rebuilt from all of them. Loopback only.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import pathlib
import shlex
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_DIR = HERE / 'results'
RESULTS_MD = HERE / 'RESULTS.md'
BEGIN = '<!-- BEGIN FIGURES: written by benchmarks/run.py from benchmarks/results/*.json; edits here are lost -->'
END = '<!-- END FIGURES -->'
# In the order they are run and reported.
BENCHMARKS = ('reaction', 'rollout', 'datapath', 'fleet')


def _link_collection() -> None:
    """Make the checkout importable as ansible_collections.l4vip.rollout, as the tests do (tests/conftest.py)."""
    spec = importlib.util.spec_from_file_location('l4vip_tests_conftest', REPO / 'tests' / 'conftest.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.path.insert(0, str(HERE))


def write_results_md() -> None:
    sections = []
    results = {name: json.loads((RESULTS_DIR / f'{name}.json').read_text()) for name in BENCHMARKS if (RESULTS_DIR / f'{name}.json').exists()}
    for name, result in results.items():
        module = importlib.import_module(f'bench_{name}')
        sections.append(module.render(result))
        sections.append(f'<sub>Measured {result["measured_at"]} in {result["wall_seconds"]:.0f} s by `{result["command"]}`'
                        f' on {_machine_line(result["machine"])}.</sub>')
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
    args = parser.parse_args()
    _link_collection()
    import _common  # pylint: disable=import-outside-toplevel
    if not args.render_only:
        RESULTS_DIR.mkdir(exist_ok=True)
        for name in args.names or BENCHMARKS:
            module = importlib.import_module(f'bench_{name}')
            _common.log(f'{name}: starting')
            started = time.monotonic()
            with tempfile.TemporaryDirectory(prefix=f'l4vip-bench-{name}-') as workdir:
                result = module.run(pathlib.Path(workdir))
            result.update(command=f'make bench BENCH={name}' if args.names else 'make bench',
                          argv=shlex.join(sys.argv), machine=_common.machine(), wall_seconds=time.monotonic() - started,
                          measured_at=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))
            (RESULTS_DIR / f'{name}.json').write_text(json.dumps(result, indent=1) + '\n')
            _common.log(f'{name}: done in {result["wall_seconds"]:.0f} s')
            write_results_md()
    write_results_md()
    print(RESULTS_MD.read_text())
    return 0


if __name__ == '__main__':
    sys.exit(main())
