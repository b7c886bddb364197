"""Uploading a dataset while it is recorded: to the Hugging Face Hub, S3 or any fsspec URL.

- `destination`: what a `--record.push_to` / `dorobot push` URL means, checked without I/O.
- `remotes`: the Hub (one atomic commit per round) and fsspec file systems (data first,
  metadata last), behind one interface.
- `ledger`: the local record of what is already at a destination, so nothing is sent twice.
- `sync`: one upload round: a plan from a dataset snapshot, carried out in order.
- `worker` / `process`: the background process the recorder runs at low priority.
- `push`: `dorobot push ROOT DEST`, the same in the foreground.
"""
