"""The seccomp filter bubblewrap loads into every sandboxed program (`bwrap --seccomp FD`): no AF_UNIX sockets.

    program = socket_filter()          # bytes: a classic-BPF program for this machine's architecture

Why: a network namespace hides the host's network and its abstract Unix sockets, but not the Unix sockets that
live in the filesystem (D-Bus, the systemd user manager, a Docker socket): `connect` to a socket file needs no
write access, so a read-only bind of / still lets a program reach them. A filter cannot read the path that
`connect` is given (it sees the pointer only), so it refuses what every such connection needs first:
`socket()` of any family but AF_INET, AF_INET6 (both confined to the empty network namespace) and AF_NETLINK
(per namespace too). That also shuts AF_VSOCK (a VM's host) and the kernel's rarely used families.
`socketpair()` stays allowed for SOCK_STREAM and SOCK_SEQPACKET (multiprocessing, asyncio): such a pair is
connected and cannot be pointed elsewhere, while a SOCK_DGRAM pair could `sendto` any socket file, so it is
refused. io_uring is refused too (its requests create and connect sockets without the syscalls a filter sees),
and so is every syscall of another ABI (x32, or 32-bit code on a 64-bit kernel, where `socketcall` hides
its arguments from a filter).

Written by hand: Python has no seccomp binding in its standard library and no maintained one on PyPI (libseccomp's
own bindings are not published there); the filter is two dozen fixed instructions, checked by tests that run real
programs under it. Supported: x86_64 and aarch64 (little-endian); elsewhere `socket_filter` raises.
"""

from __future__ import annotations

import errno
import platform
import socket
import struct

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]. Both supported ABIs are
# little-endian, so an argument's low 32 bits (an int parameter: family, type) sit at its first byte.
NR, ARCH, ARG0, ARG1 = 0, 4, 16, 24
X32_SYSCALL_BIT = 0x40000000

# machine -> (audit arch, socket, socketpair, io_uring_setup/enter/register)
ARCHES = {
    "x86_64": (0xC000003E, 41, 53, (425, 426, 427)),
    "aarch64": (0xC00000B7, 198, 199, (425, 426, 427)),
}
ALLOWED_FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK)
ALLOWED_PAIR_TYPES = (socket.SOCK_STREAM, socket.SOCK_SEQPACKET)
SOCK_TYPE_MASK = 0xF  # the kernel's mask: the rest of `type` is SOCK_NONBLOCK / SOCK_CLOEXEC

RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000

# classic BPF opcodes
LD_ABS, JEQ, JGE, AND, RET = 0x20, 0x15, 0x35, 0x54, 0x06


class UnsupportedArchitecture(Exception):
    """The filter is written for x86_64 and aarch64 only."""


def socket_filter(machine: str | None = None) -> bytes:
    """The filter for `machine` (default: this one), as bubblewrap reads it: packed `struct sock_filter`s."""
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise UnsupportedArchitecture(f"no seccomp filter for {machine!r} (have: {', '.join(ARCHES)})")
    audit_arch, nr_socket, nr_socketpair, nr_io_uring = ARCHES[machine]
    program = [
        (LD_ABS, ARCH),
        (JEQ, audit_arch, None, "enosys"),
        (LD_ABS, NR),
        *([(JGE, X32_SYSCALL_BIT, "enosys", None)] if machine == "x86_64" else []),
        (JEQ, nr_socket, "socket", None),
        (JEQ, nr_socketpair, "socketpair", None),
        *[(JEQ, nr, "enosys", None) for nr in nr_io_uring],
        (RET, RET_ALLOW),
        "socket",
        (LD_ABS, ARG0),
        *[(JEQ, family, "allow", None) for family in ALLOWED_FAMILIES],
        (RET, RET_ERRNO | errno.EACCES),
        "socketpair",
        (LD_ABS, ARG0),
        (JEQ, socket.AF_UNIX, None, "allow"),  # other families: the kernel refuses socketpair itself
        (LD_ABS, ARG1),
        (AND, SOCK_TYPE_MASK),
        *[(JEQ, kind, "allow", None) for kind in ALLOWED_PAIR_TYPES],
        (RET, RET_ERRNO | errno.EACCES),
        "allow",
        (RET, RET_ALLOW),
        "enosys",
        (RET, RET_ERRNO | errno.ENOSYS),
    ]
    return assemble(program)


def assemble(program: list) -> bytes:
    """Instructions are (opcode, k) or (jump opcode, k, label if true, label if false; None = next); a str is a
    label for the instruction after it. Jumps go forward only, as BPF requires."""
    labels, index = {}, 0
    for item in program:
        if isinstance(item, str):
            labels[item] = index
        else:
            index += 1
    out, index = [], 0
    for item in program:
        if isinstance(item, str):
            continue
        code, k, *targets = item
        offsets = [0 if t is None else labels[t] - index - 1 for t in targets] + [0, 0]
        if min(offsets) < 0 or max(offsets) > 255:
            raise ValueError(f"instruction {index}: jump out of range {offsets[:2]}")
        out.append(struct.pack("<HBBI", code, offsets[0], offsets[1], k))
        index += 1
    return b"".join(out)
