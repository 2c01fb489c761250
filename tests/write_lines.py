#!/usr/bin/env python3
"""Writes log lines for the agent tests, like an application would.

  write_lines.py mixed PATH COUNT SEED
      COUNT lines of mixed lengths (1 byte to 3 KiB, some ending in \\r\\n, a few empty lines
      between them), appended in bursts with short pauses so the agent tails a live file.

  write_lines.py seq PATH FIRST LAST RATE [--rotate-every K] [--rotate rename|copytruncate]
      Lines "seq=N <padding>" for N in FIRST..LAST at about RATE lines/s, appended with
      O_APPEND. With --rotate-every, every K lines the file is rotated:
        rename:        PATH -> PATH.1 (older PATH.1 -> PATH.2, ...), then a new PATH is created;
        copytruncate:  PATH is copied to PATH.1 and truncated in place; the writer goes on
                       (no line is written between the copy and the truncation: such lines
                       would be lost to any tailer, by the nature of copytruncate).

  write_lines.py odd PATH [MIB]
      Four lines: "first", one that is not UTF-8, one of MIB MiB (5), "after the big one".
"""
import os
import random
import shutil
import sys
import time


def mixed(path, count, seed):
    rng = random.Random(seed)
    with open(path, "ab", buffering=0) as f:
        burst = []
        for i in range(1, count + 1):
            size = rng.choice([1, 5, 20, 80, 200, 1000, 3000])
            body = f"line {i} ".encode() + bytes(rng.choice(b"abcdefghij 0123456789") for _ in range(size))
            end = b"\r\n" if i % 7 == 0 else b"\n"
            if i % 101 == 0:
                burst.append(b"\n")  # an empty line, skipped by the agent
            burst.append(body + end)
            if len(burst) >= 500:
                f.write(b"".join(burst))
                burst = []
                time.sleep(0.01)
        f.write(b"".join(burst))


def rotate(path, how):
    if how == "rename":
        n = 1
        while os.path.exists(f"{path}.{n}"):
            n += 1
        for i in range(n, 1, -1):
            os.rename(f"{path}.{i - 1}", f"{path}.{i}")
        os.rename(path, f"{path}.1")
    else:
        shutil.copyfile(path, f"{path}.1")
        os.truncate(path, 0)


def seq(path, first, last, rate, every, how):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    start = time.time()
    written = 0
    for n in range(first, last + 1):
        os.write(fd, f"seq={n} {'x' * (n % 97)}\n".encode())
        written += 1
        if every and written % every == 0 and n != last:
            rotate(path, how)
            if how == "rename":
                os.close(fd)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        ahead = written / rate - (time.time() - start)
        if ahead > 0.005:
            time.sleep(ahead)
    os.close(fd)


def odd(path, mib):
    with open(path, "wb") as f:
        f.write(b"first\n")
        f.write(b"caf\xe9 \xff\xfe not utf-8\n")
        for _ in range(mib):
            f.write(b"B" * (1024 * 1024))
        f.write(b"\n")
        f.write(b"after the big one\n")


def main():
    a = sys.argv[1:]
    if len(a) in (2, 3) and a[0] == "odd":
        odd(a[1], int(a[2]) if len(a) == 3 else 5)
    elif len(a) == 4 and a[0] == "mixed":
        mixed(a[1], int(a[2]), int(a[3]))
    elif len(a) >= 5 and a[0] == "seq":
        opts = dict(zip(a[5::2], a[6::2]))
        seq(a[1], int(a[2]), int(a[3]), float(a[4]), int(opts.get("--rotate-every", 0)),
            opts.get("--rotate", "rename"))
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
