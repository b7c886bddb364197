"""The bridge node: hands the dataflow's images and joints to a recorder over ZeroMQ.

It speaks DoRobot's bridge protocol: it binds a PAIR socket for images and one for joints,
sends each image as [event id, payload, JSON metadata] and each joint reading as [event id,
float32 bytes], never blocking (a message the recorder is not there to take is dropped), and
forwards `action_joint` messages the recorder sends back into the dataflow.

The addresses are DoRobot's so101 ones unless DOROBOT_IMAGE_ADDRESS / DOROBOT_JOINT_ADDRESS
say otherwise.
"""

import contextlib
import json
import os

import numpy as np
import pyarrow as pa
import zmq
from dora import Node

IMAGE_ADDRESS = os.environ.get("DOROBOT_IMAGE_ADDRESS", "ipc:///tmp/dora-zeromq-so101-image")
JOINT_ADDRESS = os.environ.get("DOROBOT_JOINT_ADDRESS", "ipc:///tmp/dora-zeromq-so101-joint")


def bind(context: zmq.Context, address: str) -> zmq.Socket:
    socket = context.socket(zmq.PAIR)
    socket.setsockopt(zmq.SNDHWM, 2000)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(address)
    return socket


def send(socket: zmq.Socket, parts: list) -> None:
    # No recorder, or one that is not reading: drop the message, never stall the dataflow.
    with contextlib.suppress(zmq.Again):
        socket.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)


def forward_actions(node: Node, joints: zmq.Socket) -> None:
    while True:
        try:
            parts = joints.recv_multipart(flags=zmq.NOBLOCK)
        except zmq.Again:
            return
        if len(parts) >= 2 and "action_joint" in parts[0].decode("utf-8", "replace"):
            node.send_output("action_joint", pa.array(np.frombuffer(parts[1], np.float32)))


def main() -> None:
    context = zmq.Context()
    images, joints = bind(context, IMAGE_ADDRESS), bind(context, JOINT_ADDRESS)
    node = Node()
    try:
        for event in node:
            if event["type"] == "STOP":
                break
            if event["type"] != "INPUT":
                continue
            event_id = event["id"]
            payload = event["value"].to_numpy(zero_copy_only=False)
            if "image" in event_id:
                meta = json.dumps(event["metadata"], default=str).encode()
                send(images, [event_id.encode(), payload, meta])
            else:
                send(joints, [event_id.encode(), payload.astype(np.float32)])
            forward_actions(node, joints)
    finally:
        context.destroy(linger=0)


if __name__ == "__main__":
    main()
