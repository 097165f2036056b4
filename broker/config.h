/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vleased.conf: [vault], [broker] and [credential NAME] sections, read from the main file and then
 * from F.d/ *.conf in lexical order. A later value of a key wins, a section met twice merges, list
 * keys (allow_users, allow_groups, allow_units) accumulate; under one section header any other key
 * may be given once. Pure apart from reading files; errors are
 * returned as text naming file and line, for the caller to log.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/hashtable.h"
#include "common/macro.h"
#include "common/secret.h"
#include "common/time-util.h"

typedef enum VaultAuth {
        VAULT_AUTH_APPROLE,
        VAULT_AUTH_TOKEN,
        _VAULT_AUTH_MAX,
        _VAULT_AUTH_INVALID = -EINVAL,
} VaultAuth;

typedef enum CredentialIdentity {
        CREDENTIAL_IDENTITY_BROKER,
        CREDENTIAL_IDENTITY_USER,
        _CREDENTIAL_IDENTITY_MAX,
        _CREDENTIAL_IDENTITY_INVALID = -EINVAL,
} CredentialIdentity;

typedef struct VaultConfig {
        char *address;                  /* http(s) URL, no trailing slash */
        char *ca_file;                  /* NULL: system CAs */
        bool allow_http;                /* plain http to non-loopback hosts */
        char *namespace;                /* X-Vault-Namespace, NULL if unset */
        VaultAuth auth;                 /* default approle */
        char *role_id_file;
        char *secret_id_file;
        char *token_file;
        usec_t timeout_usec;            /* timeout_sec, default 30 s */
        unsigned max_concurrent_requests;       /* HTTP requests to Vault at once, default 32 */
        char *user_auth_mount;          /* default "userpass" */

        /* Filled by config_load_secrets(), NULL until then or when not needed */
        Secret *role_id;
        Secret *secret_id;
        Secret *token;
} VaultConfig;

typedef struct BrokerConfig {
        usec_t idle_release_usec;       /* default 3600 s */
        bool revoke_on_stop;            /* default no */
        usec_t idle_exit_usec;          /* 0 = never (default) */
        unsigned max_connections_per_uid;       /* default 64 */
        unsigned max_connections_root;          /* default 4096 */
        unsigned max_requests_per_uid;          /* default 16 */
        usec_t request_timeout_usec;    /* default 10 s */
        size_t max_message_size;        /* default 65536 */
} BrokerConfig;

typedef struct CredentialConfig {
        HashEntry index;                /* in Config.credential_index */
        char *name;                     /* [A-Za-z0-9_.-]+ */
        char *path;                     /* Vault path, no leading '/' */
        char **allow_users;             /* strv, names or numeric uids */
        char **allow_groups;            /* strv, names or numeric gids */
        char **allow_units;             /* strv, unit names or fnmatch() patterns */
        char *format;                   /* NULL if unset; validated by format_validate() */
        usec_t refresh_usec;            /* refresh_sec, default 300 s */
        CredentialIdentity identity;    /* default broker */
        bool provision;                 /* default no */
        bool release_on_logout;         /* default yes */

        /* Filled by policy_resolve() */
        uid_t *allow_uids;
        size_t n_allow_uids;
        gid_t *allow_gids;
        size_t n_allow_gids;
} CredentialConfig;

typedef struct Config {
        VaultConfig vault;
        BrokerConfig broker;
        CredentialConfig *credentials;  /* in order of first appearance */
        size_t n_credentials;
        HashTable credential_index;     /* by name, built once parsed; empty: walk the array */
} Config;

int config_new(Config **ret);
Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

int config_parse_string(const char *text, const char *filename, Config **ret, char **ret_error);
int config_load(const char *path, Config **ret, char **ret_error);
int config_load_secrets(Config *c, const char *credentials_dir, char **ret_error);

const CredentialConfig *config_find_credential(const Config *c, const char *name);
bool credential_name_is_valid(const char *name);

const char *vault_auth_to_string(VaultAuth a);
VaultAuth vault_auth_from_string(const char *s);
const char *credential_identity_to_string(CredentialIdentity i);
CredentialIdentity credential_identity_from_string(const char *s);
