"""Profile the emulator's data path: cProfile in the emulator's process while wrk loads it.

    .venv/bin/python benchmarks/profile_datapath.py [--seconds 10] [--output datapath.prof] [--top 25]

The same lab as benchmark 3 (benchmarks/bench_datapath.py), but only the emulator is loaded.
cProfile slows the emulator down several times: read the shares, not the requests/s.
"""

from __future__ import annotations

import argparse
import io
import pathlib
import pstats
import sys
import tempfile

import run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=int, default=10)
    parser.add_argument('--output', type=pathlib.Path, default=pathlib.Path('datapath.prof'))
    parser.add_argument('--top', type=int, default=25)
    args = parser.parse_args()
    run._link_collection()  # pylint: disable=protected-access  # the runner's own way to import the collection
    import bench_datapath  # pylint: disable=import-outside-toplevel  # needs the collection linked first
    with tempfile.TemporaryDirectory(prefix='l4vip-profile-datapath-') as workdir:
        figures = bench_datapath.profile_emulator(pathlib.Path(workdir), args.output.resolve(), args.seconds)
    out = io.StringIO()
    out.write(f'wrk through the profiled emulator: {figures["requests_per_s"]:.0f} req/s, errors {figures["errors"] or "none"}\n')
    stats = pstats.Stats(str(args.output), stream=out)
    stats.sort_stats('tottime').print_stats(args.top)
    stats.sort_stats('cumulative').print_stats(args.top)
    sys.stdout.write(out.getvalue())
    return 0


if __name__ == '__main__':
    sys.exit(main())
