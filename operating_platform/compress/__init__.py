"""Background compression: committed videos re-encoded to a smaller codec and swapped in.

- `settings.py`: the target (`--record.compress=av1`, preset, crf, keyframe interval, PSNR floor);
- `waiting.py`: which files still wait, oldest first, and what they hold;
- `transcode.py`: one file re-encoded, and the copy checked against the original;
- `compressor.py`: the loop that compresses what waits and swaps each checked copy in;
- `worker.py`: that loop as a low-priority process of its own, driven by the recorder;
- `process.py`: the recorder's handle on that process.
"""
