"""The one-box demo (`./scripts/demo.sh`, `diaolou-demo`): embedded broker, hub with its web UI,
one agent with a camera, and an admin, a shop owner and a police user to sign in with.

It stands above both sides (it runs an agent and a hub), so it lives outside both packages:
`edge_agent` and `hub` never import each other, and neither imports this.
"""
