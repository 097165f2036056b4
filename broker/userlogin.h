/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Per-user Vault tokens from the PAM auth stack (Login). See userlogin.c for the rules.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "broker/lease.h"

typedef struct CredentialConfig CredentialConfig;
typedef struct Manager Manager;
typedef struct Peer Peer;
typedef struct UserToken UserToken;
typedef struct json_object json_object;

int userlogin_login(Manager *m, Peer *p, json_object *params, LeaseDoneFunc cb, void *userdata);
int userlogin_lease_get(Manager *m, uid_t uid, const CredentialConfig *cred, bool may_start, LeaseDoneFunc cb,
                        void *userdata, LeaseWaiter **ret_waiter);
bool userlogin_have_token(Manager *m, uid_t uid);
void userlogin_forget(Manager *m, uid_t uid);
void userlogin_peer_gone(Manager *m, Peer *p);
void userlogin_free_all(Manager *m);
