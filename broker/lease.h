/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The lease engine: one Lease per (owner, credential). See lease.c for the rules.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "broker/schedule.h"
#include "common/time-util.h"

typedef struct CredentialConfig CredentialConfig;
typedef struct Manager Manager;
typedef struct Lease Lease;
typedef struct Secret Secret;
typedef struct LeaseWaiter LeaseWaiter;
typedef struct json_object json_object;
typedef struct Secret Secret;
typedef struct StateLease StateLease;
typedef struct StateSecrets StateSecrets;
typedef struct StateTable StateTable;

typedef enum LeaseState {
        LEASE_LIVE,
        LEASE_RENEWING,
        LEASE_ROTATING,
        LEASE_EXPIRING,
        LEASE_REVOKING,
        LEASE_REVOKE_FAILED,
        _LEASE_STATE_MAX,
        _LEASE_STATE_INVALID = -EINVAL,
} LeaseState;

/**
 * LeaseDoneFunc - the answer to a Get or Release
 * @error:    NULL on success, else a fully qualified varlink error name
 * @params:   reply parameters, or the error's parameters (may be NULL); borrowed
 * @userdata: as given
 *
 * Called exactly once per waiter unless lease_waiter_cancel() came first; possibly before the call
 * that registered it returns.
 */
typedef void (*LeaseDoneFunc)(const char *error, json_object *params, void *userdata);

/**
 * LeaseWireFunc - a successful Get's answer as the complete varlink reply
 * @msg:      the reply, NUL included; it carries the secret and is valid only during the call: copy it
 *            into a buffer that is wiped
 * @len:      its length
 * @userdata: as given to lease_get()
 *
 * See lease_waiter_set_wire(). Errors still go to the LeaseDoneFunc.
 */
typedef void (*LeaseWireFunc)(const char *msg, size_t len, void *userdata);

const char *lease_state_to_string(LeaseState s);

int lease_get(Manager *m, uid_t uid, const CredentialConfig *cred, bool may_start, LeaseDoneFunc cb,
              void *userdata, LeaseWaiter **ret_waiter);
int lease_get_cached(Manager *m, uid_t uid, const CredentialConfig *cred, const char **ret_msg, size_t *ret_len);
int lease_get_unit(Manager *m, const char *unit, const char *cgroup, const CredentialConfig *cred, LeaseDoneFunc cb,
                   void *userdata, LeaseWaiter **ret_waiter);
unsigned lease_release_unit(Manager *m, const char *unit);
bool lease_unit_holds(Manager *m, const char *unit);
int lease_release(Manager *m, uid_t uid, const CredentialConfig *cred, LeaseDoneFunc cb, void *userdata,
                  LeaseWaiter **ret_waiter);
int lease_get_as(Manager *m, uid_t uid, const CredentialConfig *cred, const Secret *token, const char *accessor,
                 usec_t token_expires_realtime, bool may_start, LeaseDoneFunc cb, void *userdata,
                 LeaseWaiter **ret_waiter);
unsigned lease_release_on_logout(Manager *m, uid_t uid);
void lease_waiter_cancel(LeaseWaiter *w);
void lease_waiter_set_wire(LeaseWaiter *w, LeaseWireFunc wire);

Lease *lease_free(Lease *l);
void lease_free_all(Manager *m);
void retirees_free_all(Manager *m);

int lease_append_held(Manager *m, bool all, uid_t uid, json_object *array);
unsigned lease_revoke_all(Manager *m);
void lease_token_changed(Manager *m, int event, const char *accessor, usec_t expires_realtime);

int lease_export(Manager *m, StateTable *table, StateSecrets *secrets);
int lease_restore(Manager *m, const StateLease *e, const CredentialConfig *cred, const Secret *data);
int lease_restore_retiree(Manager *m, const StateLease *e);
bool lease_accessor_in_use(Manager *m, const char *accessor);
bool lease_accessor_kept(Manager *m, const char *accessor, bool but_released);
void lease_count_owners(Manager *m, unsigned *ret_users, unsigned *ret_units);
