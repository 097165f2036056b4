/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * PAM sessions (OpenSession / CloseSession). See session.c for the rules.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker/lease.h"

typedef struct Manager Manager;
typedef struct Peer Peer;
typedef struct Session Session;
typedef struct StateSession StateSession;
typedef struct StateTable StateTable;
typedef struct json_object json_object;

int session_open(Manager *m, Peer *p, json_object *params, LeaseDoneFunc cb, void *userdata);
int session_close(Manager *m, Peer *p, json_object *params, LeaseDoneFunc cb, void *userdata);
void session_peer_gone(Manager *m, Peer *p);
void session_free_all(Manager *m);

unsigned session_count(Manager *m, bool all, uid_t uid);
bool session_uid_active(Manager *m, uid_t uid);

int session_export(Manager *m, StateTable *t);
int session_restore(Manager *m, const StateSession *e);
