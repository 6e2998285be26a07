"""Evidence packages: one signed file a police officer can hand on and anyone can check offline.

`keys` holds the hub's Ed25519 signing key, `package` builds a package from a stored clip, its
manifest and its chain of custody, `verify` checks one without the hub (`diaolou-hub
verify-evidence FILE`). The format is in docs/evidence.md.
"""
