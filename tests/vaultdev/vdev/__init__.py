"""vaultdev: a Vault-compatible dev server for vlease's tests (see ../README.md)."""
