"""A stand-in for LeRobot's device API, for the tests: see tests/standins/README.md."""
