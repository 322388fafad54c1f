"""The mutation guard (`make mutants`): break the timing model and what reads the L4 on purpose, and see the tests fail.

Each mutant below is one textual change to one file - an off-by-one ``fall``, a window edge, an admin state
read as up, the test harness's HAProxy checking at the wrong rate - and names the tests that should kill it.
The runner copies the repository into a scratch directory, runs those tests once unmutated (they must pass,
or a failure would prove nothing), then applies each mutant in the copy, runs its tests, and puts the file
back. A mutant is killed when its tests fail; every mutant must be killed, or the run exits 1.

Nothing is ever written to the checkout itself: other people's test runs never see a mutant. As root the
whole run goes into a network namespace of its own (``unshare --net``, loopback only), so its tests' fixed
loopback ports cannot collide with someone else's run of the same tests.

    python scripts/mutants.py                    every mutant, of the last commit (HEAD)
    python scripts/mutants.py --worktree         of the working tree as it is, uncommitted changes included
    python scripts/mutants.py --only health.     the mutants whose name starts with health.
    python scripts/mutants.py --list             the list, and whether each still applies
    python scripts/mutants.py --report docs/mutants.md   also write the result page
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import typing as t
import xml.etree.ElementTree as ET

REPO = pathlib.Path(__file__).resolve().parent.parent
ISOLATED = 'L4VIP_MUTANTS_ISOLATED'  # set in the re-executed runner inside its own network namespace

TIMING = 'plugins/module_utils/_timing.py'
HEALTH = 'plugins/module_utils/_emulator/health.py'
CORE = 'plugins/module_utils/_emulator/core.py'
HAPROXY = 'plugins/module_utils/_haproxy.py'
PROVIDERS = 'plugins/module_utils/_providers.py'
REAL_PARTS = 'tests/harness/real_parts.py'
CAPACITY = 'plugins/module_utils/_capacity.py'
GUARD = 'plugins/module_utils/_guard.py'
CLAIMS = 'plugins/module_utils/_claims.py'

UNIT = 'tests/unit/plugins/module_utils/'
T_TIMING = UNIT + 'test__timing.py'
T_EMULATOR = UNIT + 'test__emulator.py'
T_HAPROXY = UNIT + 'test__haproxy.py'
T_PROVIDERS = UNIT + 'test__providers.py'
T_READINGS = UNIT + 'test__provider_readings.py'
T_WAIT_TIMEOUT = 'tests/unit/plugins/filter/test_wait_timeout.py'
T_DETECTION = 'tests/integration/test_emulator.py::test_detection_time_spans_the_models_window'
T_RISE_TWO = 'tests/integration/test_emulator.py::test_rise_two_binds_after_two_passes'
T_KEEPALIVE_TRAP = 'tests/integration/test_emulator.py::test_keepalive_trap_down_member_keeps_serving_its_sessions'
T_IDLE = 'tests/integration/test_emulator.py::test_idle_session_ages_out'
T_HAPROXY_ADMIN = 'tests/integration/test_member_modules.py::test_member_admin_haproxy'
# The harness's HAProxy against the emulator and the model (behaviour), then its configuration text.
T_VS_HAPROXY = 'tests/integration/test_emulator_vs_haproxy.py::test_detection_window_suspect_and_rise_match[1]'
T_HAPROXY_WINDOWS = 'tests/integration/test_real_parts.py::test_mark_down_and_up_stay_within_the_timing_model'
T_HAPROXY_CONFIG = 'tests/integration/test_real_parts.py::test_config_takes_every_timing_from_the_profile'
T_HAPROXY_JUDGE = 'tests/integration/test_real_parts.py::test_the_harness_reading_of_bound_is_where_haproxy_sends_new_connections'
HARNESS_TESTS = (T_VS_HAPROXY, T_HAPROXY_WINDOWS, T_HAPROXY_CONFIG)
T_CAPACITY = f'{UNIT}test__capacity.py::test_slots_count_every_member_out_whyever_it_is_out'
T_GUARD = f'{UNIT}test__guard.py'


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository
    old: str  # must occur exactly once in the file
    new: str
    why: str  # the bug it stands for
    tests: tuple[str, ...]  # pytest node ids that should kill it


MUTANTS = (
    # --- the timing model --------------------------------------------------------------------------------
    Mutant('timing.fall+1', TIMING, 'return self.retry + 1', 'return self.retry + 2',
           'one failed check too many before down', (T_TIMING,)),
    Mutant('timing.fall-1', TIMING, 'return self.retry + 1', 'return self.retry',
           'Suspect forgotten: retry failed checks take it down', (T_TIMING,)),
    Mutant('timing.window-closed-below', TIMING, 'return self.low < seconds <= self.high', 'return self.low <= seconds <= self.high',
           "a window's low edge counted in", (T_TIMING,)),
    Mutant('timing.window-open-above', TIMING, 'return self.low < seconds <= self.high', 'return self.low < seconds < self.high',
           "a window's worst case counted out", (T_TIMING,)),
    Mutant('timing.down-low-one-interval-early', TIMING, 'Window(profile.retry * profile.interval + delay,',
           'Window((profile.retry - 1) * profile.interval + delay,', 'the mark-down said possible one interval too early',
           (T_TIMING,)),
    Mutant('timing.rise-off-by-one', TIMING, 'Window((profile.rise - 1) * profile.interval, profile.rise * profile.interval)',
           'Window(profile.rise * profile.interval, (profile.rise + 1) * profile.interval)', 'one passing check too many to bind',
           (T_TIMING,)),
    Mutant('timing.check-timeout-uncapped', TIMING, 'return min(self.check_timeout, self.interval)', 'return self.check_timeout',
           'a check timeout longer than the interval taken as is', (T_TIMING,)),
    Mutant('timing.timeout-failure-not-delayed', TIMING, 'delay = profile.effective_check_timeout if failure == FAILURE_TIMEOUT else 0.0',
           'delay = 0.0', 'a timing-out check known at once', (T_TIMING,)),
    Mutant('timing.fast-failure-delayed', TIMING, 'delay = profile.effective_check_timeout if failure == FAILURE_TIMEOUT else 0.0',
           'delay = profile.effective_check_timeout', 'a 404 waited for like a timeout', (T_TIMING,)),
    Mutant('timing.future-since-saves-time', TIMING, 'elapsed = max(0.0, clock.time() - since)', 'elapsed = clock.time() - since',
           "a `since` in the future (clock skew) lengthens the timer's wait", (T_TIMING,)),
    Mutant('timing.wait-without-margin', TIMING, 'return window.high + profile.interval', 'return window.high',
           'a wait gives up exactly at the worst case, no interval to spare', (T_WAIT_TIMEOUT,)),
    Mutant('timing.poll-oversleeps-deadline', TIMING, 'clock.sleep(min(poll_interval, timeout - elapsed))', 'clock.sleep(poll_interval)',
           'the last sleep of a wait runs past its deadline', (T_PROVIDERS,)),
    Mutant('timing.poll-skips-last-look', TIMING, 'if done(last) or elapsed >= timeout:', 'if done(last) or elapsed + poll_interval > timeout:',
           'a wait gives up without its last look at the deadline', (T_PROVIDERS,)),
    Mutant('timing.scaled-keeps-check-timeout', TIMING, 'check_timeout=self.check_timeout * factor,', 'check_timeout=self.check_timeout,',
           "a rehearsal's faster L4 keeps the real check timeout", (T_TIMING,)),

    # --- the emulator's health machine --------------------------------------------------------------------
    Mutant('health.suspect-unbound', HEALTH, 'return self.health in (HEALTH_UP, HEALTH_SUSPECT) and self.admin',
           'return self.health == HEALTH_UP and self.admin', 'a Suspect member takes no new connections', (T_EMULATOR,)),
    Mutant('health.admin-ignored', HEALTH, "HEALTH_SUSPECT) and self.admin == 'enabled'", 'HEALTH_SUSPECT)',
           'a drained or disabled member still bound', (T_EMULATOR,)),
    Mutant('health.retry-1', HEALTH, 'if self.failures > profile.retry:', 'if self.failures >= profile.retry:',
           'down one failed check early', (T_EMULATOR, T_DETECTION)),
    Mutant('health.retry+1', HEALTH, 'if self.failures > profile.retry:', 'if self.failures > profile.retry + 1:',
           'down one failed check late', (T_EMULATOR, T_DETECTION)),
    Mutant('health.rise+1', HEALTH, 'self.passes >= profile.rise else None', 'self.passes > profile.rise else None',
           'bound one passing check late', (T_EMULATOR, T_RISE_TWO)),
    Mutant('health.rise-1', HEALTH, 'self.passes >= profile.rise else None', 'self.passes >= profile.rise - 1 else None',
           'bound one passing check early', (T_EMULATOR, T_RISE_TWO)),
    Mutant('health.pass-keeps-failures', HEALTH, '            self.failures = 0\n            if self.health == HEALTH_DOWN:',
           '            if self.health == HEALTH_DOWN:', 'a pass while Suspect does not restart the failure count', (T_EMULATOR,)),
    Mutant('health.failure-keeps-passes', HEALTH, '        self.passes = 0\n        self.failures += 1', '        self.failures += 1',
           'a failure does not restart the rise count', (T_EMULATOR,)),
    Mutant('health.suspect-sticks', HEALTH, 'return HEALTH_UP if self.health == HEALTH_SUSPECT else None', 'return None',
           'a pass does not clear Suspect', (T_EMULATOR,)),
    Mutant('health.starts-bound', HEALTH, 'self.health = HEALTH_DOWN  # an L4', 'self.health = HEALTH_UP  # an L4',
           'a new member bound before any check passed', (T_EMULATOR,)),
    Mutant('health.check-timeout-uncapped', HEALTH, '_probe(address, profile, check_source), profile.effective_check_timeout)',
           '_probe(address, profile, check_source), profile.check_timeout)', 'a check outlives the interval', (T_EMULATOR,)),
    Mutant('health.any-answer-passes', HEALTH, "return parts[1] == '200', f'HTTP {parts[1]}'", "return parts[1] != '404', f'HTTP {parts[1]}'",
           'a 503 passes the L7 check', (T_EMULATOR,)),
    Mutant('core.reset-without-the-option', CORE, 'if health == HEALTH_DOWN and self.config.profile.reset_on_port_fail:',
           'if health == HEALTH_DOWN:', 'sessions reset at every mark-down, as if reset on port fail were on', (T_KEEPALIVE_TRAP,)),
    Mutant('core.ages-at-half-the-idle-timeout', CORE, 'cutoff = time.perf_counter(), now - self.config.profile.idle_timeout',
           'cutoff = time.perf_counter(), now - self.config.profile.idle_timeout / 2', 'an idle session aged out at half its idle timeout',
           (T_IDLE,)),
    Mutant('core.checks-every-other-interval', CORE, 'k = max(k + 1, int((loop.time() - first) // interval) + 1)',
           'k = max(k + 2, int((loop.time() - first) // interval) + 2)', 'the check schedule skips every other interval', (T_DETECTION,)),
    Mutant('core.checks-in-step', CORE, 'self._check_loop(member, self.rng.uniform(0, interval))', 'self._check_loop(member, 0.0)',
           "every member checked at the same instant, not phased like a real device's", (T_DETECTION,)),

    # --- the providers' readings of an L4's answer --------------------------------------------------------
    Mutant('haproxy.maint-taken-as-up', HAPROXY, "return self.op_state in (1, 2) and self.admin_state == 'enabled'",
           'return self.op_state in (1, 2)', 'a server in MAINT or DRAIN read as bound', (T_HAPROXY, T_READINGS)),
    Mutant('haproxy.stopping-taken-as-up', HAPROXY, "return self.op_state in (1, 2) and self.admin_state == 'enabled'",
           "return self.op_state in (1, 2, 3) and self.admin_state == 'enabled'", 'a STOPPING server read as bound', (T_HAPROXY,)),
    Mutant('haproxy.starting-taken-as-down', HAPROXY, "return self.op_state in (1, 2) and self.admin_state == 'enabled'",
           "return self.op_state == 2 and self.admin_state == 'enabled'", 'a STARTING server (still bound) read as down', (T_HAPROXY,)),
    Mutant('haproxy.idrain-missed', HAPROXY, 'DRAIN_BITS = 0x08 | 0x10', 'DRAIN_BITS = 0x08', 'a drain inherited from a tracked server read as enabled',
           (T_HAPROXY,)),
    Mutant('haproxy.drain-over-maint', HAPROXY,
           "        if self.admin_bits & MAINT_BITS:\n            return 'disabled'\n        if self.admin_bits & DRAIN_BITS:\n            return 'drain'",
           "        if self.admin_bits & DRAIN_BITS:\n            return 'drain'\n        if self.admin_bits & MAINT_BITS:\n            return 'disabled'",
           'MAINT+DRAIN read as drain', (T_HAPROXY,)),
    Mutant('haproxy.columns-shifted', HAPROXY, '        row = dict(zip(header, line.split()))\n        health',
           '        row = dict(zip(header[1:], line.split()))\n        health', "`show servers state`'s columns read one off", (T_HAPROXY,)),
    Mutant('haproxy.total-for-current-sessions', HAPROXY, "int(row.get('scur') or 0)", "int(row.get('stot') or 0)",
           "the sessions ever opened (stot) read as the current ones (scur)", (T_READINGS,)),
    Mutant('haproxy.disable-only-drains', HAPROXY, "ADMIN_COMMANDS = {'disabled': 'maint',", "ADMIN_COMMANDS = {'disabled': 'drain',",
           'member_admin disabled sets DRAIN', (T_HAPROXY_ADMIN,)),
    Mutant('providers.state-spelling-case-sensitive', PROVIDERS, 'return any(value == c or str(value).lower() == str(c).lower() for c in candidates)',
           'return any(value == c for c in candidates)', 'a REST answer "UP" not read as the up value "up"', (T_PROVIDERS,)),
    Mutant('providers.unknown-state-taken-as-down', PROVIDERS, "return Observation(None, f'{value!r} (neither an up nor a down value)')",
           "return Observation(False, f'{value!r} (neither an up nor a down value)')", 'an unknown answer ("checking") read as down',
           (T_PROVIDERS,)),
    Mutant('providers.emulator-state-for-bound', PROVIDERS, "return Observation(member['bound'], ", "return Observation(member['state'] == 'up', ",
           "the emulator's health read as the binding: Suspect as down, a drained member as up", (T_READINGS,)),
    Mutant('providers.haproxy-admin-taken-as-up', PROVIDERS, 'Observation(states[member].bound, ', 'Observation(states[member].op_state in (1, 2), ',
           "HAProxy's admin state ignored by the provider: a server in MAINT read as bound", (T_READINGS,)),
    Mutant('providers.access-log-fall-1', PROVIDERS, 'if not passed and count >= self.profile.fall:', 'if not passed and count >= self.profile.retry:',
           'the access log reads down one failing answer early', (T_PROVIDERS,)),
    Mutant('providers.access-log-rise+1', PROVIDERS, 'if passed and count >= self.profile.rise:', 'if passed and count > self.profile.rise:',
           'the access log reads bound one passing answer late', (T_PROVIDERS,)),

    # --- the real parts' configuration in the test harness ------------------------------------------------
    Mutant('harness.haproxy-fall+1', REAL_PARTS, "f'fall {profile.fall}'", "f'fall {profile.fall + 1}'",
           "the harness's HAProxy needs one failed check more", HARNESS_TESTS),
    Mutant('harness.haproxy-fall-1', REAL_PARTS, "f'fall {profile.fall}'", "f'fall {profile.fall - 1}'",
           "the harness's HAProxy needs one failed check less", HARNESS_TESTS),
    Mutant('harness.haproxy-rise+1', REAL_PARTS, "f'rise {profile.rise}'", "f'rise {profile.rise + 1}'",
           "the harness's HAProxy needs one passing check more", HARNESS_TESTS),
    # --- slots: the capacity guard and its claims ---------------------------------------------------------
    Mutant('capacity.one-slot-too-many', CAPACITY, 'len(self.out) + len(self.leaving) <= self.max_out',
           'len(self.out) + len(self.leaving) <= self.max_out + 1', 'one member more than max_out out at once', (T_CAPACITY,)),
    Mutant('guard.waiting-peek-skips-left-out', GUARD, "return not left_out_here(claims) and bool(params['max_out'])",
           "return bool(params['max_out'])", 'a member waiting for a slot waits on after its rollout left one out',
           (f'{T_GUARD}::test_a_member_waiting_for_a_slot_goes_no_further_once_the_rollout_left_one_out',)),
    Mutant('guard.waiting-asks-the-l4-each-poll', GUARD, "if 'verdict' in outcome and slots_full(", "if False and slots_full(",
           "every member waiting for a slot asks the L4 at every poll",
           (f'{T_GUARD}::test_a_member_waiting_for_a_slot_asks_the_l4_only_once_the_claims_leave_one_free',)),
    Mutant('claims.retry-without-a-pause', CLAIMS, '                self._sleep(random.uniform(0, min(BACKOFF_MAX, BACKOFF * 2 ** attempt)))',
           '                pass', 'claims written to the L4 retried at once, so the same writers collide again',
           (f'{T_GUARD}::test_a_compare_and_set_store_backs_off_at_random_and_gives_up_naming_the_pool_and_the_tries',
            f'{T_GUARD}::test_slots_of_a_big_pool_claiming_at_once_through_one_l4_all_get_their_claims')),
    Mutant('guard.late-member-releases-no-slot', GUARD, "            error.detail.update(_release_back(params, ctx, error.detail.get('members') or {}))",
           '            pass', "a wait for up with a late member releases none of the members it saw bound again",
           (f'{T_GUARD}::test_the_wait_for_up_releases_the_claim_of_each_member_bound_again_and_a_late_one_keeps_its_own',)),
    Mutant('guard.release-the-late-member-too', GUARD, "back = [member for member, what in seen.items() if what['reached']]",
           'back = list(seen)', "the wait for up frees the slot of a member the L4 has not bound",
           (f'{T_GUARD}::test_the_wait_for_up_releases_the_claim_of_each_member_bound_again_and_a_late_one_keeps_its_own',)),
    Mutant('guard.refusal-as-own-failure', GUARD, 'leaving=leaving,\n                      after_failure=earlier)', 'leaving=leaving)',
           "a member refused after another's failure looks like a failure of its own, and may name itself as the rollout's",
           (f'{T_GUARD}::test_a_member_waiting_for_a_slot_goes_no_further_once_the_rollout_left_one_out',
            f'{T_GUARD}::test_after_a_failure_in_the_rollout_no_member_goes_out')),
    Mutant('harness.haproxy-inter/1.5', REAL_PARTS, "f'inter {seconds_to_ms(profile.interval)}'", "f'inter {seconds_to_ms(profile.interval / 1.5)}'",
           "the harness's HAProxy checks 1.5 times as often", HARNESS_TESTS),
    Mutant('harness.judge-admin-as-up', REAL_PARTS, "in (OP_STARTING, OP_RUNNING) and not admin_state & ADMIN_OUT_OF_SERVICE else 'down'",
           "in (OP_STARTING, OP_RUNNING) else 'down'", "the tests' own reading of HAProxy takes DRAIN as up", (T_HAPROXY_JUDGE,)),
)


# --- the scratch copy -------------------------------------------------------------------------------

def copy_tree(dest: pathlib.Path, worktree: bool) -> str:
    """The repository's files into ``dest``: HEAD's, or the working tree's (tracked and new, not ignored). Returns what was copied."""
    if not worktree:
        commit = git('rev-parse', 'HEAD').strip()
        with subprocess.Popen(['git', '-C', str(REPO), 'archive', '--format=tar', commit], stdout=subprocess.PIPE) as archive:
            with tarfile.open(fileobj=archive.stdout, mode='r|') as tar:
                tar.extractall(dest, filter='tar')
        if archive.returncode != 0:
            raise SystemExit(f'git archive {commit} failed with {archive.returncode}')
        return f'commit {commit[:12]}'
    names = git('ls-files', '-z', '--cached', '--others', '--exclude-standard').split('\0')
    for name in filter(None, names):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is skipped
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name, follow_symlinks=False)
    return f'working tree at {git("rev-parse", "HEAD").strip()[:12]} with uncommitted changes'


def git(*args: str) -> str:
    return subprocess.run(['git', '-C', str(REPO), *args], capture_output=True, text=True, check=True).stdout


def check_applies(mutant: Mutant, root: pathlib.Path) -> str | None:
    """Why the mutant cannot be applied to the tree at ``root``, or None."""
    path = root / mutant.path
    if not path.is_file():
        return f'{mutant.path}: no such file'
    count = path.read_text(encoding='utf-8').count(mutant.old)
    if count != 1:
        return f'{mutant.path}: the text to replace occurs {count} times, not once: {mutant.old!r}'
    return None


def mutated_text(mutant: Mutant, original: str) -> str:
    text = original.replace(mutant.old, mutant.new)
    compile(text, mutant.path, 'exec')  # a mutant that does not compile would be killed by a SyntaxError, proving nothing
    return text


# --- running the tests ------------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    verdict: str  # passed, failed, timeout, error
    failed: list[str]  # tests that failed or errored
    first_error: str
    seconds: float


def run_tests(root: pathlib.Path, tests: t.Sequence[str], timeout: float, scratch: pathlib.Path, deselect: t.Sequence[str] = ()) -> Run:
    """pytest on ``tests`` in the copy at ``root``; its own process group, ended as a whole at ``timeout``."""
    junit = scratch / 'junit.xml'
    junit.unlink(missing_ok=True)
    # No bytecode: a mutant and the restored file can share size and mtime second, and a stale .pyc would run the wrong one.
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')
    argv = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', f'--junitxml={junit}', '-o', 'junit_family=xunit1',
            *(f'--deselect={test}' for test in deselect), *tests]
    started = time.monotonic()
    with subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True) as proc:
        try:
            output = proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            stop_group(proc)
            return Run('timeout', [], f'no result within {timeout:g}s', time.monotonic() - started)
    seconds = time.monotonic() - started
    failed, first_error = failures(junit)
    if proc.returncode == 0:
        return Run('passed', [], '', seconds)
    if proc.returncode == 1 or (proc.returncode == 2 and failed):
        return Run('failed', failed, first_error, seconds)
    # 2 without a failed test, 3 internal error, 4 usage, 5 nothing collected: the run itself is broken.
    tail = ' | '.join(output.decode('utf-8', errors='replace').strip().splitlines()[-3:])
    return Run('error', failed, f'pytest exited {proc.returncode}: {tail}', seconds)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to pytest's whole group (its real parts die with it), then SIGKILL; bounded."""
    for signum, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            break
        try:
            proc.wait(grace)
            break
        except subprocess.TimeoutExpired:
            continue


def failures(junit: pathlib.Path) -> tuple[list[str], str]:
    """The node ids of the failed or errored tests in a junit file (xunit1: it names each test's file), and the first one's message."""
    if not junit.exists():
        return [], ''
    failed, first = [], ''
    for case in ET.parse(junit).getroot().iter('testcase'):
        problem = case.find('failure')
        if problem is None:
            problem = case.find('error')
        if problem is None:
            continue
        path, classname, name = case.get('file') or '', case.get('classname') or '', case.get('name') or ''
        module = path.removesuffix('.py').replace('/', '.')
        within = classname[len(module) + 1:] if path and classname.startswith(module + '.') else ''
        failed.append('::'.join(filter(None, [path or classname, *within.split('.'), name])))
        if not first:
            first = ((problem.get('message') or '').strip().splitlines() or [''])[0][:160]
    return failed, first


# --- the whole run ----------------------------------------------------------------------------------

@dataclasses.dataclass
class Outcome:
    mutant: Mutant
    run: Run

    @property
    def killed(self) -> bool:
        return self.run.verdict in ('failed', 'timeout')


@dataclasses.dataclass
class Result:
    source: str  # what was mutated: a commit, or the working tree
    baseline: Run  # the tests without any mutant
    outcomes: list[Outcome]

    @property
    def survivors(self) -> list[str]:
        return [outcome.mutant.name for outcome in self.outcomes if not outcome.killed]


def run_all(mutants: t.Sequence[Mutant], worktree: bool, timeout: float, keep: bool) -> Result:
    scratch = pathlib.Path(tempfile.mkdtemp(prefix='l4vip-mutants-'))
    root = scratch / 'rollout'
    root.mkdir()
    try:
        source = copy_tree(root, worktree)
        stale = [f'{m.name}: {why}' for m in mutants if (why := check_applies(m, root))]
        if stale:
            raise SystemExit('these mutants no longer apply (the code moved on; update the list in scripts/mutants.py):\n  ' + '\n  '.join(stale))
        for mutant in mutants:
            mutated_text(mutant, (root / mutant.path).read_text(encoding='utf-8'))
        every_test = list(dict.fromkeys(test for m in mutants for test in m.tests))
        print(f'mutants of the {source}, in {root}', flush=True)
        baseline = run_tests(root, every_test, timeout * 2, scratch)
        print(f'baseline: {len(every_test)} test ids, {baseline.verdict} in {baseline.seconds:.0f}s {short_list(baseline.failed)}'.rstrip(), flush=True)
        if baseline.verdict not in ('passed', 'failed') or (baseline.verdict == 'failed' and not baseline.failed):
            raise SystemExit(f'the tests do not run without any mutant: {baseline.verdict}, {baseline.first_error}')
        # A test that fails with no mutant proves nothing against one: left out of every run, and the run fails (main).
        outcomes = []
        for number, mutant in enumerate(mutants, 1):
            path = root / mutant.path
            original = path.read_text(encoding='utf-8')
            try:
                path.write_text(mutated_text(mutant, original), encoding='utf-8')
                run = run_tests(root, mutant.tests, timeout, scratch, deselect=baseline.failed)
            finally:
                path.write_text(original, encoding='utf-8')
            outcome = Outcome(mutant, run)
            outcomes.append(outcome)
            said = 'killed' if outcome.killed else 'SURVIVED' if run.verdict == 'passed' else 'ERROR'
            killers = short_list([short_id(test) for test in run.failed])
            print(f'[{number}/{len(mutants)}] {mutant.name}: {said} in {run.seconds:.1f}s {killers} {run.first_error}'.rstrip(), flush=True)
        return Result(source, baseline, outcomes)
    finally:
        if keep:
            print(f'kept {scratch}')
        else:
            shutil.rmtree(scratch, ignore_errors=True)
            # tests/conftest.py links each checkout into a collections tree of its own in the temp dir; this copy's goes too.
            digest = hashlib.sha1(bytes(root.resolve())).hexdigest()[:10]
            shutil.rmtree(pathlib.Path(tempfile.gettempdir()) / f'l4vip-rollout-{digest}', ignore_errors=True)


def short_list(tests: t.Sequence[str], most: int = 2) -> str:
    more = f' +{len(tests) - most} more' if len(tests) > most else ''
    return ', '.join(tests[:most]) + more


def short_id(node_id: str) -> str:
    """``tests/unit/x/test_a.py::test_b[c]`` as ``test_a.py::test_b[c]``: the file's name is enough to find it."""
    path, sep, rest = node_id.partition('::')
    return pathlib.PurePath(path).name + sep + rest


def table(outcomes: t.Sequence[Outcome]) -> str:
    lines = ['| mutant | file | the bug it stands for | result | killed by (the failing tests) | s |', '| --- | --- | --- | --- | --- | --- |']
    for outcome in outcomes:
        mutant, run = outcome.mutant, outcome.run
        result = 'killed' if outcome.killed else '**survived**' if run.verdict == 'passed' else f'**{run.verdict}**'
        killers = short_list([f'`{short_id(test)}`' for test in run.failed], 3) or run.first_error
        lines.append(f'| `{mutant.name}` | `{mutant.path}` | {mutant.why} | {result} | {killers} | {run.seconds:.0f} |')
    return '\n'.join(lines)


def report(path: pathlib.Path, result: Result, command: str) -> None:
    """The generated part of the page, between its markers; the text around it is kept."""
    begin, end = '<!-- mutants:begin -->', '<!-- mutants:end -->'
    outcomes, baseline = result.outcomes, result.baseline
    killed = sum(outcome.killed for outcome in outcomes)
    total = sum(outcome.run.seconds for outcome in outcomes) + baseline.seconds
    when = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    body = (f'`{command}` on the {result.source}, {when}: **{killed} of {len(outcomes)} mutants killed**, '
            f'{total / 60:.1f} min of test runs (the baseline, every listed test without a mutant: {baseline.seconds:.0f} s).')
    if baseline.failed:
        body += f'\n\n**Failing without any mutant, left out of every run:** {", ".join(f"`{test}`" for test in baseline.failed)}.'
    body += f'\n\n{table(outcomes)}'
    text = path.read_text(encoding='utf-8') if path.exists() else f'# Mutants\n\n{begin}\n{end}\n'
    head, rest = text.split(begin, 1) if begin in text else (text, end)
    tail = rest.split(end, 1)[1] if end in rest else ''
    path.write_text(f'{head}{begin}\n{body}\n{end}{tail}', encoding='utf-8')


def isolate() -> None:
    """As root, run the rest in a network namespace of our own: loopback only, ports nobody else's tests use."""
    if os.environ.get(ISOLATED):
        subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
        return
    if os.geteuid() == 0 and shutil.which('unshare') and subprocess.run(['unshare', '--net', 'true'], check=False).returncode == 0:
        os.execvpe('unshare', ['unshare', '--net', '--', sys.executable, *sys.argv], dict(os.environ, **{ISOLATED: '1'}))
    print('not isolated (needs root and unshare): these tests use fixed loopback ports, so run them when no one else does', file=sys.stderr)


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--only', nargs='+', metavar='PREFIX', help='only the mutants whose name starts with one of these')
    parser.add_argument('--list', action='store_true', help='list the mutants and whether each applies to the working tree; run nothing')
    parser.add_argument('--worktree', action='store_true', help='mutate the working tree as it is (default: the last commit)')
    parser.add_argument('--timeout', type=float, default=300.0, help="seconds for one mutant's test run (default: %(default)s)")
    parser.add_argument('--report', type=pathlib.Path, help='write the result into this page, between its markers')
    parser.add_argument('--keep', action='store_true', help='keep the scratch copy')
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.only or m.name.startswith(tuple(args.only))]
    if not mutants:
        parser.error(f'no mutant starts with {" or ".join(args.only)}')
    if args.list:
        for mutant in mutants:
            why = check_applies(mutant, REPO)
            print(f'{mutant.name:40} {mutant.path:45} {"STALE: " + why if why else "applies"}')
        return 0
    isolate()
    result = run_all(mutants, args.worktree, args.timeout, args.keep)
    print('\n' + table(result.outcomes))
    if args.report and args.only:
        print(f'{args.report} not written: it shows the last run of every mutant, and this one ran some', file=sys.stderr)
    elif args.report:
        report(args.report, result, 'make mutants' if not args.worktree else 'python scripts/mutants.py ' + ' '.join(argv or sys.argv[1:]))
    if result.survivors:
        print(f'\nnot killed: {", ".join(result.survivors)}', file=sys.stderr)
    if result.baseline.failed:
        print(f'\nfailing without any mutant (left out): {", ".join(result.baseline.failed)}', file=sys.stderr)
    if result.survivors or result.baseline.failed:
        return 1
    print(f'\nevery one of the {len(result.outcomes)} mutants killed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
