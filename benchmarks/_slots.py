"""What the slot benchmarks share: the slot limit of a rollout on slots, and where its wall time went.

A rollout on slots (``rolling_deploy_max_out``) can at best keep ``max_out`` members out of the VIP
all the time, each for no longer than its own part: from its health check out to the L4 binding
it again, of which only the L4's own detection and bring-up and the user's own stop, deploy and
start are work (bench_rollout.Member.ideal). Its release prepared first, every member at once
(``rolling_deploy_prepare: group``), the rollout can be no shorter than the slot limit:

    the longest prepare + (sum over members of their parts) / max_out

Each member's part from the L4's own transitions (the emulator's event log, HAProxy's log) and
the tasks as the test callback recorded them; the prepare is the span of the member's own
prepare tasks (named ``Prepare | ...``), none when it has none.
"""

from __future__ import annotations

import dataclasses
import typing as t

import _common
from bench_rollout import Member, member_record
from ansible_collections.l4vip.rollout.tests.harness.ansible import PlaybookRun
from ansible_collections.l4vip.rollout.tests.harness.haproxy_log import Transition

PREPARE_PREFIX = 'Prepare | '  # the user's prepare tasks, as the benchmarks name them
GOAL_LIMIT = 1.15  # wall ÷ slot limit
# Live traffic through the VIP during every slot rollout (benchmark 5's): 8 keep-alive clients at 20 requests/s each and
# 10 new connections/s; every request must succeed.
TRAFFIC = {'keepalive_clients': 8, 'new_connection_rate': 10.0, 'request_interval': 0.05}
ANSWERED_WITHIN = 5.0  # for every keep-alive client to have had an answer, before and after: a bound, not a pause


def prepare_spans(run: PlaybookRun, names: t.Sequence[str]) -> dict[str, tuple[float, float] | None]:
    """Per member, (start, end) of its own prepare tasks, wherever they ran; None when it ran none."""
    spans: dict[str, tuple[float, float] | None] = {}
    for name in names:
        entries = [e for e in run.output if e['host'] == name and e['status'] == 'ok' and e['task'].startswith(PREPARE_PREFIX)]
        spans[name] = (min(e['started'] for e in entries), max(e['ended'] for e in entries)) if entries else None
    return spans


def most_windows_at_once(members: t.Sequence[Member]) -> int:
    """The most of the rollout's own members out at one moment: from each one's health check out to the L4 binding it
    again (what the capacity guard counts as taken, whatever the L4 says of anyone else)."""
    edges = sorted([(m.out_at, 1) for m in members] + [(m.up_at, -1) for m in members])
    most = current = 0
    for _at, step in edges:
        current += step
        most = max(most, current)
    return most


def marked_down_while_serving(transitions: t.Sequence[Transition], members: t.Sequence[Member], since: float) -> list[dict[str, t.Any]]:
    """The L4's mark-downs of a member outside its own window (health check out -> bound again): the L4 let go of a
    member that was serving - an overloaded L4's checks timing out, say - which no rollout step asked for."""
    windows = {m.name: (m.out_at, m.up_at) for m in members}
    return [{'member': member, 'at': at} for member, to, at in transitions
            if to == 'down' and at >= since and member in windows and not windows[member][0] <= at <= windows[member][1]]


def most_out_text(case: t.Mapping[str, t.Any]) -> str:
    """The L4's count of members out at once, with what the rollout had out itself and the L4's own mark-downs."""
    text = str(case['most_out'])
    serving = case.get('marked_down_while_serving') or []
    if serving:
        names = sorted({down['member'] for down in serving})
        text += (f" ({len(serving)} mark-down(s) of members serving, outside their window: {', '.join(names[:6])}"
                 f"{' ...' if len(names) > 6 else ''}; the rollout's own at most {case['most_windows']})")
    return text


def most_out_at_once(transitions: t.Sequence[Transition], names: t.Collection[str], since: float) -> int:
    """The most of ``names`` the L4 had marked down at one moment after ``since``, from its own transitions."""
    events = sorted((at, 1 if to == 'down' else -1, member) for member, to, at in transitions if member in names and at >= since)
    out: set[str] = set()
    most = 0
    for _at, step, member in events:
        if step > 0:
            out.add(member)
        else:
            out.discard(member)
        most = max(most, len(out))
    return most


def handovers(members: t.Sequence[Member], max_out: int) -> list[float]:
    """From the L4 binding a member again to the next member's health check out: the slot's time unused at each
    handover. The k-th member out (k > max_out, in the order they went out) took the slot the (k - max_out)-th
    bound member freed."""
    outs = sorted(m.out_at for m in members)
    ups = sorted(m.up_at for m in members)
    return [outs[k] - ups[k - max_out] for k in range(max_out, len(outs))]


def released_at(run: PlaybookRun, names: t.Sequence[str]) -> dict[str, float | None]:
    """Per member, when the task that released its claim (its slot) ended - the wait that saw the L4 bind it again, whose
    result names the members it released; None when none did."""
    ends: dict[str, float | None] = {}
    for name in names:
        found = [e['ended'] for e in run.output if name in (e['result'].get('released') or [])]
        ends[name] = max(found) if found else None
    return ends


def sequence(run: PlaybookRun, member: Member) -> dict[str, t.Any]:
    """One member's tasks in the order they ran (every play, skipped ones too): name, status, start after its health
    check out (seconds, negative before it) and how long each took - for the profile (kept in the JSON, not rendered)."""
    return {'member': member.name, 'tasks': [(e['task'], e['status'], round(e['started'] - member.out_at, 3), round(e['ended'] - e['started'], 3))
                                             for e in run.output if e['host'] == member.name and e.get('started') is not None]}


def analyse(run: PlaybookRun, names: t.Sequence[str], transitions: t.Sequence[Transition], max_out: int,
            started: float, ended: float) -> dict[str, t.Any]:
    """The slot limit of the run, the member records it is made of, and where the wall time went."""
    members = [member_record(run, name, list(transitions)) for name in names]
    spans = prepare_spans(run, names)
    prepared = [span for span in spans.values() if span is not None]
    longest_prepare = max((end - start for start, end in prepared), default=0.0)
    parts = sum(m.ideal for m in members)
    windows = sum(m.up_at - m.out_at for m in members)
    limit = longest_prepare + parts / max_out
    first_out, last_up = min(m.out_at for m in members), max(m.up_at for m in members)
    prepare_start = min((start for start, _end in prepared), default=None)
    prepare_end = max((end for _start, end in prepared), default=None)
    gaps = handovers(members, max_out)
    # The handover in two: the L4 binding a member -> the task releasing its claim ended (the slot free as the guard counts
    # it), and that -> the next member's health check out (the guard noticing, and the step out).
    releases = released_at(run, names)
    up_to_release = [releases[m.name] - m.up_at for m in members if releases[m.name] is not None]
    ends = sorted(end for end in releases.values() if end is not None)
    outs = sorted(m.out_at for m in members)
    release_to_out = [outs[k] - ends[k - max_out] for k in range(max_out, len(outs)) if len(ends) == len(outs)]
    if prepare_start is not None and prepare_end <= first_out:  # every release prepared before the first member went out
        before = {'start-up, check of every member, plan': prepare_start - started, "every member's prepare": prepare_end - prepare_start,
                  'to the first health check out': first_out - prepare_end}
    else:
        before = {'start-up, check of every member, plan': first_out - started, "every member's prepare": 0.0,
                  'to the first health check out': 0.0}
    phases = {**before, 'slots: first health check out to the last member bound': last_up - first_out,
              'after the last member bound': ended - last_up}
    return {
        'max_out': max_out, 'wall': ended - started, 'longest_prepare': longest_prepare,
        'prepare_phase': (prepare_end - prepare_start) if prepare_start is not None else 0.0,
        'parts': parts, 'windows': windows, 'limit': limit, 'ratio_limit': (ended - started) / limit,
        'limit_of_windows': longest_prepare + windows / max_out,
        'slot_phase': last_up - first_out, 'most_out': most_out_at_once(transitions, set(names), started),
        'most_windows': most_windows_at_once(members), 'marked_down_while_serving': marked_down_while_serving(transitions, members, started),
        'handover': _common.describe(gaps) if gaps else None,
        'up_to_release': _common.describe(up_to_release) if up_to_release else None,
        'release_to_out': _common.describe(release_to_out) if release_to_out else None,
        'phases': phases,
        'part': {key: _common.describe([getattr(m, key) for m in members]) for key in ('detection', 'stop', 'deploy', 'start', 'bring_up')},
        'window': _common.describe([m.up_at - m.out_at for m in members]),
        'own_in_window': _common.describe([(m.up_at - m.out_at) - m.ideal for m in members]),
        'records': [dataclasses.asdict(m) for m in members],
        'sequence': sequence(run, sorted(members, key=lambda m: m.up_at - m.out_at)[len(members) // 2]),
        'prepares': {name: (span[1] - span[0]) if span else None for name, span in spans.items()},
    }


def verdict_text(value: float, goal: float) -> str:
    return f'{_common.verdict(value, goal)} ({value:.3f}, goal ≤ {goal})'


def parts_text(analysis: t.Mapping[str, t.Any]) -> str:
    """One member's part, median (min-max) of each piece, for a table cell."""
    return ', '.join(f'{label} {analysis["part"][key]["median"]:.2f} ({analysis["part"][key]["min"]:.2f}-{analysis["part"][key]["max"]:.2f})'
                     for key, label in (('detection', 'detection'), ('stop', 'stop'), ('deploy', 'deploy'), ('start', 'start'),
                                        ('bring_up', 'bring-up')))


def handover_text(case: t.Mapping[str, t.Any]) -> str:
    """The handover, median (min-max), and its two parts' medians where the run has them."""
    text = median_or_dash(case.get('handover'))
    if case.get('up_to_release') and case.get('release_to_out'):
        text += (f'; bound → claim released {case["up_to_release"]["median"]:.2f}, released → next out '
                 f'{case["release_to_out"]["median"]:.2f}')
    return text


def median_or_dash(described: t.Mapping[str, float] | None, digits: int = 2) -> str:
    return '-' if not described else f'{described["median"]:.{digits}f} ({described["min"]:.{digits}f}-{described["max"]:.{digits}f})'
