"""The server-side session reader of ``session_drain``: parsing, filtering, the limited wait, validation."""

from __future__ import annotations

import ipaddress
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.l4vip.rollout.plugins.module_utils._sockets import (
    CARRYING_TRAFFIC,
    STATE_NAMES,
    OptionError,
    Socket,
    SocketTableError,
    client_sessions,
    parse_line,
    parse_table,
    read_sockets,
    validate_address,
    validate_exclude_sources,
    validate_port,
    validate_states,
    validate_threshold,
    wait_for_drain,
)
from ansible_collections.l4vip.rollout.tests.unit.fakes import FakeClock

HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode'
HEADER6 = ('  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt'
           '   uid  timeout inode')

STATE_CODE = {
    'ESTABLISHED': 0x01, 'SYN_SENT': 0x02, 'SYN_RECV': 0x03, 'FIN_WAIT1': 0x04, 'FIN_WAIT2': 0x05, 'TIME_WAIT': 0x06,
    'CLOSE': 0x07, 'CLOSE_WAIT': 0x08, 'LAST_ACK': 0x09, 'LISTEN': 0x0A, 'CLOSING': 0x0B, 'NEW_SYN_RECV': 0x0C,
}


def encode_address(text: str) -> str:
    """The kernel's way: each 32-bit word of the address as the native integer, printed %08X."""
    packed = ipaddress.ip_address(text).packed
    return ''.join('%08X' % struct.unpack('=I', packed[i:i + 4])[0] for i in range(0, len(packed), 4))


def table_line(local: str, local_port: int, remote: str, remote_port: int, state: str = 'ESTABLISHED', inode: int = 4242, slot: int = 0) -> str:
    return (f'{slot:4d}: {encode_address(local)}:{local_port:04X} {encode_address(remote)}:{remote_port:04X} '
            f'{STATE_CODE[state]:02X} 00000000:00000000 00:00000000 00000000  1000        0 {inode} 1 0000000000000000 20 4 30 10 -1')


def sock(local: str, local_port: int, remote: str, remote_port: int, state: str = 'ESTABLISHED') -> Socket:
    parsed = parse_line(table_line(local, local_port, remote, remote_port, state))
    assert parsed is not None
    return parsed


def peers(sessions) -> list[str]:
    return [session.peer for session in sessions]


# Captured from this machine's /proc/net/tcp and tcp6 (x86-64, little-endian).
REAL_LINES = [
    # 127.0.0.101 listening on 55065, any remote
    ('   0: 6500007F:D719 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 174145 1 000000007c82408d 100 0 0 10 0',
     ('127.0.0.101', 55065, '0.0.0.0', 0, 'LISTEN', 174145, 'ipv4')),
    # the accepted side of a client 127.0.0.102:40391
    ('2854: 6500007F:D719 6600007F:9DC7 01 00000000:00000000 00:00000000 00000000     0        0 174147 1 0000000079394a60 20 0 0 10 -1',
     ('127.0.0.101', 55065, '127.0.0.102', 40391, 'ESTABLISHED', 174147, 'ipv4')),
    # 0.0.0.0:2024 listener
    ('   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1648 1 000000008093e643 100 0 0 10 0',
     ('0.0.0.0', 2024, '0.0.0.0', 0, 'LISTEN', 1648, 'ipv4')),
    # TIME_WAIT: the inode is 0 and the line is shorter
    ('   1: 2700007F:AE87 0100007F:E6E2 06 00000000:00000000 03:000011F6 00000000     0        0 0 3 000000002f0c42f4',
     ('127.0.0.39', 44679, '127.0.0.1', 59106, 'TIME_WAIT', 0, 'ipv4')),
    # [::1]:51001 listening
    ('   0: 00000000000000000000000001000000:C739 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000'
     '     0        0 174139 1 0000000044601b4f 100 0 0 10 0',
     ('::1', 51001, '::', 0, 'LISTEN', 174139, 'ipv6')),
    # its accepted client [::1]:41136
    ('   4: 00000000000000000000000001000000:C739 00000000000000000000000001000000:A0B0 01 00000000:00000000 00:00000000 00000000'
     '     0        0 174141 1 000000005d8c31d1 20 0 0 10 -1',
     ('::1', 51001, '::1', 41136, 'ESTABLISHED', 174141, 'ipv6')),
    # a dual-stack socket accepting 127.0.0.1:60234: IPv4-mapped in the table, IPv4 for us
    ('   3: 0000000000000000FFFF00000100007F:EE15 0000000000000000FFFF00000100007F:EB4A 01 00000000:00000000 00:00000000 00000000'
     '     0        0 174144 1 000000004c15d37a 20 0 0 10 -1',
     ('127.0.0.1', 60949, '127.0.0.1', 60234, 'ESTABLISHED', 174144, 'ipv6')),
    # ::ffff:127.0.0.101 listening
    ('   0: 0000000000000000FFFF00006500007F:B589 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000'
     '     0        0 176209 1 00000000ce1f314f 100 0 0 10 0',
     ('127.0.0.101', 46473, '::', 0, 'LISTEN', 176209, 'ipv6')),
]


def fields(parsed: Socket) -> tuple:
    return (str(parsed.local_address), parsed.local_port, str(parsed.remote_address), parsed.remote_port, parsed.state, parsed.inode, parsed.family)


@pytest.mark.parametrize(('line', 'expected'), REAL_LINES)
def test_real_lines_from_this_machine(line, expected):
    parsed = parse_line(line)
    assert parsed is not None
    assert fields(parsed) == expected


@pytest.mark.parametrize(
    ('local', 'remote', 'expected_local', 'expected_remote', 'family'),
    [
        ('0.0.0.0', '0.0.0.0', '0.0.0.0', '0.0.0.0', 'ipv4'),
        ('127.0.0.1', '127.0.0.2', '127.0.0.1', '127.0.0.2', 'ipv4'),
        ('192.0.2.10', '198.51.100.200', '192.0.2.10', '198.51.100.200', 'ipv4'),
        ('10.1.2.3', '255.255.255.254', '10.1.2.3', '255.255.255.254', 'ipv4'),
        ('::', '::', '::', '::', 'ipv6'),
        ('::1', '::1', '::1', '::1', 'ipv6'),
        ('2001:db8::1234:5678', 'fe80::a:b:c:d', '2001:db8::1234:5678', 'fe80::a:b:c:d', 'ipv6'),
        ('2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff', '2001:db8::1', '2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff', '2001:db8::1', 'ipv6'),
        # IPv4 through an IPv6 socket: recognised as IPv4
        ('::ffff:127.0.0.1', '::ffff:127.0.0.1', '127.0.0.1', '127.0.0.1', 'ipv6'),
        ('::ffff:192.0.2.10', '::ffff:203.0.113.7', '192.0.2.10', '203.0.113.7', 'ipv6'),
        # IPv4-compatible (deprecated) is not mapped: stays IPv6
        ('::127.0.0.1', '::1', '::7f00:1', '::1', 'ipv6'),
    ],
)
def test_addresses_decode_in_both_tables(local, remote, expected_local, expected_remote, family):
    parsed = parse_line(table_line(local, 8080, remote, 51234, inode=99))
    assert parsed is not None
    assert fields(parsed) == (expected_local, 8080, expected_remote, 51234, 'ESTABLISHED', 99, family)


@given(st.ip_addresses(), st.integers(0, 65535), st.ip_addresses(), st.integers(0, 65535))
def test_any_address_and_port_survives_the_round_trip(local, local_port, remote, remote_port):
    parsed = parse_line(table_line(str(local), local_port, str(remote), remote_port))
    assert parsed is not None

    def plain(address):
        return address.ipv4_mapped or address if address.version == 6 else address
    assert (parsed.local_address, parsed.local_port, parsed.remote_address, parsed.remote_port) == (plain(local), local_port, plain(remote), remote_port)


def test_the_encoder_matches_the_kernel_on_this_machine():
    # Guards the test's own encoder: it must produce what the real table shows.
    assert encode_address('127.0.0.101') == '6500007F'
    assert encode_address('::1') == '00000000000000000000000001000000'
    assert encode_address('::ffff:127.0.0.1') == '0000000000000000FFFF00000100007F'


@pytest.mark.parametrize(('state', 'code'), sorted(STATE_CODE.items()))
def test_every_state_code_has_its_name(state, code):
    line = table_line('127.0.0.1', 80, '127.0.0.2', 5000, state)
    assert f' {code:02X} ' in line
    parsed = parse_line(line)
    assert parsed is not None and parsed.state == state


def test_an_unknown_state_is_named_not_fatal():
    line = table_line('127.0.0.1', 80, '127.0.0.2', 5000).replace(' 01 ', ' 0E ', 1)
    parsed = parse_line(line)
    assert parsed is not None and parsed.state == 'UNKNOWN_0E'
    assert client_sessions([parsed], 80) == []


def test_a_table_skips_its_header_and_blank_lines():
    text = '\n'.join([HEADER, REAL_LINES[0][0], REAL_LINES[1][0], '', REAL_LINES[3][0], ''])
    assert [sock.inode for sock in parse_table(text)] == [174145, 174147, 0]
    assert parse_line(HEADER) is None
    assert parse_line(HEADER6) is None
    assert parse_line('   ') is None
    assert parse_table(HEADER6 + '\n') == []


@pytest.mark.parametrize(
    'line',
    [
        '   0: 6500007F:D719 00000000:0000 0A',  # truncated
        '   0: 6500007F:D719 0000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1 0',  # 7 hex digits
        '   0: 6500007G:D719 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1 0',  # not hex
        '   0: 6500007F-D719 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1 0',  # no port
        '   0: 6500007F:D719 00000000:0000 ZZ 00000000:00000000 00:00000000 00000000 0 0 1 1 0',  # state
        '   0: 6500007F:D719 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 x 1 0',  # inode
    ],
)
def test_a_broken_line_is_an_error_not_a_skipped_session(line):
    with pytest.raises(SocketTableError, match='socket table line'):
        parse_line(line)


def test_a_table_read_for_one_port_decodes_its_lines_alone():
    lines = [line for line, _expected in REAL_LINES]
    text = '\n'.join([HEADER, *lines])
    everything = parse_table(text)
    for port in {sock.local_port for sock in everything}:
        assert parse_table(text, port) == [sock for sock in everything if sock.local_port == port]
    assert parse_table(text, 1) == []
    # Another port's line is passed over undecoded, broken or not; a broken line of the port is still an error.
    broken = '   0: 6500007F:0050 00000000:0000 0A'
    assert parse_table('\n'.join([HEADER, broken]), 81) == []
    with pytest.raises(SocketTableError, match='socket table line'):
        parse_table('\n'.join([HEADER, broken]), 80)


def test_read_sockets_reads_both_tables(tmp_path):
    tcp, tcp6 = tmp_path / 'tcp', tmp_path / 'tcp6'
    tcp.write_text('\n'.join([HEADER, REAL_LINES[1][0]]) + '\n')
    tcp6.write_text('\n'.join([HEADER6, REAL_LINES[5][0], REAL_LINES[6][0]]) + '\n')
    assert [sock.peer for sock in read_sockets(str(tcp), str(tcp6))] == ['127.0.0.102:40391', '[::1]:41136', '127.0.0.1:60234']


def test_read_sockets_without_ipv6_is_fine(tmp_path):
    tcp = tmp_path / 'tcp'
    tcp.write_text('\n'.join([HEADER, REAL_LINES[1][0]]) + '\n')
    assert [sock.inode for sock in read_sockets(str(tcp), str(tmp_path / 'absent'))] == [174147]
    assert [sock.inode for sock in read_sockets(str(tcp), None)] == [174147]


def test_read_sockets_without_the_ipv4_table_fails(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_sockets(str(tmp_path / 'absent'), str(tmp_path / 'absent6'))


def test_read_sockets_defaults_to_the_kernels_tables():
    # Every Linux test host has the table; the header alone proves it was read and parsed.
    assert isinstance(read_sockets(), list)
    assert read_sockets.__defaults__ == ('/proc/net/tcp', '/proc/net/tcp6', None)


def test_a_session_reports_peer_local_and_state():
    assert sock('192.0.2.10', 80, '198.51.100.7', 50000).as_session() == {
        'peer': '198.51.100.7:50000', 'local': '192.0.2.10:80', 'state': 'ESTABLISHED'}
    assert sock('2001:db8::10', 443, '2001:db8::77', 50001, 'CLOSE_WAIT').as_session() == {
        'peer': '[2001:db8::77]:50001', 'local': '[2001:db8::10]:443', 'state': 'CLOSE_WAIT'}
    assert sock('::ffff:192.0.2.10', 80, '::ffff:198.51.100.7', 50002).peer == '198.51.100.7:50002'


@pytest.mark.parametrize(
    ('state', 'counts'),
    [
        ('ESTABLISHED', True),
        ('SYN_RECV', True),
        ('NEW_SYN_RECV', True),
        ('CLOSE_WAIT', True),  # the client closed; the server still holds it
        ('LISTEN', False),
        ('TIME_WAIT', False),
        ('CLOSE', False),
        ('FIN_WAIT1', False),  # the server closed: its FIN clears the L4's session
        ('FIN_WAIT2', False),
        ('CLOSING', False),
        ('LAST_ACK', False),
        ('SYN_SENT', False),
    ],
)
def test_states_that_carry_client_traffic(state, counts):
    sessions = client_sessions([sock('192.0.2.10', 80, '198.51.100.7', 50000, state)], 80)
    assert (len(sessions) == 1) is counts
    assert (state in CARRYING_TRAFFIC) is counts


def test_a_listener_on_the_port_is_not_a_session():
    table = parse_table('\n'.join([HEADER, REAL_LINES[0][0], REAL_LINES[1][0]]))
    assert peers(client_sessions(table, 55065)) == ['127.0.0.102:40391']


def test_only_the_local_service_port_counts():
    table = [
        sock('192.0.2.10', 80, '198.51.100.7', 50000),
        sock('192.0.2.10', 8080, '198.51.100.8', 50000),
        # the server as a client of port 80 elsewhere: remote port 80, not local
        sock('192.0.2.10', 50001, '203.0.113.1', 80),
    ]
    assert peers(client_sessions(table, 80)) == ['198.51.100.7:50000']
    assert peers(client_sessions(table, 8080)) == ['198.51.100.8:50000']


def test_chosen_states_override_the_default():
    table = [sock('192.0.2.10', 80, '198.51.100.7', 50000, 'FIN_WAIT1'), sock('192.0.2.10', 80, '198.51.100.8', 50000)]
    assert peers(client_sessions(table, 80, states=['fin_wait1'])) == ['198.51.100.7:50000']
    assert peers(client_sessions(table, 80, states=CARRYING_TRAFFIC | {'FIN_WAIT1'})) == ['198.51.100.7:50000', '198.51.100.8:50000']


ADDRESS_TABLE = [
    sock('192.0.2.10', 80, '198.51.100.1', 50000),  # the VIP on lo:0
    sock('192.0.2.20', 80, '198.51.100.2', 50000),  # the server's own address
    sock('::ffff:192.0.2.10', 80, '::ffff:198.51.100.3', 50000),  # the VIP through a dual-stack socket
    sock('2001:db8::10', 80, '2001:db8::99', 50000),
    sock('::1', 80, '::1', 50000),
]


@pytest.mark.parametrize(
    ('address', 'expected'),
    [
        (None, ['198.51.100.1:50000', '198.51.100.2:50000', '198.51.100.3:50000', '[::1]:50000', '[2001:db8::99]:50000']),
        ('192.0.2.10', ['198.51.100.1:50000', '198.51.100.3:50000']),
        ('::ffff:192.0.2.10', ['198.51.100.1:50000', '198.51.100.3:50000']),
        ('192.0.2.20', ['198.51.100.2:50000']),
        ('2001:db8:0::10', ['[2001:db8::99]:50000']),
        ('::1', ['[::1]:50000']),
        ('192.0.2.99', []),
        # a wildcard is never a session's local address: it means any, not none
        ('0.0.0.0', ['198.51.100.1:50000', '198.51.100.2:50000', '198.51.100.3:50000', '[::1]:50000', '[2001:db8::99]:50000']),
        ('::', ['198.51.100.1:50000', '198.51.100.2:50000', '198.51.100.3:50000', '[::1]:50000', '[2001:db8::99]:50000']),
    ],
)
def test_address_filter(address, expected):
    assert peers(client_sessions(ADDRESS_TABLE, 80, address=address)) == expected


SOURCE_TABLE = [
    sock('192.0.2.10', 80, '10.0.0.5', 50000),  # L4 health checker
    sock('192.0.2.10', 80, '10.0.0.6', 50000),  # L4 health checker
    sock('192.0.2.10', 80, '10.0.1.5', 50000),  # a client next door
    sock('192.0.2.10', 80, '203.0.113.9', 50000),  # monitoring
    sock('::ffff:192.0.2.10', 80, '::ffff:10.0.0.7', 50000),  # checker through a dual-stack socket
    sock('2001:db8::10', 80, '2001:db8:1::5', 50000),
    sock('2001:db8::10', 80, '2001:db8:2::5', 50000),
]


@pytest.mark.parametrize(
    ('exclude', 'expected'),
    [
        ([], ['10.0.0.5:50000', '10.0.0.6:50000', '10.0.0.7:50000', '10.0.1.5:50000', '203.0.113.9:50000',
              '[2001:db8:1::5]:50000', '[2001:db8:2::5]:50000']),
        (['203.0.113.9'], ['10.0.0.5:50000', '10.0.0.6:50000', '10.0.0.7:50000', '10.0.1.5:50000',
                           '[2001:db8:1::5]:50000', '[2001:db8:2::5]:50000']),
        (['10.0.0.0/24', '203.0.113.9'], ['10.0.1.5:50000', '[2001:db8:1::5]:50000', '[2001:db8:2::5]:50000']),
        (['10.0.0.5', '10.0.0.6/32'], ['10.0.0.7:50000', '10.0.1.5:50000', '203.0.113.9:50000', '[2001:db8:1::5]:50000', '[2001:db8:2::5]:50000']),
        (['10.0.0.1/24'], ['10.0.1.5:50000', '203.0.113.9:50000', '[2001:db8:1::5]:50000', '[2001:db8:2::5]:50000']),  # host bits, as firewalls allow
        (['::ffff:10.0.0.0/120'], ['10.0.1.5:50000', '203.0.113.9:50000', '[2001:db8:1::5]:50000', '[2001:db8:2::5]:50000']),
        (['::ffff:10.0.0.7'], ['10.0.0.5:50000', '10.0.0.6:50000', '10.0.1.5:50000', '203.0.113.9:50000',
                               '[2001:db8:1::5]:50000', '[2001:db8:2::5]:50000']),
        (['2001:db8:1::/48'], ['10.0.0.5:50000', '10.0.0.6:50000', '10.0.0.7:50000', '10.0.1.5:50000', '203.0.113.9:50000',
                               '[2001:db8:2::5]:50000']),
        (['0.0.0.0/0'], ['[2001:db8:1::5]:50000', '[2001:db8:2::5]:50000']),
        (['0.0.0.0/0', '::/0'], []),
    ],
)
def test_exclude_sources(exclude, expected):
    assert peers(client_sessions(SOURCE_TABLE, 80, exclude_sources=exclude)) == expected


def test_exclude_sources_with_address_together():
    assert peers(client_sessions(SOURCE_TABLE, 80, address='192.0.2.10', exclude_sources=['10.0.0.0/16'])) == ['203.0.113.9:50000']


class Tables:
    """A ``read`` that returns one table per poll, then keeps returning the last."""

    def __init__(self, *tables: list[Socket]) -> None:
        self.tables = list(tables)
        self.reads = 0

    def __call__(self) -> list[Socket]:
        self.reads += 1
        return self.tables[min(self.reads, len(self.tables)) - 1]


BUSY = [sock('192.0.2.10', 80, '198.51.100.7', 50000), sock('192.0.2.10', 80, '198.51.100.8', 50001, 'CLOSE_WAIT'),
        sock('192.0.2.10', 80, '10.0.0.5', 50002)]
ONE_LEFT = [sock('192.0.2.10', 80, '198.51.100.8', 50001, 'CLOSE_WAIT'), sock('192.0.2.10', 80, '10.0.0.5', 50002),
            sock('192.0.2.10', 80, '198.51.100.7', 50000, 'FIN_WAIT2')]
EMPTY = [sock('192.0.2.10', 80, '0.0.0.0', 0, 'LISTEN'), sock('192.0.2.10', 80, '198.51.100.7', 50000, 'TIME_WAIT')]


def test_wait_drains_on_the_third_poll():
    clock = FakeClock()
    started = clock.monotonic()
    read = Tables(BUSY, ONE_LEFT, EMPTY)
    result = wait_for_drain(read, 80, timeout=30, poll_interval=2, clock=clock)
    assert result.drained is True
    assert result.connections == []
    assert result.polls == 3 and read.reads == 3
    assert result.elapsed == pytest.approx(4.0)
    assert clock.slept == [2, 2]
    assert clock.monotonic() - started == pytest.approx(4.0)
    assert result.as_dict() == {'drained': True, 'connections': [], 'elapsed': pytest.approx(4.0), 'polls': 3}


def test_wait_already_drained_polls_once_and_never_sleeps():
    clock = FakeClock()
    result = wait_for_drain(Tables(EMPTY), 80, timeout=30, poll_interval=2, clock=clock)
    assert (result.drained, result.polls, result.elapsed, clock.slept) == (True, 1, 0.0, [])


def test_wait_times_out_and_reports_what_remains():
    clock = FakeClock()
    read = Tables(BUSY, ONE_LEFT)
    result = wait_for_drain(read, 80, exclude_sources=['10.0.0.0/8'], timeout=5, poll_interval=2, clock=clock)
    assert result.drained is False
    # Seen from the first poll to the deadline: open at least 5 s.
    assert result.connections == [{'peer': '198.51.100.8:50001', 'local': '192.0.2.10:80', 'state': 'CLOSE_WAIT', 'open_for': 5.0}]
    # polls at 0, 2, 4 and at the deadline itself; never sleeps past it
    assert clock.slept == [2, 2, 1]
    assert result.polls == 4 and read.reads == 4
    assert result.elapsed == pytest.approx(5.0)


def test_a_session_is_open_for_as_long_as_the_wait_has_seen_it():
    clock = FakeClock()
    late = sock('192.0.2.10', 80, '198.51.100.9', 50009)
    # 198.51.100.7 from the first poll (t=0), 198.51.100.9 from the third (t=2); the deadline is t=3.
    read = Tables([BUSY[0]], [BUSY[0]], [BUSY[0], late])
    result = wait_for_drain(read, 80, timeout=3, poll_interval=1, clock=clock)
    assert {session['peer']: session['open_for'] for session in result.connections} == {'198.51.100.7:50000': 3.0, '198.51.100.9:50009': 1.0}


def test_wait_with_no_time_polls_once():
    clock = FakeClock()
    result = wait_for_drain(Tables(BUSY), 80, timeout=0, poll_interval=2, clock=clock)
    assert (result.drained, result.polls, clock.slept) == (False, 1, [])
    assert peers_of(result) == ['10.0.0.5:50002', '198.51.100.7:50000', '198.51.100.8:50001']


def peers_of(result) -> list[str]:
    return [session['peer'] for session in result.connections]


@pytest.mark.parametrize(('threshold', 'drained', 'polls'), [(0, False, 4), (1, False, 4), (2, True, 2), (3, True, 1)])
def test_threshold_is_how_many_may_remain(threshold, drained, polls):
    clock = FakeClock()
    # BUSY has 3 client sessions, ONE_LEFT 2 (the checker at 10.0.0.5 is not excluded here)
    result = wait_for_drain(Tables(BUSY, ONE_LEFT), 80, threshold=threshold, timeout=3, poll_interval=1, clock=clock)
    assert (result.drained, result.polls) == (drained, polls)
    assert len(result.connections) <= threshold if drained else len(result.connections) > threshold


def test_wait_filters_by_address_and_states():
    clock = FakeClock()
    table = [sock('192.0.2.10', 80, '198.51.100.7', 50000, 'FIN_WAIT1'), sock('192.0.2.20', 80, '198.51.100.8', 50000)]
    result = wait_for_drain(Tables(table), 80, address='192.0.2.10', states=['FIN_WAIT1'], timeout=1, poll_interval=1, clock=clock)
    assert result.drained is False
    assert peers_of(result) == ['198.51.100.7:50000']
    assert wait_for_drain(Tables(table), 80, address='192.0.2.10', timeout=1, poll_interval=1, clock=clock).drained is True


def test_wait_checks_its_options_before_reading():
    read = Tables(BUSY)
    with pytest.raises(OptionError) as caught:
        wait_for_drain(read, 80, threshold=-1, clock=FakeClock())
    assert caught.value.option == 'threshold'
    assert read.reads == 0


@pytest.mark.parametrize(
    ('option', 'value'),
    [('timeout', -1), ('timeout', math.inf), ('timeout', math.nan), ('timeout', '10'), ('poll_interval', 0), ('poll_interval', -0.5), ('poll_interval', True)],
)
def test_wait_refuses_unlimited_or_bad_times(option, value):
    with pytest.raises(OptionError, match=f'^{option}: ') as caught:
        wait_for_drain(Tables(EMPTY), 80, clock=FakeClock(), **{option: value})
    assert caught.value.option == option
    assert caught.value.value is value


def test_a_read_error_is_not_a_timeout():
    def broken():
        raise PermissionError('/proc/net/tcp')
    with pytest.raises(PermissionError):
        wait_for_drain(broken, 80, clock=FakeClock())


@pytest.mark.parametrize(
    ('validate', 'option', 'value', 'message'),
    [
        (validate_port, 'port', 0, 'from 1 to 65535'),
        (validate_port, 'port', 65536, 'from 1 to 65535'),
        (validate_port, 'port', '80', 'from 1 to 65535'),
        (validate_port, 'port', True, 'from 1 to 65535'),
        (validate_port, 'port', 80.0, 'from 1 to 65535'),
        (validate_address, 'address', '192.0.2.300', 'IP address'),
        (validate_address, 'address', 'vip.example.com', 'IP address'),
        (validate_address, 'address', '192.0.2.0/24', 'IP address'),
        (validate_address, 'address', 3232235777, 'IP address'),
        (validate_exclude_sources, 'exclude_sources', '10.0.0.1', 'list'),
        (validate_exclude_sources, 'exclude_sources', 42, 'list'),
        (validate_threshold, 'threshold', -1, '0 or more'),
        (validate_threshold, 'threshold', 1.5, '0 or more'),
        (validate_threshold, 'threshold', False, '0 or more'),
        (validate_states, 'states', 'ESTABLISHED', 'TCP state names'),
    ],
)
def test_validation_names_the_option_and_value(validate, option, value, message):
    with pytest.raises(OptionError, match=f'^{option}: .*{message}') as caught:
        validate(value)
    assert isinstance(caught.value, ValueError)
    assert caught.value.option == option
    assert caught.value.value is value
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize('bad', ['10.0.0.0/33', 'monitor.example.com', '10.0.0.', '', 7, None])
def test_a_bad_exclude_source_is_named(bad):
    with pytest.raises(OptionError) as caught:
        validate_exclude_sources(['10.0.0.5', bad])
    assert caught.value.option == 'exclude_sources'
    assert caught.value.value is bad
    assert str(caught.value).startswith('exclude_sources: expected an IP address or a CIDR network')


def test_a_bad_state_name_is_named():
    with pytest.raises(OptionError) as caught:
        validate_states(['ESTABLISHED', 'ESTABLISHD'])
    assert (caught.value.option, caught.value.value) == ('states', 'ESTABLISHD')


def test_client_sessions_validates_too():
    with pytest.raises(OptionError) as caught:
        client_sessions(BUSY, 80, exclude_sources=['10.0.0.0/8', 'x'])
    assert (caught.value.option, caught.value.value) == ('exclude_sources', 'x')
    with pytest.raises(OptionError, match='^port: '):
        client_sessions(BUSY, 70000)


@pytest.mark.parametrize(
    ('validate', 'value', 'expected'),
    [
        (validate_port, 1, 1),
        (validate_port, 65535, 65535),
        (validate_address, None, None),
        (validate_address, ' 192.0.2.10 ', ipaddress.ip_address('192.0.2.10')),
        (validate_address, '::ffff:192.0.2.10', ipaddress.ip_address('192.0.2.10')),
        (validate_address, '2001:db8::1', ipaddress.ip_address('2001:db8::1')),
        (validate_address, '0.0.0.0', None),
        (validate_exclude_sources, None, ()),
        (validate_exclude_sources, ['10.0.0.5', '10.1.0.0/16', '2001:db8::/32'],
         (ipaddress.ip_network('10.0.0.5/32'), ipaddress.ip_network('10.1.0.0/16'), ipaddress.ip_network('2001:db8::/32'))),
        (validate_exclude_sources, ['::ffff:10.0.0.0/104'], (ipaddress.ip_network('10.0.0.0/8'),)),
        (validate_threshold, 0, 0),
        (validate_threshold, 3, 3),
        (validate_states, ['established', 'CLOSE_WAIT'], frozenset({'ESTABLISHED', 'CLOSE_WAIT'})),
    ],
)
def test_good_values_pass_validation(validate, value, expected):
    assert validate(value) == expected


def test_the_state_names_are_the_kernels():
    assert set(STATE_CODE) <= set(STATE_NAMES)
    assert CARRYING_TRAFFIC == {'ESTABLISHED', 'SYN_RECV', 'NEW_SYN_RECV', 'CLOSE_WAIT'}
