/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The lease table a restarted vleased picks up (DESIGN.md, "Restart"), and the secrets handed over in
 * the fd store: pure (de)serialisation and the keep-or-revoke decision. See state.c.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/time-util.h"

typedef struct Secret Secret;

/* One lease (or replaced lease waiting for its revoke). Times are CLOCK_REALTIME usec, 0 = unknown. */
typedef struct StateLease {
        char *owner;            /* "uid:1000" or "unit:app.service" */
        char *credential;
        char *lease_id;         /* NULL for a static secret (KV) */
        char *accessor;         /* of the token that created it */
        char *cgroup;           /* unit leases: the unit's cgroup2 path */
        usec_t issued;          /* first read */
        usec_t renewed;         /* receipt of the answer that set `expires` */
        usec_t expires;         /* the lease's own end (not the token's); 0 for a static secret */
        usec_t ttl;
        usec_t token_expires;   /* end of the creating token; 0 unknown or never */
        usec_t last_used;
        unsigned renewals;
        bool renewable;
        bool capped;
        bool retiree;           /* replaced: only to be revoked */
        bool no_data;           /* restored without its secret: renewed, never handed out */
} StateLease;

/* A PAM session: its connection does not survive a restart, its leader process may. */
typedef struct StateSession {
        char *id;
        char *user;
        char *service;
        char *tty;
        uid_t uid;
        gid_t gid;
        pid_t leader_pid;
        uint64_t leader_start;  /* clock ticks after boot, /proc/PID/stat field 22 */
        usec_t opened;
} StateSession;

typedef struct StateTable {
        uint64_t journal_seq;   /* the journal lines that extend this table carry this number */
        StateLease *leases;
        size_t n_leases;
        StateSession *sessions;
        size_t n_sessions;
} StateTable;

/* The fd-store handover: the broker token and the secret values, keyed like the table. */
typedef struct StateSecret {
        char *owner;
        char *credential;
        char *lease_id;         /* which answer the data belongs to */
        Secret *data;           /* JSON text of the secret's data */
} StateSecret;

typedef struct StateSecrets {
        uint64_t generation;
        Secret *token;
        StateSecret *secrets;
        size_t n_secrets;
} StateSecrets;

typedef enum StateVerdict {
        STATE_KEEP,             /* the owner lives on: keep renewing */
        STATE_REVOKE,           /* nobody holds it any more */
        STATE_DROP,             /* already ended: nothing to do */
} StateVerdict;

void state_lease_done(StateLease *l);
void state_table_done(StateTable *t);
int state_table_add(StateTable *t, StateLease **ret);
int state_table_add_session(StateTable *t, StateSession **ret);
int state_table_write(const StateTable *t, FILE *f);
int state_table_to_json(const StateTable *t, char **ret);
int state_table_from_json(const char *text, StateTable *ret);
int state_lease_to_line(const StateLease *l, uint64_t seq, char **ret);
int state_journal_apply(StateTable *t, const char *text, size_t size, unsigned *ret_bad);

void state_secrets_done(StateSecrets *s);
int state_secrets_add(StateSecrets *s, StateSecret **ret);
int state_secrets_serialize(const StateSecrets *s, Secret **ret);
int state_secrets_parse(const char *text, size_t size, StateSecrets *ret);
const StateSecret *state_secrets_find(const StateSecrets *s, const char *owner, const char *credential,
                                      const char *lease_id);

#define STATE_OWNER_UID_MAX sizeof("uid:4294967295")
const char *state_owner_of_uid(uid_t uid, char buf[static STATE_OWNER_UID_MAX]);
uid_t state_owner_uid(const char *owner);

StateVerdict state_lease_verdict(const StateLease *l, usec_t now_realtime, usec_t idle_release_usec,
                                 int unit_running, bool user_has_session);
