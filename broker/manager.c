/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The Manager: ties the event loop, the sockets, the peers, the lease cache and the Vault client
 * together, and handles the process's life: readiness, status, watchdog, signals, idle exit, and
 * the bounded wait for revokes at stop when revoke_on_stop = yes.
 */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "broker/config.h"
#include "broker/credentials.h"
#include "broker/lease.h"
#include "broker/listen.h"
#include "broker/log.h"
#include "broker/manager.h"
#include "broker/peer.h"
#include "broker/policy.h"
#include "broker/restart.h"
#include "broker/unit-watch.h"
#include "broker/session.h"
#include "broker/userlogin.h"
#include "broker/vault.h"
#include "common/hashtable.h"
#include "common/memory-util.h"

#define STOP_REVOKE_TIMEOUT_USEC (10 * USEC_PER_SEC)

usec_t realtime_from_boottime(usec_t boottime) {
        return usec_realtime_from_boottime(boottime, now(CLOCK_BOOTTIME), now(CLOCK_REALTIME));
}

usec_t boottime_from_realtime(usec_t realtime) {
        return usec_boottime_from_realtime(realtime, now(CLOCK_BOOTTIME), now(CLOCK_REALTIME));
}

/**
 * manager_account() - the per-uid counters of @uid, created on first use
 *
 * Return: the account, or NULL when out of memory
 */
UidAccount *manager_account(Manager *m, uid_t uid) {
        UidAccount *a;

        for (size_t i = 0; i < m->n_accounts; i++)
                if (m->accounts[i].uid == uid)
                        return &m->accounts[i];

        a = reallocarray(m->accounts, m->n_accounts + 1, sizeof(UidAccount));
        if (!a)
                return NULL;
        m->accounts = a;
        m->accounts[m->n_accounts] = (UidAccount) { .uid = uid };
        return &m->accounts[m->n_accounts++];
}

/* Drops accounts with nothing counted; the array stays small. */
void manager_account_gc(Manager *m) {
        size_t j = 0;

        for (size_t i = 0; i < m->n_accounts; i++)
                if (m->accounts[i].n_connections > 0 || m->accounts[i].n_requests > 0)
                        m->accounts[j++] = m->accounts[i];
        m->n_accounts = j;
}

static int on_idle_exit(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        log_info("Idle with no leases and no connections: exiting.");
        (void) sd_notify(false, "STOPPING=1");
        return sd_event_exit(m->event, 0);
}

/* STATUS= is for humans: sent at most this often, however fast connections come and go. */
#define STATUS_INTERVAL_USEC (100 * USEC_PER_MSEC)

static int on_status(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        unsigned users, units;
        VaultStatus vs;

        if (m->stopping || m->freeing)
                return 0;

        lease_count_owners(m, &users, &units);
        vault_client_get_status(m->vault, &vs);
        (void) sd_notifyf(false, "STATUS=%u leases held (%u users, %u units), %u sessions, %u connections; Vault %s%s",
                          m->n_leases, users, units, m->n_sessions, m->n_peers + m->n_credential_conns,
                          vs.sealed == 1 ? "sealed" : !vs.reachable && vs.last_error ? "unreachable" :
                          vs.logged_in ? "logged in" : "logging in",
                          vs.last_error ? " (last error)" : "");
        return 0;
}

/* Schedules STATUS= unless it is already due: one update per STATUS_INTERVAL_USEC at most. */
static void manager_schedule_status(Manager *m) {
        int enabled = SD_EVENT_OFF;

        if (!m->status_source) {
                if (sd_event_add_time_relative(m->event, &m->status_source, CLOCK_MONOTONIC, STATUS_INTERVAL_USEC,
                                               STATUS_INTERVAL_USEC / 10, on_status, m) >= 0)
                        (void) sd_event_source_set_description(m->status_source, "status");
                return;
        }
        if (sd_event_source_get_enabled(m->status_source, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        (void) sd_event_source_set_time_relative(m->status_source, STATUS_INTERVAL_USEC);
        (void) sd_event_source_set_enabled(m->status_source, SD_EVENT_ONESHOT);
}

/**
 * manager_update_status() - after a change: schedule STATUS= and re-evaluate the idle-exit timer
 */
void manager_update_status(Manager *m) {
        bool idle;

        if (!m || m->stopping || m->freeing)
                return;

        manager_schedule_status(m);

        if (m->config->broker.idle_exit_usec == 0)
                return;
        idle = m->n_leases == 0 && m->n_peers == 0 && m->n_credential_conns == 0 && !m->retirees;
        if (!idle) {
                m->idle_source = sd_event_source_disable_unref(m->idle_source);
                return;
        }
        if (m->idle_source)
                return;
        if (sd_event_add_time_relative(m->event, &m->idle_source, CLOCK_MONOTONIC, m->config->broker.idle_exit_usec,
                                       USEC_PER_SEC, on_idle_exit, m) >= 0)
                (void) sd_event_source_set_description(m->idle_source, "idle-exit");
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        Peer *p;
        int cfd;

        peer_listen_dispatched(m);
        cfd = listen_accept(s, fd, "varlink");
        if (cfd < 0)
                return 0;
        (void) peer_new(m, cfd, &p);
        return 0;
}

static int on_accept_credentials(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return credentials_accept(userdata, s, fd);
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        log_warning("%u revokes did not complete in time: exiting anyway.", m->n_stop_pending);
        m->n_stop_pending = 0;
        return sd_event_exit(m->event, 0);
}

/**
 * manager_check_stopped() - while stopping, exit the loop once no revoke is pending
 */
void manager_check_stopped(Manager *m) {
        if (m && m->stopping && !m->freeing && m->n_stop_pending == 0)
                (void) sd_event_exit(m->event, 0);
}

/**
 * manager_stop() - stop accepting, revoke everything when revoke_on_stop = yes, then exit
 */
void manager_stop(Manager *m) {
        unsigned n = 0;

        if (m->stopping)
                return;

        (void) sd_notify(false, "STOPPING=1");
        m->varlink_source = sd_event_source_disable_unref(m->varlink_source);
        m->credentials_source = sd_event_source_disable_unref(m->credentials_source);

        if (m->config->broker.revoke_on_stop) {
                n = lease_revoke_all(m);
                if (n > 0) {
                        log_info("Stopping: revoking %u leases.", n);
                        (void) sd_event_add_time_relative(m->event, &m->stop_timer, CLOCK_MONOTONIC,
                                                          STOP_REVOKE_TIMEOUT_USEC, 0, on_stop_timeout, m);
                }
        }
        m->stopping = true;
        manager_check_stopped(m);
}

/* Operators and logrotate send SIGHUP out of habit; dying on it would drop every lease's upkeep. */
static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        log_notice("SIGHUP: the configuration is read at start only; restart vleased to apply changes "
                   "(leases are handed over to the next start).");
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Received SIG%s, stopping.", sigabbrev_np((int) si->ssi_signo) ?: "?");
        manager_stop(m);
        return 0;
}

static void on_token_changed(VaultClient *c, VaultTokenEvent event, const char *accessor, usec_t expires_usec,
                             void *userdata) {
        lease_token_changed(userdata, event, accessor, expires_usec);
        manager_update_status(userdata);
}

static void on_vault_log(int priority, const char *message, void *userdata) {
        log_full(priority, "vault: %s", message);
}

/**
 * manager_new() - set up the event loop, signals, watchdog and the Vault client
 * @config: the loaded configuration; owned by the manager from now on, also on error
 * @ret: the manager
 *
 * Return: 0 or a negative errno (logged)
 */
int manager_new(Config *config, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m) {
                config_free(config);
                return log_oom();
        }
        m->config = config;
        m->varlink_fd = m->credentials_fd = m->peer_epoll_fd = -1;

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");

        r = sd_event_add_signal(m->event, NULL, SIGTERM, on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGHUP, on_sighup, m);
        if (r < 0)
                return log_error_errno(r, "Failed to handle signals: %m");

        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");

        r = vault_client_new(m->event, &config->vault, &m->vault);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Vault client for %s: %m",
                                       config->vault.address ?: "(no address)");
        vault_client_set_token_changed_callback(m->vault, on_token_changed, m);
        vault_client_set_log_func(m->vault, on_vault_log, m);
        /* Vault's answers wait behind connections already answered (cached Gets): peer.c */
        vault_client_set_priority(m->vault, PEER_PRIORITY_NEW);

        *ret = TAKE_PTR(m);
        return 0;
}

/**
 * manager_free() - close everything; wipes every cached secret; revokes nothing
 *
 * Return: NULL
 */
Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;

        m->freeing = true;      /* no status updates, no sd_event_exit() from the frees below */
        while (m->peers)
                peer_free(m->peers);
        credentials_free_all(m);
        m->unit_watcher = unit_watcher_free(m->unit_watcher);
        m->restart = restart_free(m->restart);
        session_free_all(m);
        userlogin_free_all(m);
        lease_free_all(m);
        hashtable_done(&m->lease_index);
        retirees_free_all(m);
        m->vault = vault_client_free(m->vault);

        sd_event_source_disable_unref(m->peer_epoll_source);
        safe_close(m->peer_epoll_fd);
        sd_event_source_disable_unref(m->varlink_source);
        sd_event_source_disable_unref(m->credentials_source);
        sd_event_source_disable_unref(m->stop_timer);
        sd_event_source_disable_unref(m->idle_source);
        sd_event_source_disable_unref(m->status_source);
        if (m->own_sockets) {
                safe_close(m->varlink_fd);
                safe_close(m->credentials_fd);
        }
        free(m->accounts);
        config_free(m->config);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

/**
 * manager_listen() - serve @varlink_fd (varlink) and @credentials_fd (LoadCredential=)
 * @own: the manager closes the fds when freed
 *
 * Return: 0 or a negative errno (logged)
 */
int manager_listen(Manager *m, int varlink_fd, int credentials_fd, bool own) {
        int r;

        m->varlink_fd = varlink_fd;
        m->credentials_fd = credentials_fd;
        m->own_sockets = own;

        r = listen_prepare(m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to prepare the listening sockets: %m");
        r = sd_event_add_io(m->event, &m->varlink_source, varlink_fd, EPOLLIN, on_accept, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the varlink socket: %m");
        (void) sd_event_source_set_description(m->varlink_source, "listen-varlink");
        (void) sd_event_source_set_priority(m->varlink_source, PEER_PRIORITY_NEW);

        if (credentials_fd >= 0) {
                r = sd_event_add_io(m->event, &m->credentials_source, credentials_fd, EPOLLIN,
                                    on_accept_credentials, m);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch the credentials socket: %m");
                (void) sd_event_source_set_description(m->credentials_source, "listen-credentials");
        }
        return 0;
}

#define POLICY_REFRESH_INTERVAL_USEC (10 * USEC_PER_SEC)

/**
 * manager_policy_refresh() - look up again the names of @c that did not resolve
 * @m: the manager
 * @c: the credential a caller was just denied
 *
 * A user or group named in allow_users/allow_groups but created after the broker started is not
 * known by uid yet. Called on a denial: when @c has such names, every credential's names are
 * resolved again, at most every 10 s (NSS lookups are not free, and denials can be provoked).
 *
 * Return: true if the names were resolved again (the caller should check the policy once more)
 */
bool manager_policy_refresh(Manager *m, const CredentialConfig *c) {
        _cleanup_strv_free_ char **unknown = NULL;
        usec_t t = now(CLOCK_MONOTONIC);

        if (c->n_allow_uids == strv_length(c->allow_users) && c->n_allow_gids == strv_length(c->allow_groups))
                return false;
        if (m->policy_refreshed != 0 && t < m->policy_refreshed + POLICY_REFRESH_INTERVAL_USEC)
                return false;
        m->policy_refreshed = t;
        if (policy_resolve(m->config, &unknown) < 0)
                return false;
        return true;
}

/**
 * manager_start() - start the Vault login and tell systemd we are ready
 *
 * Return: 0 or a negative errno (logged)
 */
int manager_start(Manager *m) {
        int r;

        r = vault_client_start(m->vault);
        if (r < 0)
                return log_error_errno(r, "Failed to start the Vault client: %m");

        (void) sd_notify(false, "READY=1");
        manager_update_status(m);
        log_info("Ready, Vault at %s, %zu credentials configured.", m->config->vault.address,
                 m->config->n_credentials);
        return 0;
}
