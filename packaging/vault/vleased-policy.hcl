# Vault policy for vleased's own identity (AppRole or token), as DESIGN.md "Identity and isolation"
# describes. Give `read` on exactly the paths your [credential] sections name; the rest is what the
# broker needs to renew and revoke what it fetched and to keep its own token alive.
#
#   vault policy write vleased vleased-policy.hcl
#   vault write auth/approle/role/vleased token_policies=vleased token_ttl=1h token_max_ttl=24h

# Credentials handed out (adjust to your [credential] paths)
path "database/creds/*" {
  capabilities = ["read"]
}
path "secret/*" {
  capabilities = ["read"]
}
path "kv/data/*" {
  capabilities = ["read"]
}

# Lease upkeep: the default policy grants renew but not revoke
path "sys/leases/renew" {
  capabilities = ["update"]
}
path "sys/leases/revoke" {
  capabilities = ["update"]
}

# The broker's own token, and tokens of an earlier run still holding leases (kept alive by accessor)
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/renew-accessor" {
  capabilities = ["update"]
}
