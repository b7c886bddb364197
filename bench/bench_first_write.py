"""What a journal write costs the capture thread, on this machine, by where its memory comes from.

    python bench/bench_first_write.py             # 3 GB in 8 MB writes, three passes
    python bench/bench_first_write.py --mb 1000

An 8 MB write is one tick of three 1280x720 cameras, written by the capture thread into page
cache. Three passes, each into a new file deleted at its end: the first grows page cache; the
second follows at once, into pages the kernel just freed; the third after the machine was idle
for `--idle-s` seconds. On bare metal the three cost about the same. A virtual machine whose
memory balloon reports free pages to the host (virtio-balloon free page reporting) gives those
pages back, and every first touch afterwards faults into the hypervisor: there a write costs
several times more whenever the journal grows into memory not touched recently, which is what
a journal growing by gigabytes behind an encoder that cannot keep up does. Reports the CPU time
per write (p50 / p99 / max) of each pass.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

CHUNK = 8 * 2**20


def one_pass(directory: str, total_mb: int) -> np.ndarray:
    data = np.random.default_rng(0).integers(0, 256, CHUNK, np.uint8)
    path = os.path.join(directory, "journal-like")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    cpu = []
    try:
        for _ in range(total_mb * 2**20 // CHUNK):
            started = time.thread_time()
            os.write(fd, data)
            cpu.append(time.thread_time() - started)
    finally:
        os.close(fd)
        os.unlink(path)
    return np.array(cpu) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=int, default=3000, help="megabytes written by each pass")
    parser.add_argument("--idle-s", type=float, default=10, help="idle time before the third pass")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        for name in ("growing page cache", "pages just freed", f"after {args.idle_s:g} s idle"):
            if name.startswith("after"):
                time.sleep(args.idle_s)
            ms = one_pass(tmp, args.mb)
            print(
                f"{name:19s}: {len(ms)} writes of 8 MB, CPU per write p50 {np.percentile(ms, 50):5.2f} "
                f"p99 {np.percentile(ms, 99):5.2f} max {ms.max():5.2f} ms"
            )


if __name__ == "__main__":
    main()
