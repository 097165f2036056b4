/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "common/varlink.h"

typedef struct LeaseWaiter LeaseWaiter;
typedef struct Manager Manager;
typedef struct UidAccount UidAccount;

/* sd-event priority of a connection until its first reply is written, and of the listening socket */
#define PEER_PRIORITY_NEW (SD_EVENT_PRIORITY_NORMAL + 1)
/* After this many dispatches of answered connections in a row, newcomers are served in turn. */
#define PEER_FAIR_STREAK 64
/* Answered connections served per dispatch of manager->peer_epoll_source at most */
#define PEER_BATCH_MAX 64

typedef struct Peer {
        Manager *manager;
        struct Peer *prev, *next;
        struct Peer *newcomer_prev, *newcomer_next;     /* in manager->newcomers while !answered */

        int fd;
        struct ucred ucred;             /* SO_PEERCRED, read once at accept */
        gid_t *gids;                    /* SO_PEERGROUPS, read once at accept */
        size_t n_gids;

        sd_event_source *io_source;
        sd_event_source *defer_source;  /* process buffered calls outside of callbacks */
        sd_event_source *deadline_source;

        VarlinkReader reader;
        char *out;                      /* replies not yet written */
        size_t out_size;
        size_t out_allocated;

        uint32_t io_events;             /* the mask the io source has now, 0 while it is off */
        bool read_more;                 /* edge-triggered: bytes may be left in the socket */
        bool in_process;                /* inside peer_process(): replies need no kick */
        bool eof;
        bool busy;                      /* a call is in progress */
        bool oneway;                    /* ... and its reply is to be dropped */
        bool counted;                   /* ... and counts against the uid's requests in flight */
        bool deadline_armed;
        bool answered;                  /* a reply was written: normal priority from then on */
        bool in_batch;                  /* watched by manager->peer_epoll_fd, not io_source */
        bool batch_failed;              /* ... and could not be: stays with io_source */
        bool dead;                      /* freed during a batch: in manager->peer_graveyard */
        struct Peer *grave_next;
        LeaseWaiter *waiter;
} Peer;

int peer_new(Manager *m, int fd, Peer **ret);
void peer_listen_dispatched(Manager *m);
Peer *peer_free(Peer *p);
