#!/usr/bin/env python3
"""Prints N free TCP ports on 127.0.0.1, one per line, for a benchmark run to listen on.

    python3 tests/bench/ports.py 12

The kernel is asked: each port is bound (all N at once, so they are distinct) and released
just before printing. The candidates come from below the kernel's ephemeral range
(net.ipv4.ip_local_port_range), so no outgoing connection (the load generators open
thousands) can take one in the moment between this and the server binding it. When that
range leaves too little room, port 0 is bound instead and the kernel picks.
"""

import random
import socket
import sys


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n):
    held = []
    try:
        low, high = 10000, ephemeral_low() - 1
        candidates = list(range(low, high + 1)) if high - low > 4 * n else []
        random.shuffle(candidates)
        for port in candidates:
            if len(held) == n:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
        while len(held) < n:  # fallback: the kernel's own choice
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    print("\n".join(str(p) for p in free_ports(count)))
