"""The dataset layouts LeRobot reads, one module each, behind `DoRobotDatasetMetadata`."""
