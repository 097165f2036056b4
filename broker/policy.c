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

/* Resolves a user (group == false) or group name, or takes a numeric id as it is. */
static int lookup_id(const char *name, bool group, uint32_t *ret) {
        _cleanup_free_ char *buf = NULL;
        size_t n = 4096;

        if (parse_id(name, ret) >= 0)
                return 0;

        for (;;) {
                struct passwd pw, *pwres = NULL;
                struct group gr, *grres = NULL;
                int r;

                free(buf);
                buf = malloc(n);
                if (!buf)
                        return -ENOMEM;
                r = group ? getgrnam_r(name, &gr, buf, n, &grres) : getpwnam_r(name, &pw, buf, n, &pwres);
                if (r == ERANGE && n < NSS_BUFFER_MAX) {
                        n *= 2;
                        continue;
                }
                if (r != 0)
                        return -r;
                if (group ? !grres : !pwres)
                        return -ESRCH;
                *ret = group ? grres->gr_gid : pwres->pw_uid;
                return 0;
        }
}

/* The names looked up during one policy_resolve(): each distinct name is asked of NSS once, not once
 * per [credential] naming it (with many sections, re-reading /etc/passwd and /etc/group for each was
 * most of a cold start). */
typedef struct LookupMemo {
        const char *name;               /* borrowed from the configuration */
        bool group;
        int result;                     /* lookup_id()'s return */
        uint32_t id;
} LookupMemo;

typedef struct LookupCache {
        LookupMemo *memos;
        size_t n_memos;
} LookupCache;

static void lookup_cache_done(LookupCache *cache) {
        free(cache->memos);
}

static int lookup_id_cached(LookupCache *cache, const char *name, bool group, uint32_t *ret) {
        LookupMemo *m;
        int r;

        for (size_t i = 0; i < cache->n_memos; i++) {
                m = &cache->memos[i];
                if (m->group == group && strcmp(m->name, name) == 0) {
                        if (m->result >= 0)
                                *ret = m->id;
                        return m->result;
                }
        }

        r = lookup_id(name, group, ret);
        if (r == -ENOMEM)
                return r;
        m = reallocarray(cache->memos, cache->n_memos + 1, sizeof(LookupMemo));
        if (!m)
                return r;       /* not remembered: asked again next time, still correct */
        cache->memos = m;
        cache->memos[cache->n_memos++] = (LookupMemo) {
                .name = name, .group = group, .result = r, .id = r >= 0 ? *ret : 0,
        };
        return r;
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
/* Resolves one list of names into ids; unresolvable names are noted in @unknown and left out. */
static int resolve_list(LookupCache *cache, char **names, bool group, const char *credential, char ***unknown,
                        uint32_t **ret_ids, size_t *ret_n) {
        _cleanup_free_ uint32_t *ids = NULL;
        size_t n = strv_length(names), k = 0;
        int r;

        if (n > 0) {
                ids = calloc(n, sizeof(uint32_t));
                if (!ids)
                        return -ENOMEM;
        }
        for (size_t j = 0; j < n; j++) {
                r = lookup_id_cached(cache, names[j], group, &ids[k]);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        r = note_unknown(unknown, credential, group ? "group" : "user", names[j], r);
                        if (r < 0)
                                return r;
                        continue;
                }
                k++;
        }
        *ret_ids = TAKE_PTR(ids);
        *ret_n = k;
        return 0;
}

int policy_resolve(Config *c, char ***ret_unknown) {
        _cleanup_strv_free_ char **unknown = NULL;
        _cleanup_(lookup_cache_done) LookupCache cache = {};
        int r;

        assert_cc(sizeof(uid_t) == sizeof(uint32_t) && sizeof(gid_t) == sizeof(uint32_t));

        for (size_t i = 0; i < c->n_credentials; i++) {
                CredentialConfig *cc = &c->credentials[i];
                uint32_t *ids;
                size_t n;

                r = resolve_list(&cache, cc->allow_users, false, cc->name, &unknown, &ids, &n);
                if (r < 0)
                        return r;
                free(cc->allow_uids);
                cc->allow_uids = (uid_t *) ids;
                cc->n_allow_uids = n;

                r = resolve_list(&cache, cc->allow_groups, true, cc->name, &unknown, &ids, &n);
                if (r < 0)
                        return r;
                free(cc->allow_gids);
                cc->allow_gids = (gid_t *) ids;
                cc->n_allow_gids = n;
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
