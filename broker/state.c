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

/*
 * The table and its journal are printed here, not through json-c: a json-c object per lease, built
 * and printed, cost some 26,000 instructions, on the event loop, for the journal line of every new
 * lease and for every lease at each fold (tools/bench figure 4 measures the fold). Entries hold only
 * strings, numbers and booleans, in a fixed order; json-c reads them back (state_table_from_json()).
 * A string or number that is NULL or 0 is left out, as the reader expects. An entry is built in
 * memory, then written at once: stdio calls per field cost more than the formatting.
 */
typedef struct EntryWriter {
        char *buf;
        size_t n, size;
        bool first;
        int r;          /* -ENOMEM once the buffer could not grow */
} EntryWriter;

#define ENTRY_WRITER_INIT { .first = true }

static char *entry_reserve(EntryWriter *w, size_t k) {
        if (w->r < 0)
                return NULL;
        if (w->size - w->n < k) {
                size_t size = MAX(w->size * 2, w->n + k + 256);
                char *b = realloc(w->buf, size);

                if (!b) {
                        w->r = -ENOMEM;
                        return NULL;
                }
                w->buf = b;
                w->size = size;
        }
        return w->buf + w->n;
}

static void put_raw(EntryWriter *w, const char *s, size_t k) {
        char *p = entry_reserve(w, k);

        if (!p)
                return;
        memcpy(p, s, k);
        w->n += k;
}

static void put_key(EntryWriter *w, const char *key) {
        put_raw(w, w->first ? "{\"" : ",\"", 2);
        put_raw(w, key, strlen(key));
        put_raw(w, "\":", 2);
        w->first = false;
}

static void put_str(EntryWriter *w, const char *key, const char *v) {
        size_t k;
        char *p;

        if (!v)
                return;
        put_key(w, key);
        k = json_quote(NULL, v);
        p = entry_reserve(w, k);
        if (p)
                w->n += json_quote(p, v);
}

static void put_num(EntryWriter *w, const char *key, uint64_t v) {
        char buf[20];
        size_t i = sizeof(buf);

        v = MIN(v, (uint64_t) INT64_MAX);
        do
                buf[--i] = (char) ('0' + v % 10);
        while ((v /= 10) > 0);
        put_key(w, key);
        put_raw(w, buf + i, sizeof(buf) - i);
}

static void put_u64(EntryWriter *w, const char *key, uint64_t v) {
        if (v)
                put_num(w, key, v);
}

static void put_bool(EntryWriter *w, const char *key, bool v) {
        put_key(w, key);
        put_raw(w, v ? "true" : "false", v ? 4 : 5);
}

/* the entry, after what @w holds; @seq: the journal line's tag (0 is left out, as in the table) */
static int put_lease(EntryWriter *w, const StateLease *l, uint64_t seq) {
        w->first = true;
        put_str(w, "owner", l->owner);
        put_str(w, "credential", l->credential);
        put_str(w, "lease_id", l->lease_id);
        put_str(w, "accessor", l->accessor);
        put_str(w, "cgroup", l->cgroup);
        put_u64(w, "issued_usec", l->issued);
        put_u64(w, "renewed_usec", l->renewed);
        put_u64(w, "expires_usec", l->expires);
        put_u64(w, "ttl_usec", l->ttl);
        put_u64(w, "token_expires_usec", l->token_expires);
        put_u64(w, "last_used_usec", l->last_used);
        put_u64(w, "renewals", l->renewals);
        put_bool(w, "renewable", l->renewable);
        put_bool(w, "capped", l->capped);
        put_bool(w, "retiree", l->retiree);
        put_bool(w, "no_data", l->no_data);
        put_u64(w, "journal_seq", seq);
        put_raw(w, "}", 1);
        return w->r;
}

static int put_session(EntryWriter *w, const StateSession *x) {
        w->first = true;
        put_str(w, "id", x->id);
        put_str(w, "user", x->user);
        put_str(w, "service", x->service);
        put_str(w, "tty", x->tty);
        put_num(w, "uid", x->uid);
        put_num(w, "gid", x->gid);
        put_num(w, "leader_pid", (uint64_t) MAX(x->leader_pid, 0));
        put_u64(w, "leader_start", x->leader_start);
        put_u64(w, "opened_usec", x->opened);
        put_raw(w, "}", 1);
        return w->r;
}

/* what @w holds to @f, and @w emptied */
static int entry_flush(EntryWriter *w, FILE *f) {
        if (w->r < 0)
                return w->r;
        if (w->n > 0 && fwrite(w->buf, 1, w->n, f) != w->n)
                return -EIO;
        w->n = 0;
        return 0;
}

/**
 * state_table_write() - write the table file's text to @f
 *
 * Return: 0, -ENOMEM, or -EIO (check ferror(@f) for the cause)
 */
int state_table_write(const StateTable *t, FILE *f) {
        EntryWriter w = ENTRY_WRITER_INIT;
        int r = 0;

        if (fprintf(f, "{\n  \"version\": %d,\n  \"journal_seq\": %" PRIu64 ",\n  \"leases\": [",
                    STATE_VERSION, t->journal_seq) < 0)
                return -EIO;
        for (size_t i = 0; i < t->n_leases && r >= 0; i++) {
                put_raw(&w, i == 0 ? "\n    " : ",\n    ", i == 0 ? 5 : 6);
                r = put_lease(&w, &t->leases[i], 0);
                if (r >= 0)
                        r = entry_flush(&w, f);
        }
        if (r >= 0 && fputs("\n  ],\n  \"sessions\": [", f) < 0)
                r = -EIO;
        for (size_t i = 0; i < t->n_sessions && r >= 0; i++) {
                put_raw(&w, i == 0 ? "\n    " : ",\n    ", i == 0 ? 5 : 6);
                r = put_session(&w, &t->sessions[i]);
                if (r >= 0)
                        r = entry_flush(&w, f);
        }
        if (r >= 0 && fputs("\n  ]\n}\n", f) < 0)
                r = -EIO;
        free(w.buf);
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
        EntryWriter w = ENTRY_WRITER_INIT;

        (void) put_lease(&w, l, seq);
        put_raw(&w, "\n", 2);          /* and the NUL */
        if (w.r < 0) {
                free(w.buf);
                return w.r;
        }
        *ret = w.buf;
        return 0;
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
