"""A simulated SO-101 arm node, leader or follower (ROLE in the environment).

The leader sends its joint positions on every tick, a smooth function of its tick count. The
follower moves toward the last position it was commanded (the leader's `action` input, or an
`action_joint` sent back by a recorder for a policy rollout) and sends where it is.
"""

import os

import numpy as np
import pyarrow as pa
from dora import Node
from sim_frames import JOINTS, leader_joints

ROLE = os.environ.get("ROLE", "leader")
GAIN = 0.5  # the fraction of the remaining distance the follower closes per tick


def main() -> None:
    node = Node()
    counter = 0
    position = np.zeros(JOINTS, np.float32)
    target = position.copy()
    for event in node:
        if event["type"] == "STOP":
            break
        if event["type"] != "INPUT":
            continue
        if event["id"] in ("action", "action_joint"):
            target = event["value"].to_numpy().astype(np.float32)[:JOINTS]
        elif event["id"] == "tick":
            if ROLE == "leader":
                position = leader_joints(counter)
            else:
                position = (position + GAIN * (target - position)).astype(np.float32)
            node.send_output("joint", pa.array(position))
            counter += 1


if __name__ == "__main__":
    main()
