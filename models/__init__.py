"""The model registry and the scripts that build the project's own graphs (arrives with the detection issue)."""
