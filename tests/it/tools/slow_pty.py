#!/usr/bin/env python3
"""A slow terminal line for tests: runs a command on a pseudo-terminal of its own and
copies what it writes to our stdout at most RATE bytes a second (a 64 kbit/s link
is 8000), reading it as fast as it comes, so nothing ever pushes back on the
command: its output queues here instead, as it would in an SSH connection's
buffers. Keys from our stdin go to it at once. At exit, writes to STATS (JSON) how
long the longest-waiting byte queued here, and how many bytes went through.

    slow_pty.py RATE STATS -- COMMAND ARGS...
"""
import fcntl
import json
import os
import pty
import select
import struct
import sys
import termios
import time
import tty
from collections import deque


def main():
    rate = float(sys.argv[1])
    stats_path = sys.argv[2]
    cmd = sys.argv[4:]
    size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
    pid, master = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    try:
        tty.setraw(0)
    except termios.error:
        pass
    queue = deque()  # (time read, bytes)
    worst = 0.0
    total = 0
    budget = 0.0
    last = time.monotonic()
    done = False
    while not done or queue:
        now = time.monotonic()
        budget = min(budget + (now - last) * rate, rate / 50.0)
        last = now
        while queue and budget >= 1:
            at, chunk = queue[0]
            n = min(len(chunk), int(budget))
            os.write(1, chunk[:n])
            budget -= n
            total += n
            if n == len(chunk):
                queue.popleft()
                worst = max(worst, now - at)
            else:
                queue[0] = (at, chunk[n:])
        if done:
            time.sleep(0.005)
            continue
        r, _, _ = select.select([0, master], [], [], 0.005)
        if master in r:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if data:
                queue.append((time.monotonic(), data))
            else:
                done = True
        if 0 in r:
            keys = os.read(0, 1024)
            if keys:
                os.write(master, keys)
    _, status = os.waitpid(pid, 0)
    with open(stats_path, "w") as f:
        json.dump({"worst_queue_s": worst, "bytes": total}, f)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
