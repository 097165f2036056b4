/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The LoadCredential= front door: systemd connects to /run/vlease/credentials while starting a unit
 * and reads the credential until EOF. See credentials.c.
 */

#include <systemd/sd-event.h>

typedef struct CredentialConn CredentialConn;
typedef struct Manager Manager;

int credentials_accept(Manager *m, sd_event_source *s, int listen_fd);
CredentialConn *credential_conn_free(CredentialConn *c);
void credentials_free_all(Manager *m);
