/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The Manager owns everything of one vleased process: the event loop, the configuration, the Vault
 * client, the listening sockets, the connected peers with their per-uid accounting, and the lease
 * cache. It is the only object that knows all the others.
 */

#include <stdbool.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "common/hashtable.h"
#include "common/time-util.h"

typedef struct Config Config;
typedef struct CredentialConfig CredentialConfig;
typedef struct CredentialConn CredentialConn;
typedef struct Lease Lease;
typedef struct Peer Peer;
typedef struct Restart Restart;
typedef struct Retiree Retiree;
typedef struct UnitWatcher UnitWatcher;
typedef struct Session Session;
typedef struct UserLoginOp UserLoginOp;
typedef struct UserToken UserToken;
typedef struct VaultClient VaultClient;

/* Connections and requests in flight, per peer uid. */
typedef struct UidAccount {
        uid_t uid;
        unsigned n_connections;
        unsigned n_requests;
} UidAccount;

typedef struct Manager {
        sd_event *event;
        Config *config;
        VaultClient *vault;

        int varlink_fd;
        int credentials_fd;
        bool own_sockets;               /* bound with --listen: ours to close */
        sd_event_source *varlink_source;
        sd_event_source *credentials_source;

        Peer *peers;
        unsigned n_peers;
        Peer *newcomers;                /* peers not answered yet, at PEER_PRIORITY_NEW: peer.c */
        unsigned fair_streak;           /* dispatches of answered peers since a newcomer's: peer.c */
        bool listen_raised;             /* varlink_source at the normal priority for one accept */
        int peer_epoll_fd;              /* answered peers, served in batches: peer.c */
        sd_event_source *peer_epoll_source;
        bool in_peer_batch;             /* peers freed meanwhile go to peer_graveyard */
        bool batch_warned;              /* a failure to batch a connection was logged */
        Peer *peer_graveyard;
        UidAccount *accounts;
        size_t n_accounts;

        Lease *leases;
        unsigned n_leases;
        HashTable lease_index;          /* the leases by (owner, credential name): lease.c */
        Retiree *retirees;              /* replaced leases waiting for their revoke */

        CredentialConn *credential_conns;       /* LoadCredential= connections being served */
        unsigned n_credential_conns;
        UnitWatcher *unit_watcher;              /* units holding leases (unit-watch.c) */
        Restart *restart;                       /* the state table and the fd store (restart.c) */
        Session *sessions;              /* PAM sessions (session.c) */
        unsigned n_sessions;
        UserToken *user_tokens;         /* per-user Vault tokens from Login (userlogin.c) */
        UserLoginOp *user_logins;       /* Logins waiting for Vault */

        bool stopping;
        bool freeing;
        unsigned n_stop_pending;
        sd_event_source *stop_timer;
        sd_event_source *idle_source;
        sd_event_source *status_source;         /* STATUS=, rate-limited */
        usec_t policy_refreshed;                /* last re-resolution of unresolved names (monotonic) */
} Manager;

int manager_new(Config *config, Manager **ret);
Manager *manager_free(Manager *m);
static inline void manager_freep(Manager **m) {
        if (*m)
                (void) manager_free(*m);
}

int manager_listen(Manager *m, int varlink_fd, int credentials_fd, bool own);
int manager_start(Manager *m);
void manager_update_status(Manager *m);
void manager_stop(Manager *m);
void manager_check_stopped(Manager *m);

bool manager_policy_refresh(Manager *m, const CredentialConfig *c);

UidAccount *manager_account(Manager *m, uid_t uid);
void manager_account_gc(Manager *m);

usec_t realtime_from_boottime(usec_t boottime);
usec_t boottime_from_realtime(usec_t realtime);
