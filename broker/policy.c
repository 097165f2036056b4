/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Authorisation of Get: a caller may fetch a credential only if its uid, one of its groups or its unit
 * is listed in the credential's section. Root gets no exception: a root process that needs a
 * credential is listed like anyone else (root sees all leases in List and Status, the core's concern).
 * Names are resolved to ids once at load, so a request never waits on NSS; numeric entries are ids.
 */

#include <errno.h>
#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "broker/policy.h"
#include "common/memory-util.h"

#define NSS_BUFFER_MAX (1024U * 1024U)

static int parse_id(const char *s, uint32_t *ret) {
        uint64_t x = 0;

        if (!*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                x = x * 10 + (uint64_t) (*p - '0');
                if (x >= UINT32_MAX)    /* (uid_t) -1 is never a valid id */
                        return -ERANGE;
        }
        *ret = (uint32_t) x;
        return 0;
}

static int lookup_user(const char *name, uid_t *ret) {
        _cleanup_free_ char *buf = NULL;
        size_t n = 4096;
        uint32_t id;

        if (parse_id(name, &id) >= 0) {
                *ret = (uid_t) id;
                return 0;
        }

        for (;;) {
                struct passwd pw, *res = NULL;
                int r;

                free(buf);
                buf = malloc(n);
                if (!buf)
                        return -ENOMEM;
                r = getpwnam_r(name, &pw, buf, n, &res);
                if (r == ERANGE && n < NSS_BUFFER_MAX) {
                        n *= 2;
                        continue;
                }
                if (r != 0)
                        return -r;
                if (!res)
                        return -ESRCH;
                *ret = res->pw_uid;
                return 0;
        }
}

static int lookup_group(const char *name, gid_t *ret) {
        _cleanup_free_ char *buf = NULL;
        size_t n = 4096;
        uint32_t id;

        if (parse_id(name, &id) >= 0) {
                *ret = (gid_t) id;
                return 0;
        }

        for (;;) {
                struct group gr, *res = NULL;
                int r;

                free(buf);
                buf = malloc(n);
                if (!buf)
                        return -ENOMEM;
                r = getgrnam_r(name, &gr, buf, n, &res);
                if (r == ERANGE && n < NSS_BUFFER_MAX) {
                        n *= 2;
                        continue;
                }
                if (r != 0)
                        return -r;
                if (!res)
                        return -ESRCH;
                *ret = res->gr_gid;
                return 0;
        }
}

static int note_unknown(char ***unknown, const char *credential, const char *what, const char *name, int error) {
        char *m = NULL;

        if (!unknown)
                return 0;
        if (error == -ESRCH) {
                if (asprintf(&m, "[credential %s]: unknown %s '%s', ignored", credential, what, name) < 0)
                        return -ENOMEM;
        } else if (asprintf(&m, "[credential %s]: cannot look up %s '%s': %s, ignored", credential, what, name,
                            strerror(-error)) < 0)
                return -ENOMEM;
        return strv_consume(unknown, m);
}

/**
 * policy_resolve() - turn allow_users and allow_groups into uids and gids
 * @c: the configuration; fills allow_uids/allow_gids of every credential
 * @ret_unknown: names that could not be resolved, one message each (for the caller to log as
 *      warnings), NULL if none; free with strv_free(); may be NULL
 *
 * Unknown names are left out (they allow nobody), not fatal. Calling this again re-resolves.
 *
 * Return: 0 or -ENOMEM
 */
int policy_resolve(Config *c, char ***ret_unknown) {
        _cleanup_strv_free_ char **unknown = NULL;
        int r;

        for (size_t i = 0; i < c->n_credentials; i++) {
                CredentialConfig *cc = &c->credentials[i];
                size_t nu = strv_length(cc->allow_users), ng = strv_length(cc->allow_groups);
                uid_t *uids = NULL;
                gid_t *gids = NULL;
                size_t k = 0;

                if (nu > 0) {
                        uids = calloc(nu, sizeof(uid_t));
                        if (!uids)
                                return -ENOMEM;
                }
                for (size_t j = 0; j < nu; j++) {
                        r = lookup_user(cc->allow_users[j], &uids[k]);
                        if (r == -ENOMEM) {
                                free(uids);
                                return r;
                        }
                        if (r < 0) {
                                r = note_unknown(&unknown, cc->name, "user", cc->allow_users[j], r);
                                if (r < 0) {
                                        free(uids);
                                        return r;
                                }
                                continue;
                        }
                        k++;
                }
                free(cc->allow_uids);
                cc->allow_uids = uids;
                cc->n_allow_uids = k;

                k = 0;
                if (ng > 0) {
                        gids = calloc(ng, sizeof(gid_t));
                        if (!gids)
                                return -ENOMEM;
                }
                for (size_t j = 0; j < ng; j++) {
                        r = lookup_group(cc->allow_groups[j], &gids[k]);
                        if (r == -ENOMEM) {
                                free(gids);
                                return r;
                        }
                        if (r < 0) {
                                r = note_unknown(&unknown, cc->name, "group", cc->allow_groups[j], r);
                                if (r < 0) {
                                        free(gids);
                                        return r;
                                }
                                continue;
                        }
                        k++;
                }
                free(cc->allow_gids);
                cc->allow_gids = gids;
                cc->n_allow_gids = k;
        }

        if (ret_unknown)
                *ret_unknown = TAKE_PTR(unknown);
        return 0;
}

/**
 * policy_allows() - may this caller Get the credential?
 * @c: the credential, after policy_resolve()
 * @uid: the caller's uid (SO_PEERCRED)
 * @gids: the caller's groups: its primary gid and supplementary groups (SO_PEERGROUPS, or
 *      getgrouplist() for PAM provisioning); pass the primary gid too, SO_PEERGROUPS may omit it
 * @n_gids: their number
 *
 * Return: true if the uid or one of the groups is listed
 */
bool policy_allows(const CredentialConfig *c, uid_t uid, const gid_t *gids, size_t n_gids) {
        if (!c)
                return false;
        for (size_t i = 0; i < c->n_allow_uids; i++)
                if (c->allow_uids[i] == uid)
                        return true;
        for (size_t i = 0; i < c->n_allow_gids; i++)
                for (size_t j = 0; j < n_gids; j++)
                        if (c->allow_gids[i] == gids[j])
                                return true;
        return false;
}

/**
 * policy_allows_unit() - may this systemd unit Get the credential (LoadCredential=)?
 * @c: the credential
 * @unit: the unit's full name, e.g. "app.service"
 *
 * Entries of allow_units are unit names or fnmatch() patterns ("app@*.service").
 *
 * Return: true if an entry matches
 */
bool policy_allows_unit(const CredentialConfig *c, const char *unit) {
        if (!c || !unit || !*unit)
                return false;
        for (char **i = c->allow_units; i && *i; i++)
                if (strcmp(*i, unit) == 0 || fnmatch(*i, unit, FNM_NOESCAPE) == 0)
                        return true;
        return false;
}
