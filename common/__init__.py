"""What the edge agent and the hub both use, beneath both: config files (YAML, ${ENV} secrets,
error messages that name file and key, commented templates), the command-line kit, durable
file writes and small network helpers.

It imports neither `edge_agent` nor `hub` (tests/test_structure.py checks it), and nothing of
weight: a hub box never loads the agent's video and ML libraries, and a camera box never loads
the hub's web stack. The wire contract has its own neutral package, `contract`.
"""
