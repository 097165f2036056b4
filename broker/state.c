/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * What survives a restart of vleased, in two parts with different rules:
 *
 * - The lease table, a JSON file in the state directory: lease ids, owners, times, the unit's cgroup,
 *   and the accessor of the token that created each lease. Never a secret value or a token: the file
 *   is on disk. An accessor cannot authenticate, but lets the next process renew that token
 *   (auth/token/renew-accessor) so that the leases it created do not die with it.
 * - The secrets: the broker token and every cached secret value, as JSON text in a sealed memfd kept
 *   by systemd in the fd store across `systemctl restart` and crash restarts (not across stop+start,
 *   and never on disk). Built and parsed in the locked arena (Secret); json-c's copies are wiped.
 *
 * New leases are not written by rewriting the table: each is appended to the journal beside it, one
 * line per lease (state_lease_to_line()), which the next full save of the table replaces. A line
 * carries the sequence number of the table it extends, so lines left over from before a table that
 * already holds them are ignored (state_journal_apply()).
 *
 * state_lease_verdict() is the rule for a restored lease: keep it while its owner lives on (a running
 * unit; a user whose lease is not yet idle), revoke the rest, forget what has already ended.
 */

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "broker/schedule.h"
#include "broker/state.h"
#include "common/hashtable.h"
#include "common/json-util.h"
#include "common/memory-util.h"
#include "common/secret.h"

#define STATE_VERSION 1

void state_lease_done(StateLease *l) {
        free(l->owner);
        free(l->credential);
        free(l->lease_id);
        free(l->accessor);
        free(l->cgroup);
        *l = (StateLease) {};
}

void state_table_done(StateTable *t) {
        for (size_t i = 0; i < t->n_leases; i++)
                state_lease_done(&t->leases[i]);
        free(t->leases);
        for (size_t i = 0; i < t->n_sessions; i++) {
                free(t->sessions[i].id);
                free(t->sessions[i].user);
                free(t->sessions[i].service);
                free(t->sessions[i].tty);
        }
        free(t->sessions);
        *t = (StateTable) {};
}

/**
 * state_table_add() - append an empty entry
 *
 * Return: 0 or -ENOMEM
 */
int state_table_add(StateTable *t, StateLease **ret) {
        StateLease *a = reallocarray(t->leases, t->n_leases + 1, sizeof(StateLease));

        if (!a)
                return -ENOMEM;
        t->leases = a;
        a[t->n_leases] = (StateLease) {};
        *ret = &a[t->n_leases++];
        return 0;
}

/**
 * state_table_add_session() - append an empty session entry
 *
 * Return: 0 or -ENOMEM
 */
int state_table_add_session(StateTable *t, StateSession **ret) {
        StateSession *a = reallocarray(t->sessions, t->n_sessions + 1, sizeof(StateSession));

        if (!a)
                return -ENOMEM;
        t->sessions = a;
        a[t->n_sessions] = (StateSession) {};
        *ret = &a[t->n_sessions++];
        return 0;
}

static int add_str(json_object *o, const char *key, const char *v) {
        return v ? json_object_add_or_put(o, key, json_object_new_string(v)) : 0;
}

static int add_u64(json_object *o, const char *key, uint64_t v) {
        return v ? json_object_add_or_put(o, key, json_object_new_int64((int64_t) MIN(v, (uint64_t) INT64_MAX))) : 0;
}

static json_object *lease_entry_new(const StateLease *l) {
        json_object *e = json_object_new_object();

        if (!e)
                return NULL;
        if (add_str(e, "owner", l->owner) < 0 || add_str(e, "credential", l->credential) < 0 ||
            add_str(e, "lease_id", l->lease_id) < 0 || add_str(e, "accessor", l->accessor) < 0 ||
            add_str(e, "cgroup", l->cgroup) < 0 || add_u64(e, "issued_usec", l->issued) < 0 ||
            add_u64(e, "renewed_usec", l->renewed) < 0 || add_u64(e, "expires_usec", l->expires) < 0 ||
            add_u64(e, "ttl_usec", l->ttl) < 0 || add_u64(e, "token_expires_usec", l->token_expires) < 0 ||
            add_u64(e, "last_used_usec", l->last_used) < 0 || add_u64(e, "renewals", l->renewals) < 0 ||
            json_object_add_or_put(e, "renewable", json_object_new_boolean(l->renewable)) < 0 ||
            json_object_add_or_put(e, "capped", json_object_new_boolean(l->capped)) < 0 ||
            json_object_add_or_put(e, "retiree", json_object_new_boolean(l->retiree)) < 0 ||
            json_object_add_or_put(e, "no_data", json_object_new_boolean(l->no_data)) < 0) {
                json_object_put(e);
                return NULL;
        }
        return e;
}

static json_object *session_entry_new(const StateSession *x) {
        json_object *e = json_object_new_object();

        if (!e)
                return NULL;
        if (add_str(e, "id", x->id) < 0 || add_str(e, "user", x->user) < 0 ||
            add_str(e, "service", x->service) < 0 || add_str(e, "tty", x->tty) < 0 ||
            json_object_add_or_put(e, "uid", json_object_new_int64(x->uid)) < 0 ||
            json_object_add_or_put(e, "gid", json_object_new_int64(x->gid)) < 0 ||
            json_object_add_or_put(e, "leader_pid", json_object_new_int64(x->leader_pid)) < 0 ||
            add_u64(e, "leader_start", x->leader_start) < 0 || add_u64(e, "opened_usec", x->opened) < 0) {
                json_object_put(e);
                return NULL;
        }
        return e;
}

/* One entry per line, built and freed one at a time: a json-c tree of the whole table took about
 * 2 KiB per lease at once (50 MiB of heap, never given back, at 10,000 leases: tools/bench figure 4). */
static int write_entry(FILE *f, json_object *e, bool first) {
        int r;

        if (!e)
                return -ENOMEM;
        r = fprintf(f, "%s\n    %s", first ? "" : ",",
                    json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(e);
        return r < 0 ? -EIO : 0;
}

/**
 * state_table_write() - write the table file's text to @f
 *
 * Return: 0, -ENOMEM, or -EIO (check ferror(@f) for the cause)
 */
int state_table_write(const StateTable *t, FILE *f) {
        int r = 0;

        if (fprintf(f, "{\n  \"version\": %d,\n  \"journal_seq\": %" PRIu64 ",\n  \"leases\": [",
                    STATE_VERSION, t->journal_seq) < 0)
                return -EIO;
        for (size_t i = 0; i < t->n_leases && r >= 0; i++)
                r = write_entry(f, lease_entry_new(&t->leases[i]), i == 0);
        if (r >= 0 && fputs("\n  ],\n  \"sessions\": [", f) < 0)
                r = -EIO;
        for (size_t i = 0; i < t->n_sessions && r >= 0; i++)
                r = write_entry(f, session_entry_new(&t->sessions[i]), i == 0);
        if (r >= 0 && fputs("\n  ]\n}\n", f) < 0)
                r = -EIO;
        return r;
}

/**
 * state_table_to_json() - the table file's text, as state_table_write() writes it
 *
 * Return: 0 or -ENOMEM
 */
int state_table_to_json(const StateTable *t, char **ret) {
        char *text = NULL;
        size_t size = 0;
        FILE *f;
        int r;

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        r = state_table_write(t, f);
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0) {
                free(text);
                return -ENOMEM;
        }
        *ret = text;
        return 0;
}

/**
 * state_lease_to_line() - one journal line: @l as a table entry, tagged with @seq, and a newline
 *
 * Return: 0 or -ENOMEM
 */
int state_lease_to_line(const StateLease *l, uint64_t seq, char **ret) {
        json_object *e = lease_entry_new(l);
        char *text = NULL;
        int r = -ENOMEM;

        if (!e || add_u64(e, "journal_seq", seq) < 0)
                goto out;
        if (asprintf(&text, "%s\n", json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN |
                                                                        JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
                goto out;
        *ret = text;
        r = 0;
out:
        json_object_put(e);
        return r;
}

static int get_str(json_object *o, const char *key, bool required, char **ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return required ? -EBADMSG : 0;
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        *ret = strdup(json_object_get_string(v));
        return *ret ? 0 : -ENOMEM;
}

static int get_u64(json_object *o, const char *key, uint64_t *ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
                return -EBADMSG;
        *ret = (uint64_t) json_object_get_int64(v);
        return 0;
}

static bool get_bool(json_object *o, const char *key) {
        json_object *v;

        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
               json_object_get_boolean(v);
}

static int lease_entry_parse(json_object *e, StateLease *l) {
        uint64_t renewals = 0;
        int r;

        if (!json_object_is_type(e, json_type_object))
                return -EBADMSG;
        if ((r = get_str(e, "owner", true, &l->owner)) < 0 ||
            (r = get_str(e, "credential", true, &l->credential)) < 0 ||
            (r = get_str(e, "lease_id", false, &l->lease_id)) < 0 ||
            (r = get_str(e, "accessor", false, &l->accessor)) < 0 ||
            (r = get_str(e, "cgroup", false, &l->cgroup)) < 0 ||
            (r = get_u64(e, "issued_usec", &l->issued)) < 0 ||
            (r = get_u64(e, "renewed_usec", &l->renewed)) < 0 ||
            (r = get_u64(e, "expires_usec", &l->expires)) < 0 ||
            (r = get_u64(e, "ttl_usec", &l->ttl)) < 0 ||
            (r = get_u64(e, "token_expires_usec", &l->token_expires)) < 0 ||
            (r = get_u64(e, "last_used_usec", &l->last_used)) < 0 ||
            (r = get_u64(e, "renewals", &renewals)) < 0)
                return r;
        l->renewals = (unsigned) MIN(renewals, (uint64_t) UINT32_MAX);
        l->renewable = get_bool(e, "renewable");
        l->capped = get_bool(e, "capped");
        l->retiree = get_bool(e, "retiree");
        l->no_data = get_bool(e, "no_data");
        if (strncmp(l->owner, "uid:", 4) != 0 && strncmp(l->owner, "unit:", 5) != 0)
                return -EBADMSG;
        return 0;
}

/**
 * state_table_from_json() - parse the table file; entries without owner or credential are an error
 *
 * Return: 0, -EBADMSG (not a table of this version), -ENOMEM
 */
int state_table_from_json(const char *text, StateTable *ret) {
        StateTable t = {};
        json_object *root, *arr, *v;
        int r = -EBADMSG;

        root = json_tokener_parse(text);
        if (!root || !json_object_is_type(root, json_type_object) ||
            !json_object_object_get_ex(root, "version", &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int(v) != STATE_VERSION ||
            !json_object_object_get_ex(root, "leases", &arr) || !json_object_is_type(arr, json_type_array))
                goto out;

        if ((r = get_u64(root, "journal_seq", &t.journal_seq)) < 0)
                goto out;
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                StateLease *l;

                r = state_table_add(&t, &l);
                if (r < 0)
                        goto out;
                r = lease_entry_parse(json_object_array_get_idx(arr, i), l);
                if (r < 0)
                        goto out;
        }
        if (json_object_object_get_ex(root, "sessions", &arr)) {
                if (!json_object_is_type(arr, json_type_array)) {
                        r = -EBADMSG;
                        goto out;
                }
                for (size_t i = 0; i < json_object_array_length(arr); i++) {
                        json_object *e = json_object_array_get_idx(arr, i);
                        uint64_t uid = 0, gid = 0, pid = 0;
                        StateSession *x;

                        if (!json_object_is_type(e, json_type_object)) {
                                r = -EBADMSG;
                                goto out;
                        }
                        r = state_table_add_session(&t, &x);
                        if (r < 0)
                                goto out;
                        if ((r = get_str(e, "id", true, &x->id)) < 0 || (r = get_str(e, "user", true, &x->user)) < 0 ||
                            (r = get_str(e, "service", false, &x->service)) < 0 ||
                            (r = get_str(e, "tty", false, &x->tty)) < 0 ||
                            (r = get_u64(e, "uid", &uid)) < 0 || (r = get_u64(e, "gid", &gid)) < 0 ||
                            (r = get_u64(e, "leader_pid", &pid)) < 0 ||
                            (r = get_u64(e, "leader_start", &x->leader_start)) < 0 ||
                            (r = get_u64(e, "opened_usec", &x->opened)) < 0)
                                goto out;
                        if (uid >= UINT32_MAX || gid >= UINT32_MAX || pid == 0 || pid > INT32_MAX) {
                                r = -EBADMSG;
                                goto out;
                        }
                        x->uid = (uid_t) uid;
                        x->gid = (gid_t) gid;
                        x->leader_pid = (pid_t) pid;
                }
        }
        *ret = t;
        t = (StateTable) {};
        r = 0;
out:
        json_object_put(root);
        state_table_done(&t);
        return r;
}

static bool streq_null(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The table's leases by (owner, credential, lease ID), while a journal is applied. Indexes, not
 * pointers: the table's array moves as it grows. */
typedef struct JournalSlot {
        HashEntry entry;        /* first: a HashEntry * is a JournalSlot * */
        size_t index;
} JournalSlot;

typedef struct JournalIndex {
        HashTable table;
        JournalSlot *slots;
        size_t n_slots, max_slots;
} JournalIndex;

static uint64_t lease_key_hash(const StateLease *l) {
        return hash_string(hash_string(hash_string(HASH_INIT, l->owner), l->credential), l->lease_id ?: "");
}

static int journal_index_add(JournalIndex *x, const StateTable *t, size_t i) {
        JournalSlot *s;

        assert(x->n_slots < x->max_slots);
        s = &x->slots[x->n_slots++];
        s->index = i;
        return hashtable_add(&x->table, &s->entry, lease_key_hash(&t->leases[i]));
}

static StateLease *journal_index_find(JournalIndex *x, StateTable *t, const StateLease *l) {
        uint64_t h = lease_key_hash(l);

        HASHTABLE_FOREACH_HASH(e, &x->table, h) {
                StateLease *c = &t->leases[((JournalSlot *) e)->index];

                if (strcmp(c->owner, l->owner) == 0 && strcmp(c->credential, l->credential) == 0 &&
                    streq_null(c->lease_id, l->lease_id))
                        return c;
        }
        return NULL;
}

static int journal_apply_line(StateTable *t, JournalIndex *x, const char *line, size_t len) {
        StateLease l = {}, *slot;
        struct json_tokener *tok;
        json_object *e;
        uint64_t seq = 0;
        int r;

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        e = json_tokener_parse_ex(tok, line, (int) len);
        r = !e || json_tokener_get_error(tok) != json_tokener_success ||
            json_tokener_get_parse_end(tok) != len ? -EBADMSG : 0;
        json_tokener_free(tok);
        if (r < 0)
                goto out;
        if (!json_object_is_type(e, json_type_object) || get_u64(e, "journal_seq", &seq) < 0) {
                r = -EBADMSG;
                goto out;
        }
        if (seq != t->journal_seq)
                goto out;       /* written before the table was saved with it: r = 0 */
        r = lease_entry_parse(e, &l);
        if (r < 0)
                goto out;
        slot = journal_index_find(x, t, &l);
        if (slot) {
                state_lease_done(slot);
                *slot = l;
        } else {
                if ((r = state_table_add(t, &slot)) < 0)
                        goto out;
                *slot = l;
                if ((r = journal_index_add(x, t, t->n_leases - 1)) < 0) {
                        l = (StateLease) {};    /* the table owns it now */
                        goto out;
                }
        }
        l = (StateLease) {};
        r = 1;
out:
        state_lease_done(&l);
        json_object_put(e);
        return r;
}

/**
 * state_journal_apply() - add the journal's leases to the table it extends
 * @t: the table, parsed; its journal_seq says which lines belong to it
 * @text: the journal
 * @size: its length
 * @ret_bad: lines that could not be read, the last one cut short (a power loss) among them
 *
 * A line for a lease the table already has (a renewal, or a lease the table took before the journal
 * was emptied) replaces its entry. Lines of another sequence number are skipped: they predate the
 * table.
 *
 * Return: the number of lines applied, or -ENOMEM
 */
int state_journal_apply(StateTable *t, const char *text, size_t size, unsigned *ret_bad) {
        JournalIndex x = {};
        unsigned bad = 0;
        size_t lines = 0;
        int n = 0, r = 0;

        for (const char *p = text; (p = memchr(p, '\n', size - (size_t) (p - text))); p++)
                lines++;
        x.max_slots = t->n_leases + lines;
        x.slots = calloc(MAX(x.max_slots, (size_t) 1), sizeof(JournalSlot));
        if (!x.slots)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_leases && r >= 0; i++)
                r = journal_index_add(&x, t, i);

        for (size_t at = 0; at < size && r >= 0;) {
                const char *nl = memchr(text + at, '\n', size - at);
                size_t len = (nl ? (size_t) (nl - text) : size) - at;

                if (!nl)
                        bad++;          /* cut short */
                else if (len > 0) {
                        r = journal_apply_line(t, &x, text + at, len);
                        if (r == -EBADMSG) {
                                bad++;
                                r = 0;
                        } else if (r > 0)
                                n += r;
                }
                at += len + 1;
        }
        hashtable_done(&x.table);
        free(x.slots);
        if (r < 0)
                return r;
        *ret_bad = bad;
        return n;
}

/* ---- the secrets handover ---- */

void state_secrets_done(StateSecrets *s) {
        for (size_t i = 0; i < s->n_secrets; i++) {
                free(s->secrets[i].owner);
                free(s->secrets[i].credential);
                free(s->secrets[i].lease_id);
                secret_free(s->secrets[i].data);
        }
        free(s->secrets);
        secret_free(s->token);
        *s = (StateSecrets) {};
}

int state_secrets_add(StateSecrets *s, StateSecret **ret) {
        StateSecret *a = reallocarray(s->secrets, s->n_secrets + 1, sizeof(StateSecret));

        if (!a)
                return -ENOMEM;
        s->secrets = a;
        a[s->n_secrets] = (StateSecret) {};
        *ret = &a[s->n_secrets++];
        return 0;
}


static json_object *new_secret_string(const Secret *s) {
        return json_object_new_string_len(secret_get(s), (int) secret_size(s));
}

/**
 * state_secrets_serialize() - the memfd's content, in the locked arena
 *
 * Return: 0 or -ENOMEM
 */
int state_secrets_serialize(const StateSecrets *s, Secret **ret) {
        json_object *root, *arr;
        const char *text;
        int r = -ENOMEM;

        root = json_object_new_object();
        if (!root)
                return -ENOMEM;
        arr = json_object_new_array();
        if (json_object_add_or_put(root, "secrets", arr) < 0 || add_u64(root, "generation", s->generation) < 0)
                goto out;
        if (s->token && json_object_add_or_put(root, "token", new_secret_string(s->token)) < 0)
                goto out;
        for (size_t i = 0; i < s->n_secrets; i++) {
                const StateSecret *x = &s->secrets[i];
                json_object *e = json_object_new_object();

                if (!e || json_object_array_add(arr, e) < 0) {
                        json_object_put(e);
                        goto out;
                }
                if (add_str(e, "owner", x->owner) < 0 || add_str(e, "credential", x->credential) < 0 ||
                    add_str(e, "lease_id", x->lease_id) < 0 || json_object_add_or_put(e, "data", new_secret_string(x->data)) < 0)
                        goto out;
        }
        text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
        if (text) {
                r = secret_new(text, strlen(text), ret);
                explicit_bzero_safe((char *) text, strlen(text));
        }
out:
        json_object_wipe(root);
        json_object_put(root);
        return r;
}

/**
 * state_secrets_parse() - read a handover memfd's content
 *
 * Return: 0, -EBADMSG, -ENOMEM
 */
int state_secrets_parse(const char *text, size_t size, StateSecrets *ret) {
        StateSecrets s = {};
        struct json_tokener *tok;
        json_object *root, *arr, *v;
        uint64_t gen = 0;
        int r = -EBADMSG;

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        root = json_tokener_parse_ex(tok, text, (int) MIN(size, (size_t) INT32_MAX));
        if (json_tokener_get_error(tok) != json_tokener_success) {
                json_object_wipe(root);
                json_object_put(root);
                root = NULL;
        }
        json_tokener_free(tok);
        if (!root || !json_object_is_type(root, json_type_object) ||
            !json_object_object_get_ex(root, "secrets", &arr) || !json_object_is_type(arr, json_type_array) ||
            get_u64(root, "generation", &gen) < 0)
                goto out;
        s.generation = gen;
        if (json_object_object_get_ex(root, "token", &v)) {
                if (!json_object_is_type(v, json_type_string))
                        goto out;
                r = secret_new(json_object_get_string(v), (size_t) json_object_get_string_len(v), &s.token);
                if (r < 0)
                        goto out;
                r = -EBADMSG;
        }
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *e = json_object_array_get_idx(arr, i), *d;
                StateSecret *x;

                if (!json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, "data", &d) ||
                    !json_object_is_type(d, json_type_string)) {
                        r = -EBADMSG;
                        goto out;
                }
                r = state_secrets_add(&s, &x);
                if (r < 0)
                        goto out;
                if ((r = get_str(e, "owner", true, &x->owner)) < 0 ||
                    (r = get_str(e, "credential", true, &x->credential)) < 0 ||
                    (r = get_str(e, "lease_id", false, &x->lease_id)) < 0 ||
                    (r = secret_new(json_object_get_string(d), (size_t) json_object_get_string_len(d), &x->data)) < 0)
                        goto out;
        }
        *ret = s;
        s = (StateSecrets) {};
        r = 0;
out:
        json_object_wipe(root);
        json_object_put(root);
        state_secrets_done(&s);
        return r;
}


/**
 * state_secrets_find() - the handed-over data of one table entry (same owner, credential, lease id)
 */
const StateSecret *state_secrets_find(const StateSecrets *s, const char *owner, const char *credential,
                                      const char *lease_id) {
        for (size_t i = 0; s && i < s->n_secrets; i++)
                if (strcmp(s->secrets[i].owner, owner) == 0 && strcmp(s->secrets[i].credential, credential) == 0 &&
                    streq_null(s->secrets[i].lease_id, lease_id))
                        return &s->secrets[i];
        return NULL;
}

/**
 * state_owner_of_uid() - the owner field of @uid's leases: "uid:1000"
 * @buf: at least STATE_OWNER_UID_MAX bytes
 *
 * Return: @buf
 */
const char *state_owner_of_uid(uid_t uid, char buf[static STATE_OWNER_UID_MAX]) {
        (void) snprintf(buf, STATE_OWNER_UID_MAX, "uid:%u", (unsigned) uid);
        return buf;
}

/**
 * state_owner_uid() - the uid in an owner field "uid:N"
 *
 * Return: the uid, or (uid_t) -1 for a unit's owner ("unit:NAME") or anything malformed
 */
uid_t state_owner_uid(const char *owner) {
        unsigned long v;
        char *end;

        if (strncmp(owner, "uid:", 4) != 0)
                return (uid_t) -1;
        v = strtoul(owner + 4, &end, 10);
        return *end || end == owner + 4 || v >= (uid_t) -1 ? (uid_t) -1 : (uid_t) v;
}

/**
 * state_lease_verdict() - what a restarted broker does with a restored lease
 * @l:                 the entry
 * @now_realtime:      now
 * @idle_release_usec: [broker] idle_release_sec (0 = never)
 * @unit_running:      for a unit's lease: 1 its cgroup is populated, 0 not, negative unknown
 * @user_has_session:  for a user's lease: the user has a PAM session whose leader still runs
 *
 * Replaced leases are revoked. A lease (or its token) that has ended is dropped; a renewable lease
 * whose saved expiry has passed may have been renewed after the save, and is judged like a live one
 * (schedule_may_outlive_saved_expiry(): the restored lease then asks Vault with a renewal). A unit's lease is kept
 * while the unit runs (unknown counts as running: revoking under a live service is the worse mistake).
 * A user's lease is kept while the user has a live session, else unless it was idle past
 * idle_release_sec already (its idle clock then restarts).
 */
StateVerdict state_lease_verdict(const StateLease *l, usec_t now_realtime, usec_t idle_release_usec,
                                 int unit_running, bool user_has_session) {
        if (l->lease_id && ((l->expires > 0 && l->expires <= now_realtime &&
                             !schedule_may_outlive_saved_expiry(l->renewable, l->capped, l->expires, l->ttl,
                                                                now_realtime)) ||
                            (l->token_expires > 0 && l->token_expires <= now_realtime)))
                return STATE_DROP;
        if (l->retiree)
                return l->lease_id ? STATE_REVOKE : STATE_DROP;
        if (strncmp(l->owner, "unit:", 5) == 0)
                return unit_running == 0 ? (l->lease_id ? STATE_REVOKE : STATE_DROP) : STATE_KEEP;
        if (!user_has_session && idle_release_usec > 0 && l->last_used > 0 &&
            usec_add(l->last_used, idle_release_usec) <= now_realtime)
                return l->lease_id ? STATE_REVOKE : STATE_DROP;
        return STATE_KEEP;
}
