/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * What a restart or a crash must not do (field-failures B06): orphan a lease in Vault, revoke one a
 * running owner still holds, or mint a new database user (and a new token) per start in a crash loop.
 *
 * So on every change the broker writes the lease table (state.c: no secret, no token) atomically to
 * the state directory (a new or renewed lease is appended as one line to the journal beside it, new
 * ones before their reply goes out; the table, whose rewrite costs time in proportion to its size,
 * takes the journal's lines when it has been quiet for a while: restart_lease_saved()), and, under
 * systemd, hands the secret values and its token to the fd store as a sealed memfd (FDSTORE=1;
 * systemd 252 keeps it across `systemctl restart` and Restart=on-failure, not across stop and start).
 * The memfd alternates between two names, the new one stored before the old one is removed, and
 * carries a generation number: a crash between the two steps leaves both, and the newer wins. The memfd is sealed (no write, grow, shrink or further seals) so nothing can change it
 * while PID 1 holds it, and it never touches a disk.
 *
 * At start the table is reloaded and each entry judged by state_lease_verdict(): kept (its unit runs,
 * its user has a PAM session whose leader process still runs, or its user's lease is not yet idle;
 * the idle clock restarts), revoked (with the retiree retries), or forgotten (it has ended). Sessions
 * whose leader still runs (same pid and start time) are taken over and end when the leader exits. Kept leases with their secret from the memfd are served again as they
 * were, and the handed-over token is tried (lookup-self) before any login. Kept leases without it are
 * renewed but not handed out (the next Get fetches a fresh credential) until idle or released; the
 * tokens that created them are kept alive by accessor (auth/token/renew-accessor) so their leases do
 * not die with a token nobody holds any more.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "broker/config.h"
#include "broker/lease.h"
#include "broker/log.h"
#include "broker/manager.h"
#include "broker/restart.h"
#include "broker/schedule.h"
#include "broker/session.h"
#include "broker/state.h"
#include "broker/unit-watch.h"
#include "broker/vault.h"
#include "common/memory-util.h"
#include "common/secret.h"

#define TABLE_NAME "leases.json"
#define JOURNAL_NAME "leases.journal"
#define SAVE_DELAY_USEC (1 * USEC_PER_SEC)                     /* changes that need not wait: coalesced */
#define COMPACT_QUIET_USEC (2 * USEC_PER_SEC)                   /* the journal folded into the table when */
#define COMPACT_AFTER_USEC (60 * USEC_PER_SEC)                  /* quiet, at most this after its first line, */
#define COMPACT_MIN_BYTES ((size_t) 1024U * 1024U)             /* or once it outgrows the table and this */
#define HANDOVER_MAX ((size_t) 64U * 1024U * 1024U)
#define KEEPER_FIRST_USEC (2 * USEC_PER_SEC)

typedef struct Keeper {
        Restart *restart;
        struct Keeper *next;
        char *accessor;
        sd_event_source *timer;
        VaultRequest *req;
        unsigned attempt;
} Keeper;

struct Restart {
        Manager *manager;
        char *state_dir;                /* NULL: no table */
        int lock_fd;                    /* the state directory, flock()ed: one broker per table */
        bool fdstore;                   /* under systemd: use the fd store */
        bool loaded;
        sd_event_source *defer;
        sd_event_source *timer;
        uint64_t generation;
        int journal_fd;                 /* JOURNAL_NAME, append-only */
        uint64_t journal_seq;           /* of the table on disk: the journal lines extending it carry it */
        size_t journal_bytes;           /* appended since the table was written */
        usec_t journal_since;           /* CLOCK_MONOTONIC of the first of those lines */
        sd_event_source *compact_timer;
        size_t table_bytes;             /* the table's size when last written */
        bool want_table, want_secrets;  /* what the timer saves */
        Keeper *keepers;
};

static Keeper *keeper_free(Keeper *k) {
        Restart *r;

        if (!k)
                return NULL;
        r = k->restart;
        for (Keeper **p = &r->keepers; *p; p = &(*p)->next)
                if (*p == k) {
                        *p = k->next;
                        break;
                }
        k->req = vault_request_cancel(k->req);
        sd_event_source_disable_unref(k->timer);
        free(k->accessor);
        free(k);
        return NULL;
}

/**
 * restart_free() - forget; saves nothing (restart_save() does)
 *
 * Return: NULL
 */
Restart *restart_free(Restart *r) {
        if (!r)
                return NULL;
        while (r->keepers)
                keeper_free(r->keepers);
        sd_event_source_disable_unref(r->defer);
        sd_event_source_disable_unref(r->timer);
        sd_event_source_disable_unref(r->compact_timer);
        safe_close(r->journal_fd);
        safe_close(r->lock_fd);
        free(r->state_dir);
        free(r);
        return NULL;
}

/* Atomic by rename(): a crash of this process at any point leaves the old table or the new one. Only
 * the save at stop waits for the disk (@durable): an fsync() costs about 0.5 ms here, and the saves
 * of new leases run in the event loop, ahead of the replies, at every loop pass that created one (in
 * a storm of first reads of 100 users, with the table on ext4, the p99 of other users' cached Gets
 * went from 0.1 to 73 ms: tools/bench figure 3). After a power loss the kernel may not have written
 * the last few seconds' tables (ext4 commits every 5 s): the leases they added end at their TTL. */
static int write_table(Restart *r, const StateTable *table, bool durable) {
        char path[PATH_MAX], tmp[PATH_MAX];
        _cleanup_close_ int dfd = -1;
        FILE *f;
        int fd, k;

        if (snprintf(path, sizeof(path), "%s/" TABLE_NAME, r->state_dir) >= (int) sizeof(path) ||
            snprintf(tmp, sizeof(tmp), "%s/." TABLE_NAME ".tmp", r->state_dir) >= (int) sizeof(tmp))
                return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        f = fdopen(fd, "w");
        if (!f) {
                k = -errno;
                safe_close(fd);
                return k;
        }
        k = state_table_write(table, f);
        if (fflush(f) != 0 || ferror(f))
                k = -errno ?: -EIO;
        if (k >= 0) {
                long size = ftell(f);

                r->table_bytes = size > 0 ? (size_t) size : 0;
        }
        if (k >= 0 && durable && fsync(fileno(f)) < 0)
                k = -errno;
        if (fclose(f) != 0 && k >= 0)
                k = -errno;
        if (k < 0) {
                (void) unlink(tmp);
                return k;
        }
        if (rename(tmp, path) < 0)
                return -errno;
        if (!durable)
                return 0;
        dfd = open(r->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}

/* Stores a sealed memfd with @content in the fd store, then removes the previous one (the other name). */
static int store_memfd(Restart *r, const Secret *content) {
        _cleanup_close_ int fd = -1;
        const char *p = secret_get(content);
        size_t len = secret_size(content), done = 0;
        char name[32], other[32], msg[64];
        int k;

        fd = memfd_create("vlease-secrets", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        while (done < len) {
                ssize_t n = write(fd, p + done, len - done);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t) n;
        }
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;

        (void) snprintf(name, sizeof(name), RESTART_FDNAME_PREFIX "%c", r->generation % 2 ? 'a' : 'b');
        (void) snprintf(other, sizeof(other), RESTART_FDNAME_PREFIX "%c", r->generation % 2 ? 'b' : 'a');
        (void) snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
        k = sd_pid_notify_with_fds(0, false, msg, &fd, 1);
        if (k < 0)
                return k;
        if (k == 0)
                return -ENOTCONN;
        (void) snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", other);
        (void) sd_notify(false, msg);
        return 0;
}

/* Writes the table (@table) and hands the secrets over (@secrets), where each is kept. A save of both
 * is what any pending save would do: it cancels them. */
static int save(Manager *m, bool table_part, bool secrets_part, bool durable) {
        Restart *r = m->restart;
        StateTable table = {};
        StateSecrets secrets = {};
        Secret *content = NULL;
        int k, ret = 0;

        if (!r || !r->loaded)
                return 0;
        if (table_part && secrets_part) {
                r->defer = sd_event_source_disable_unref(r->defer);
                r->timer = sd_event_source_disable_unref(r->timer);
                r->want_table = r->want_secrets = false;
        }
        table_part = table_part && r->state_dir;
        secrets_part = secrets_part && r->fdstore;
        if (!table_part && !secrets_part)
                return 0;               /* nowhere to keep anything */

        k = lease_export(m, &table, secrets_part ? &secrets : NULL);
        if (k >= 0)
                k = session_export(m, &table);
        if (k < 0) {
                ret = log_error_errno(k, "Failed to export the lease table: %m");
                goto out;
        }
        if (table_part) {
                /* a new number: the journal's lines, now in the table, no longer extend it */
                table.journal_seq = r->journal_seq + 1;
                k = write_table(r, &table, durable);
                if (k < 0)
                        ret = log_error_errno(k, "Failed to write %s/" TABLE_NAME ": %m", r->state_dir);
                else {
                        r->journal_seq++;
                        r->journal_bytes = 0;
                        r->compact_timer = sd_event_source_disable_unref(r->compact_timer);
                        if (r->journal_fd >= 0)
                                (void) ftruncate(r->journal_fd, 0);
                }
        }
        if (secrets_part) {
                const Secret *token = vault_client_token(m->vault);

                secrets.generation = ++r->generation;
                if (token && secret_dup(token, &secrets.token) < 0)
                        k = -ENOMEM;
                else
                        k = state_secrets_serialize(&secrets, &content);
                if (k >= 0)
                        k = store_memfd(r, content);
                if (k < 0) {
                        log_warning_errno(k, "Failed to hand the secrets to systemd's fd store (is "
                                          "FileDescriptorStoreMax= set?), a restart will fetch new ones: %m");
                        r->fdstore = k != -ENOTCONN && k != -EPERM;
                }
        }
out:
        secret_free(content);
        state_table_done(&table);
        state_secrets_done(&secrets);
        return ret;
}

/**
 * restart_save() - write the table and store the secrets now, and wait for the disk
 *
 * Return: 0 or a negative errno (logged)
 */
int restart_save(Manager *m) {
        return save(m, true, true, true);
}

static int on_save(sd_event_source *s, void *userdata) {
        (void) save(userdata, true, true, false);
        return 0;
}

static int on_save_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        Restart *r = m->restart;
        bool table = r->want_table, secrets = r->want_secrets;

        r->timer = sd_event_source_disable_unref(r->timer);
        r->want_table = r->want_secrets = false;
        (void) save(m, table, secrets, false);
        return 0;
}

static int on_compact_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        m->restart->compact_timer = sd_event_source_disable_unref(m->restart->compact_timer);
        (void) save(m, true, false, false);
        return 0;
}

/* The table rewritten with the journal at @when (CLOCK_MONOTONIC); later than planned only if
 * @postpone. */
static void compact_at(Restart *r, usec_t when, bool postpone) {
        usec_t armed;

        if (r->compact_timer) {
                if (postpone || (sd_event_source_get_time(r->compact_timer, &armed) >= 0 && armed > when))
                        (void) sd_event_source_set_time(r->compact_timer, when);
                return;
        }
        if (sd_event_add_time(r->manager->event, &r->compact_timer, CLOCK_MONOTONIC, when, 100 * USEC_PER_MSEC,
                              on_compact_timer, r->manager) >= 0)
                (void) sd_event_source_set_description(r->compact_timer, "state-compact");
}

/* Saves @table and/or @secrets within @delay, with whatever else is due by then. */
static void save_later(Restart *r, bool table, bool secrets, usec_t delay) {
        usec_t when = now(CLOCK_MONOTONIC) + delay, armed;

        r->want_table = r->want_table || table;
        r->want_secrets = r->want_secrets || secrets;
        if (r->timer) {
                if (sd_event_source_get_time(r->timer, &armed) >= 0 && armed > when)
                        (void) sd_event_source_set_time(r->timer, when);
                return;
        }
        if (sd_event_add_time(r->manager->event, &r->timer, CLOCK_MONOTONIC, when, 100 * USEC_PER_MSEC,
                              on_save_timer, r->manager) >= 0)
                (void) sd_event_source_set_description(r->timer, "state-save-delayed");
}

/**
 * restart_state_changed() - the table or the secrets changed: save soon
 * @urgent: leases or tokens came or went: saved in this loop iteration, before the reply that hands
 *          a new lease out is written (so a crash cannot orphan a lease a client already has); all
 *          changes up to then are saved at once. Else only times moved: saved within a second
 *          (renewing 10k leases does not rewrite the table 10k times)
 */
void restart_state_changed(Manager *m, bool urgent) {
        Restart *r = m ? m->restart : NULL;

        if (!r || !r->loaded || m->freeing || (!r->state_dir && !r->fdstore))
                return;
        if (urgent) {
                if (!r->defer && sd_event_add_defer(m->event, &r->defer, on_save, m) >= 0) {
                        /* before any reply goes out (peers write from their own defer sources) */
                        (void) sd_event_source_set_priority(r->defer, SD_EVENT_PRIORITY_IMPORTANT);
                        (void) sd_event_source_set_description(r->defer, "state-save");
                }
                return;
        }
        save_later(r, true, true, SAVE_DELAY_USEC);
}

static int journal_open(Restart *r) {
        char path[PATH_MAX];

        if (r->journal_fd >= 0)
                return 0;
        if (snprintf(path, sizeof(path), "%s/" JOURNAL_NAME, r->state_dir) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        r->journal_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        return r->journal_fd < 0 ? -errno : 0;
}

static int journal_append(Restart *r, const StateLease *e) {
        _cleanup_free_ char *line = NULL;
        size_t len;
        off_t end;
        ssize_t n;
        int k;

        k = journal_open(r);
        if (k < 0)
                return k;
        k = state_lease_to_line(e, r->journal_seq, &line);
        if (k < 0)
                return k;
        len = strlen(line);
        end = lseek(r->journal_fd, 0, SEEK_END);
        if (end < 0)
                return -errno;
        n = write(r->journal_fd, line, len);
        if (n >= 0 && (size_t) n == len) {
                r->journal_bytes += len;
                return 0;
        }
        /* a part of a line (a full disk) would swallow the next one: take it back */
        k = n < 0 ? -errno : -ENOSPC;
        (void) ftruncate(r->journal_fd, end);
        return k;
}

/**
 * restart_lease_saved() - a lease fetched (@added: about to be handed out) or renewed: into the table
 * @e: its table entry
 *
 * Appended to the journal now (a few microseconds, where a rewrite of the table takes time in
 * proportion to it: about 50 ms at 10,000 leases, the event loop stalled for all). The table is
 * rewritten with the journal's leases when no line came for two seconds (after a burst, not in it),
 * at most a minute after the journal's first line (so that what the journal does not carry, such as
 * the last use of the other leases, is never older than that), or soon once the journal outgrows
 * the table. A new lease's secret goes to the fd store within a second. Where the journal cannot be
 * written the whole table is saved instead: before the reply for a new lease.
 */
void restart_lease_saved(Manager *m, const StateLease *e, bool added) {
        Restart *r = m ? m->restart : NULL;
        int k;

        if (!r || !r->loaded || m->freeing)
                return;
        if (added && r->fdstore)
                save_later(r, false, true, SAVE_DELAY_USEC);
        if (!r->state_dir)
                return;
        if (r->journal_bytes == 0)
                r->journal_since = now(CLOCK_MONOTONIC);
        k = journal_append(r, e);
        if (k < 0) {
                log_warning_errno(k, "Failed to append to %s/" JOURNAL_NAME ", saving the whole table: %m",
                                  r->state_dir);
                if (added)
                        restart_state_changed(m, true);
                else
                        save_later(r, true, false, SAVE_DELAY_USEC);
                return;
        }
        if (r->journal_bytes > MAX(COMPACT_MIN_BYTES, r->table_bytes))
                compact_at(r, now(CLOCK_MONOTONIC) + SAVE_DELAY_USEC, false);
        else
                compact_at(r, MIN(now(CLOCK_MONOTONIC) + COMPACT_QUIET_USEC, r->journal_since + COMPACT_AFTER_USEC),
                           true);
}

/**
 * restart_new() - set up saving; @state_dir NULL: no table (and no restoring of one)
 *
 * The state directory is locked for as long as this process runs: a second broker on the same
 * table would take its leases over as if it were the next start, and both would write the table.
 *
 * Return: 0, -EBUSY (another broker holds @state_dir, logged), -ENOMEM, or the error of opening it
 */
int restart_new(Manager *m, const char *state_dir, Restart **ret) {
        Restart *r;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->manager = m;
        r->lock_fd = r->journal_fd = -1;
        r->fdstore = !!getenv("NOTIFY_SOCKET");
        if (state_dir) {
                r->state_dir = strdup(state_dir);
                if (!r->state_dir) {
                        free(r);
                        return -ENOMEM;
                }
                r->lock_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (r->lock_fd < 0) {
                        int k = log_error_errno(errno, "Failed to open the state directory %s: %m", state_dir);

                        restart_free(r);
                        return k;
                }
                if (flock(r->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                        int k = errno == EWOULDBLOCK ? -EBUSY : -errno;

                        if (k == -EBUSY)
                                log_error("Another vleased is using the state directory %s: refusing to start.",
                                          state_dir);
                        else
                                log_error_errno(k, "Failed to lock the state directory %s: %m", state_dir);
                        restart_free(r);
                        return k;
                }
        }
        *ret = r;
        return 0;
}

/* ---- keeping the previous process's tokens alive by accessor ---- */

static int on_keeper_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void keeper_arm(Keeper *k, usec_t delay) {
        Manager *m = k->restart->manager;

        if (!k->timer) {
                if (sd_event_add_time_relative(m->event, &k->timer, CLOCK_BOOTTIME, delay, USEC_PER_SEC,
                                               on_keeper_timer, k) < 0)
                        return;
                (void) sd_event_source_set_description(k->timer, "token-keeper");
        } else
                (void) sd_event_source_set_time_relative(k->timer, delay);
        (void) sd_event_source_set_enabled(k->timer, SD_EVENT_ONESHOT);
}

static void on_keeper_renewed(VaultRequest *req, const VaultReply *reply, void *userdata) {
        Keeper *k = userdata;
        Manager *m = k->restart->manager;

        k->req = NULL;
        if (reply->result == VAULT_OK && reply->has_auth) {
                usec_t ttl = (usec_t) MAX(reply->auth.lease_duration, (int64_t) 0) * USEC_PER_SEC;

                k->attempt = 0;
                log_info("Renewed the previous process's Vault token %.8s... by accessor for %llus.",
                         k->accessor, (unsigned long long) (ttl / USEC_PER_SEC));
                lease_token_changed(m, VAULT_TOKEN_RENEWED, k->accessor,
                                    ttl == 0 ? 0 : usec_add(reply->received_realtime_usec, ttl));
                if (ttl > 0)
                        keeper_arm(k, MAX(ttl * 2 / 3, SCHEDULE_RETRY_MIN_USEC));
                return;
        }
        if (reply->result == VAULT_BAD_REQUEST || reply->result == VAULT_NOT_FOUND ||
            (reply->result == VAULT_PERMISSION_DENIED && !reply->transient)) {
                log_warning("The previous process's Vault token %.8s... is gone (%s): its leases are gone too.",
                            k->accessor, reply->error ?: vault_result_to_string(reply->result));
                lease_token_changed(m, VAULT_TOKEN_LOST, k->accessor, 0);
                keeper_free(k);
                return;
        }
        k->attempt++;
        log_warning("Renewing the previous process's Vault token by accessor failed (%s), attempt %u.",
                    reply->error ?: vault_result_to_string(reply->result), k->attempt);
        keeper_arm(k, schedule_backoff(k->attempt, (uint64_t) now(CLOCK_MONOTONIC)));
}

static int on_keeper_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Keeper *k = userdata;
        Manager *m = k->restart->manager;
        const char *current = vault_client_token_accessor(m->vault);
        int r;

        if ((current && strcmp(current, k->accessor) == 0) || !lease_accessor_in_use(m, k->accessor)) {
                /* handed over and in use again (the client renews it), or no lease needs it any more */
                keeper_free(k);
                return 0;
        }
        r = vault_token_renew_accessor(m->vault, k->accessor, 0, on_keeper_renewed, k, &k->req);
        if (r < 0) {
                log_error_errno(r, "Failed to renew a token by accessor: %m");
                keeper_arm(k, schedule_backoff(++k->attempt, (uint64_t) now(CLOCK_MONOTONIC)));
        }
        return 0;
}

static void keeper_add(Restart *r, const char *accessor) {
        Keeper *k;

        for (k = r->keepers; k; k = k->next)
                if (strcmp(k->accessor, accessor) == 0)
                        return;
        k = calloc(1, sizeof(*k));
        if (!k || !(k->accessor = strdup(accessor))) {
                free(k);
                log_oom();
                return;
        }
        k->restart = r;
        k->next = r->keepers;
        r->keepers = k;
        keeper_arm(k, KEEPER_FIRST_USEC);
}

/* ---- loading ---- */

static int read_fd_secret(int fd, Secret **ret) {
        _cleanup_(erase_and_freep) char *buf = NULL;
        struct stat st;
        size_t done = 0;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || (size_t) st.st_size > HANDOVER_MAX)
                return -EBADMSG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (done < (size_t) st.st_size) {
                ssize_t n = pread(fd, buf + done, (size_t) st.st_size - done, (off_t) done);

                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        return secret_new(buf, done, ret);
}

/* The file @name in the state directory, NUL-terminated, its length in @ret_size. */
static int read_state_file(Restart *r, const char *name, char **ret, size_t *ret_size) {
        _cleanup_free_ char *text = NULL;
        char path[PATH_MAX];
        _cleanup_close_ int fd = -1;
        struct stat st;
        ssize_t n;

        if (snprintf(path, sizeof(path), "%s/%s", r->state_dir, name) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size > 256 * 1024 * 1024)
                return -EFBIG;
        text = malloc((size_t) st.st_size + 1);
        if (!text)
                return -ENOMEM;
        n = read(fd, text, (size_t) st.st_size);
        if (n < 0)
                return -errno;
        text[n] = 0;
        *ret = TAKE_PTR(text);
        *ret_size = (size_t) n;
        return 0;
}

static int read_table(Restart *r, StateTable *ret) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int k;

        k = read_state_file(r, TABLE_NAME, &text, &size);
        if (k < 0)
                return k;
        return state_table_from_json(text, ret);
}

/* The leases appended since @table was saved; lines of an earlier table are skipped. */
static void read_journal(Restart *r, StateTable *table) {
        _cleanup_free_ char *text = NULL;
        unsigned bad = 0;
        size_t size;
        int k;

        k = read_state_file(r, JOURNAL_NAME, &text, &size);
        if (k == -ENOENT)
                return;
        if (k >= 0)
                k = state_journal_apply(table, text, size, &bad);
        if (k < 0) {
                log_warning_errno(k, "Failed to read %s/" JOURNAL_NAME ": the leases only it names are "
                                  "neither renewed nor revoked by this broker: %m", r->state_dir);
                return;
        }
        if (bad > 0)
                log_warning("Skipped %u unreadable lines of %s/" JOURNAL_NAME " (a power loss can cut the "
                            "last one short).", bad, r->state_dir);
        if (k > 0)
                log_debug("%i leases from %s/" JOURNAL_NAME ".", k, r->state_dir);
}

/* An unreadable table is kept for the operator under a name of its own, never overwritten by the next
 * save: the leases it names are still alive in Vault (until their TTL) and nobody else knows them. */
static void keep_damaged_table(Restart *r, int error) {
        char path[PATH_MAX], keep[PATH_MAX];

        if (snprintf(path, sizeof(path), "%s/" TABLE_NAME, r->state_dir) >= (int) sizeof(path) ||
            snprintf(keep, sizeof(keep), "%s/" TABLE_NAME ".damaged-%llu", r->state_dir,
                     (unsigned long long) (now(CLOCK_REALTIME) / USEC_PER_SEC)) >= (int) sizeof(keep) ||
            rename(path, keep) < 0) {
                int e = errno;

                log_warning_errno(error, "Ignoring the unreadable lease table %s (%m); it could not be set "
                                  "aside (%s), the next save replaces it.", path, strerror(e));
                return;
        }
        log_warning_errno(error, "Ignoring the unreadable lease table (%m): kept as %s. The leases it names are "
                          "neither renewed nor revoked by this broker and end with their TTL; revoke them by "
                          "hand (vault lease revoke) if they must go sooner.", keep);

        /* the journal extends that table: it goes with it (the next save would empty it) */
        if (snprintf(path, sizeof(path), "%s/" JOURNAL_NAME, r->state_dir) < (int) sizeof(path) &&
            snprintf(keep, sizeof(keep), "%s/" JOURNAL_NAME ".damaged-%llu", r->state_dir,
                     (unsigned long long) (now(CLOCK_REALTIME) / USEC_PER_SEC)) < (int) sizeof(keep) &&
            rename(path, keep) >= 0)
                log_warning("The lease journal that extends it is kept as %s.", keep);
}

/**
 * restart_load() - take over from the previous process
 * @fds: the fd-store memfds systemd passed (named RESTART_FDNAME_PREFIX...); closed here
 *
 * Call after the manager is set up and before manager_start() (the handed-over token must be known
 * before the first login). From then on every change is saved.
 *
 * Return: 0 (problems are logged; the broker then starts afresh)
 */
int restart_load(Manager *m, const int *fds, size_t n_fds) {
        Restart *r = m->restart;
        StateSecrets secrets = {}, best = {};
        StateTable table = {};
        unsigned kept = 0, with_data = 0, revoked = 0, dropped = 0;
        usec_t n = now(CLOCK_REALTIME);
        int k;

        for (size_t i = 0; i < n_fds; i++) {
                Secret *content = NULL;

                k = read_fd_secret(fds[i], &content);
                if (k >= 0) {
                        k = state_secrets_parse(secret_get(content), secret_size(content), &secrets);
                        secret_free(content);
                }
                safe_close(fds[i]);
                if (k < 0) {
                        log_warning_errno(k, "Ignoring an unreadable secrets handover from the fd store: %m");
                        continue;
                }
                if (secrets.generation >= best.generation) {
                        state_secrets_done(&best);
                        best = secrets;
                } else
                        state_secrets_done(&secrets);
                secrets = (StateSecrets) {};
        }
        if (r)
                r->generation = best.generation;

        if (best.token) {
                k = vault_client_adopt_token(m->vault, best.token);
                if (k < 0)
                        log_warning_errno(k, "Failed to take over the previous process's Vault token: %m");
        }

        if (r && r->state_dir) {
                k = read_table(r, &table);
                if (k == -ENOENT)
                        log_debug("No lease table in %s: starting afresh.", r->state_dir);
                else if (k < 0)
                        keep_damaged_table(r, k);
                r->journal_seq = table.journal_seq;
                if (k >= 0 || k == -ENOENT)
                        read_journal(r, &table);
                (void) journal_open(r);         /* so that the first save empties it */
        }

        /* sessions first: a user with a live session keeps even an idle lease */
        for (size_t i = 0; i < table.n_sessions; i++) {
                k = session_restore(m, &table.sessions[i]);
                if (k < 0)
                        log_warning_errno(k, "Failed to restore session %.8s of %s: %m", table.sessions[i].id,
                                          table.sessions[i].user);
                else if (k == 0)
                        log_info("Session %.8s of %s ended while the broker was down.", table.sessions[i].id,
                                 table.sessions[i].user);
        }

        for (size_t i = 0; i < table.n_leases; i++) {
                const StateLease *e = &table.leases[i];
                const CredentialConfig *cred = config_find_credential(m->config, e->credential);
                const StateSecret *x = e->no_data ? NULL : state_secrets_find(&best, e->owner, e->credential,
                                                                              e->lease_id);
                bool unit = strncmp(e->owner, "unit:", 5) == 0;
                int running = unit && e->cgroup ? cgroup_populated(e->cgroup) : -1;
                StateVerdict v;

                if (unit && !e->cgroup)
                        running = 0;
                v = state_lease_verdict(e, n, m->config->broker.idle_release_usec, running,
                                        !unit && session_uid_active(m, state_owner_uid(e->owner)));
                if (v == STATE_KEEP && (!cred || (!e->lease_id && !x)))
                        v = e->lease_id ? STATE_REVOKE : STATE_DROP;    /* no longer configured, or nothing to keep */

                if (v == STATE_KEEP) {
                        k = lease_restore(m, e, cred, x ? x->data : NULL);
                        if (k < 0) {
                                log_warning_errno(k, "Failed to restore '%s' of %s, revoking it: %m",
                                                  e->credential, e->owner);
                                v = e->lease_id ? STATE_REVOKE : STATE_DROP;
                        } else {
                                kept++;
                                with_data += !!x;
                                if (unit && e->cgroup)
                                        (void) unit_watch(m, e->owner + 5, e->cgroup);
                                if (!x && e->accessor && r)
                                        keeper_add(r, e->accessor);
                                log_info("Restored '%s' of %s%s.", e->credential, e->owner,
                                         x ? "" : " without its secret (renewed until released or idle)");
                        }
                }
                if (v == STATE_REVOKE) {
                        log_info("'%s' of %s is no longer held: revoking it.", e->credential, e->owner);
                        if (lease_restore_retiree(m, e) < 0)
                                log_oom();
                        else
                                revoked++;
                }
                if (v == STATE_DROP)
                        dropped++;
        }
        /* a user whose last session ended while no broker ran: log out now */
        for (size_t i = 0; i < table.n_sessions; i++) {
                uid_t uid = table.sessions[i].uid;
                bool seen = false;

                for (size_t j = 0; j < i; j++)
                        seen = seen || table.sessions[j].uid == uid;
                if (seen || session_uid_active(m, uid))
                        continue;
                k = (int) lease_release_on_logout(m, uid);
                if (k > 0)
                        log_info("Last session of %s ended while the broker was down: releasing %i credentials.",
                                 table.sessions[i].user, k);
        }

        if (table.n_leases > 0 || best.token)
                log_info("Restart: %u leases kept (%u with their secret), %u being revoked, %u ended; Vault "
                         "token %s.", kept, with_data, revoked, dropped,
                         best.token ? "handed over" : "not handed over");

        if (r) {
                /* the previous process's memfd is replaced (then removed) by the first save */
                r->loaded = true;
        }
        state_table_done(&table);
        state_secrets_done(&best);
        restart_state_changed(m, true);
        return 0;
}
